//! The `InvestmentService` gRPC handlers: parse, call the domain module, map the answer.

use allocation_bus::{PublishPath, Topology};
use api::v1::{self as pb, investment_service_server::InvestmentService};
use async_nats::jetstream;
use entity::prelude::*;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection};
use service_kit::{auth::Caller, page, status::Violations};
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};
use tracing::{Instrument as _, instrument};
use wire::caller::CallerUser as _;

use ledger::{
    balance, deals, events,
    listing::{self, ListQuery},
};

use crate::{
    Error,
    cancel::{self, Cancelled},
    investments::{self, Created, NewInvestment},
    metrics::Metrics,
};

/// Shared state of the handlers; cheap to clone.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) db: DatabaseConnection,
    pub(crate) nats: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) topology: Topology,
    /// Creates in flight, awaited at shutdown (they outlive the calls that started them).
    pub(crate) creates: TaskTracker,
    /// The CURRENCY setting, told to clients with the balances.
    pub(crate) currency: String,
    /// The App's families.
    pub(crate) metrics: Metrics,
}

impl Api {
    /// Creates the investment, then publishes its allocation request through the one
    /// after-commit path; a request NATS did not take is left to the sweeper.
    async fn create_and_publish(
        &self,
        user_id: UserId,
        new: &NewInvestment,
    ) -> Result<investment::Model, Error> {
        let (row, created) = investments::create(&self.db, user_id, new)
            .await
            .inspect_err(|e| {
                self.metrics.count_create(match e {
                    Error::Refused(_) | Error::NotCancellable(_) => "refused",
                    Error::Db(_) => "error",
                    Error::Invalid(_) | Error::NotFound(_) | Error::RequestIdReused => "rejected",
                })
            })?;
        self.metrics.count_create(match created {
            Created::New => "created",
            Created::Replayed => "replayed",
        });
        tracing::Span::current().record("investment_id", tracing::field::display(row.id));
        if created == Created::Replayed {
            return Ok(row);
        }
        let event = wire::status_event(&row, Vec::new());
        allocation_bus::announce_status(
            &self.nats,
            &self.topology,
            row.owner(),
            row.investment_id(),
            &event,
        )
        .await;
        let committed = [wire::first_request(&row)];
        match allocation_bus::publish_committed(
            &self.db,
            &self.js,
            &self.topology,
            &self.metrics.publishes,
            PublishPath::Create,
            &committed,
        )
        .await
        {
            (_, None) => {
                tracing::info!(shares = row.shares, total = %row.total_amount, "investment accepted");
            }
            // Durable already: the sweeper publishes it once NATS is back.
            (_, Some(e)) => {
                tracing::warn!(error = %e, "investment accepted; publish left to the sweeper");
            }
        }
        Ok(row)
    }

    /// Cancels the caller's investment and announces the change (a cancel replayed announces
    /// nothing).
    async fn cancel_and_announce(
        &self,
        user_id: UserId,
        id: InvestmentId,
    ) -> Result<investment::Model, Error> {
        let (row, cancelled) = cancel::cancel(&self.db, user_id, id)
            .await
            .inspect_err(|e| {
                self.metrics.count_cancel(match e {
                    Error::NotCancellable(_) => "refused",
                    Error::Db(_) => "error",
                    _ => "rejected",
                })
            })?;
        self.metrics.count_cancel(match cancelled {
            Cancelled::Now => "cancelled",
            Cancelled::Already => "replayed",
        });
        if cancelled == Cancelled::Now {
            let event = wire::status_event(&row, Vec::new());
            allocation_bus::announce_status(&self.nats, &self.topology, user_id, id, &event).await;
            tracing::info!(investment_id = %row.id, "investment cancelled by its owner");
        }
        Ok(row)
    }

    /// `rows` as the API shows them, each with its allocations: one statement for the whole
    /// page (none when no row is completed or reversed, the only states that hold any).
    async fn with_allocations(
        &self,
        rows: &[investment::Model],
    ) -> Result<Vec<pb::Investment>, Error> {
        let allocated = rows
            .iter()
            .filter(|r| {
                matches!(
                    r.allocation_status,
                    AllocationStatus::Completed | AllocationStatus::Reversed
                )
            })
            .map(investment::Model::investment_id);
        let mut pieces = wire::allocations(events::allocations(&self.db, allocated).await?);
        Ok(rows
            .iter()
            .map(|r| wire::with_allocations(r, pieces.remove(&r.id).unwrap_or_default()))
            .collect())
    }
}

