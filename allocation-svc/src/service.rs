//! The `AllocationService` gRPC handlers.

use allocation_bus::Topology;
use api::v1::{self as pb, allocation_service_server::AllocationService};
use async_nats::jetstream;
use ledger::{
    events,
    listing::{self, ListQuery},
};
use sea_orm::{Condition, DatabaseConnection};
use service_kit::{auth::Caller, status::Violations};
use tonic::{Request, Response, Status};
use tracing::instrument;
use wire::caller::CallerUser as _;

use crate::{
    Error, admin,
    config::AllocatorArgs,
    reverse::{self, Reversal},
    watch::{UpdateStream, Watchers},
};

/// Shared state of the handlers; cheap to clone.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) db: DatabaseConnection,
    pub(crate) nats: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) topology: Topology,
    pub(crate) allocator: AllocatorArgs,
    pub(crate) watchers: Watchers,
    /// The App's families.
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
}

fn record_user(caller: &Caller) {
    tracing::Span::current().record("user_id", tracing::field::display(caller.subject));
}

#[tonic::async_trait]
impl AllocationService for Api {
    type WatchAllocationStream = UpdateStream<pb::WatchAllocationResponse>;
    type WatchAllocationsStream = UpdateStream<pb::WatchAllocationsResponse>;

    #[instrument(skip_all, fields(user_id, investment_id = %request.get_ref().investment_id))]
    async fn watch_allocation(
        &self,
        request: Request<pb::WatchAllocationRequest>,
    ) -> Result<Response<Self::WatchAllocationStream>, Status> {
        let caller = Caller::of(&request)?;
        record_user(&caller);
        let mut v = Violations::default();
        let id = v.uuid("investment_id", &request.get_ref().investment_id);
        v.finish().map_err(Error::from)?;
        let stream = self.watchers.watch_one(caller.subject, id).await?;
        Ok(Response::new(stream))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn watch_allocations(
        &self,
        request: Request<pb::WatchAllocationsRequest>,
    ) -> Result<Response<Self::WatchAllocationsStream>, Status> {
        let caller = Caller::of(&request)?;
        record_user(&caller);
        let stream = self.watchers.watch_all(caller.subject).await?;
        Ok(Response::new(stream))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn get_queue_stats(
        &self,
        request: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        let caller = Caller::of(&request)?;
        record_user(&caller);
        caller.require_admin()?;
        let stats = admin::queue_stats(&self.db, &self.js, &self.topology, &self.allocator).await?;
        Ok(Response::new(stats))
    }

    #[instrument(skip_all, fields(user_id))]
    async fn list_failed_allocations(
        &self,
        request: Request<pb::ListFailedAllocationsRequest>,
    ) -> Result<Response<pb::ListFailedAllocationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        record_user(&caller);
        caller.require_admin()?;
        let r = request.get_ref();
        let failed = Ok(Some(entity::prelude::AllocationStatus::Failed));
        let query = ListQuery::parse("ListFailedAllocations", r.page_size, &r.page_token, failed)
            .map_err(Error::from)?;
        let (rows, next) = listing::list(&self.db, Condition::all(), &query)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListFailedAllocationsResponse {
            investments: rows.iter().map(wire::investment).collect(),
            next_page_token: query.next_token(next),
        }))
    }

    #[instrument(skip_all, fields(user_id, investment_id = %request.get_ref().investment_id))]
    async fn retry_allocation(
        &self,
        request: Request<pb::RetryAllocationRequest>,
    ) -> Result<Response<pb::RetryAllocationResponse>, Status> {
        let caller = Caller::of(&request)?;
        record_user(&caller);
        caller.require_admin()?;
        let mut v = Violations::default();
        let id = v.uuid("investment_id", &request.get_ref().investment_id);
        v.finish().map_err(Error::from)?;
        let row = admin::retry(
            &self.db,
            &self.js,
            &self.nats,
            &self.topology,
            &self.metrics.publishes,
            id,
        )
        .await?;
        Ok(Response::new(pb::RetryAllocationResponse {
            investment: Some(wire::investment(&row)),
        }))
    }

    #[instrument(skip_all, fields(user_id, investment_id = %request.get_ref().investment_id))]
    async fn reverse_allocation(
        &self,
        request: Request<pb::ReverseAllocationRequest>,
    ) -> Result<Response<pb::ReverseAllocationResponse>, Status> {
        let caller = Caller::of(&request)?;
        record_user(&caller);
        caller.require_admin()?;
        let reversal = Reversal::parse(request.into_inner(), caller.user_id())?;
        let row = reverse::reverse(
            &self.db,
            &self.nats,
            &self.topology,
            &reversal,
            &self.metrics,
        )
        .await?;
        let pieces = events::allocations(&self.db, [row.investment_id()])
            .await
            .map_err(Error::from)?;
        let pieces = wire::allocations(pieces)
            .remove(&row.id)
            .unwrap_or_default();
        Ok(Response::new(pb::ReverseAllocationResponse {
            investment: Some(wire::with_allocations(&row, pieces)),
        }))
    }
}