#[tonic::async_trait]
impl InvestmentService for Api {
    #[instrument(skip_all, fields(user_id, investment_id))]
    async fn create_investment(
        &self,
        request: Request<pb::CreateInvestmentRequest>,
    ) -> Result<Response<pb::CreateInvestmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let new = NewInvestment::parse(request.into_inner()).map_err(Error::from)?;
        // The create runs in a task of its own: when the client goes away or its deadline
        // passes, tonic drops this future, but the task still finishes the transaction (no
        // connection returns to the pool mid-transaction) and publishes what it committed.
        let api = self.clone();
        let create = async move { api.create_and_publish(caller.user_id(), &new).await };
        let row = self
            .creates
            .spawn(create.in_current_span())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "create task failed");
                Status::internal("internal error")
            })??;
        Ok(Response::new(pb::CreateInvestmentResponse {
            investment: Some(wire::investment(&row)),
        }))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn get_investment(
        &self,
        request: Request<pb::GetInvestmentRequest>,
    ) -> Result<Response<pb::GetInvestmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let mut v = Violations::default();
        let id = v.id("investment_id", &request.get_ref().investment_id);
        v.finish().map_err(Error::from)?;
        let row = investments::get(&self.db, caller.user_id(), id).await?;
        let investment = self.with_allocations(std::slice::from_ref(&row)).await?;
        Ok(Response::new(pb::GetInvestmentResponse {
            investment: investment.into_iter().next(),
        }))
    }

    #[instrument(skip_all, fields(user_id, investment_id = %request.get_ref().investment_id))]
    async fn cancel_investment(
        &self,
        request: Request<pb::CancelInvestmentRequest>,
    ) -> Result<Response<pb::CancelInvestmentResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let r = request.into_inner();
        let mut v = Violations::default();
        let id = v.id("investment_id", &r.investment_id);
        // Checked for form only: cancelling is idempotent by itself.
        v.request_id("request_id", r.request_id);
        v.finish().map_err(Error::from)?;
        let row = self.cancel_and_announce(caller.user_id(), id).await?;
        Ok(Response::new(pb::CancelInvestmentResponse {
            investment: Some(wire::investment(&row)),
        }))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn list_investments(
        &self,
        request: Request<pb::ListInvestmentsRequest>,
    ) -> Result<Response<pb::ListInvestmentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let r = request.get_ref();
        let query = ListQuery::parse(
            "ListInvestments",
            r.page_size,
            &r.page_token,
            wire::allocation_status_filter(r.allocation_status),
        )
        .map_err(Error::from)?;
        let scope = Condition::all().add(investment::Column::UserId.eq(caller.user_id()));
        let (rows, next) = listing::list(&self.db, scope, &query)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListInvestmentsResponse {
            investments: self.with_allocations(&rows).await?,
            next_page_token: query.next_token(next),
        }))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn list_subscription_balances(
        &self,
        request: Request<pb::ListSubscriptionBalancesRequest>,
    ) -> Result<Response<pb::ListSubscriptionBalancesResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let r = request.get_ref();
        let mut v = Violations::default();
        const SCOPE: &str = "ListSubscriptionBalances";
        let (size, after) = page::parse(r.page_size, &r.page_token, SCOPE, &mut v);
        v.finish().map_err(Error::from)?;
        let (rows, next) = balance::page(
            &self.db,
            balance::Scope::User(caller.user_id()),
            after,
            size,
        )
        .await
        .map_err(Error::from)?;
        Ok(Response::new(pb::ListSubscriptionBalancesResponse {
            balances: rows.iter().map(wire::balance).collect(),
            next_page_token: page::next_token(next, SCOPE),
            currency_code: self.currency.clone(),
        }))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn list_deals(
        &self,
        request: Request<pb::ListDealsRequest>,
    ) -> Result<Response<pb::ListDealsResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let r = request.get_ref();
        let mut v = Violations::default();
        const SCOPE: &str = "ListDeals";
        let (size, after) = page::parse(r.page_size, &r.page_token, SCOPE, &mut v);
        v.finish().map_err(Error::from)?;
        let (rows, next) = deals::open_page(&self.db, after, size)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListDealsResponse {
            deals: rows.iter().map(wire::open_deal).collect(),
            next_page_token: page::next_token(next, SCOPE),
        }))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn get_deals(
        &self,
        request: Request<pb::GetDealsRequest>,
    ) -> Result<Response<pb::GetDealsResponse>, Status> {
        let caller = Caller::of(&request)?;
        tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
        let rows = crate::deals::by_ids(&self.db, &request.get_ref().deal_ids).await?;
        Ok(Response::new(pb::GetDealsResponse {
            deals: rows.iter().map(wire::deal_summary).collect(),
        }))
    }
}
