//! One unit of work: allocate a micro-batch of one pool's requests (docs/architecture.md). The lane
//! loop only feeds it; tests call it directly.
//!
//! Two transactions, so watchers see `PROCESSING` before the outcome:
//! 1. lock the deal, lock the investments (by id), mark the `pending` ones `processing`;
//! 2. lock the deal, the investments and the deal's batches (FIFO), run the pure
//!    [`allocate`](crate::allocate) step, write batches, `user_investments` and outcomes.
//!
//! Each status change bumps `status_version` and is logged in `allocation_events` in the same
//! transaction; status events go to NATS after the commit; the lane acks after that. A
//! redelivered request for a finished investment changes nothing (invariant 4).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use api::v1 as pb;
use entity::prelude::*;
use ledger::events;
use sea_orm::{
    ActiveEnum,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
    sea_query::{Expr, ExprTrait, LockType},
};
use service_kit::messaging::{self, Topology};
use uuid::Uuid;

use crate::{
    allocate::{self, Outcome},
    config::AllocatorArgs,
};

/// What to tell NATS about one request once its batch is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done (allocated, failed, or already finished before): acknowledge.
    Ack,
    /// A transient fault: redeliver after this delay.
    Retry(Duration),
    /// Garbage or an unknown investment: never redeliver.
    Reject,
}

/// One request as a lane hands it to the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// The investment to allocate.
    pub investment_id: Uuid,
    /// How many times NATS has delivered it (1 the first time).
    pub delivered: i64,
}

/// Allocates micro-batches; cheap to clone.
#[derive(Clone)]
pub struct Allocator {
    db: DatabaseConnection,
    nats: async_nats::Client,
    topology: Topology,
    args: AllocatorArgs,
    /// Failed attempts the database could not record (it was unreachable), with the last
    /// cause: written with the next attempt, so an outage also spends the retry budget.
    unrecorded: Arc<Mutex<HashMap<Uuid, (i32, String)>>>,
}

/// Most investments remembered in [`Allocator::unrecorded`]; a replica that lost its
/// requests to another one forgets them past this.
const MAX_UNRECORDED: usize = 10_000;

impl Allocator {
    /// An allocator writing to `db` and announcing status changes on `nats`.
    pub fn new(
        db: DatabaseConnection,
        nats: async_nats::Client,
        topology: Topology,
        args: AllocatorArgs,
    ) -> Self {
        Self {
            db,
            nats,
            topology,
            args,
            unrecorded: Arc::default(),
        }
    }

    fn take_unrecorded(&self, id: Uuid) -> Option<(i32, String)> {
        self.unrecorded.lock().ok()?.remove(&id)
    }

    fn remember_unrecorded(&self, id: Uuid, failures: i32, cause: String) {
        if let Ok(mut unrecorded) = self.unrecorded.lock() {
            if unrecorded.len() >= MAX_UNRECORDED {
                unrecorded.clear();
            }
            unrecorded.insert(id, (failures, cause));
        }
    }

    /// Writes the attempts an outage kept from being recorded. Returns the jobs still to
    /// allocate and the verdicts of those whose budget the outage used up (now `FAILED`).
    async fn catch_up_unrecorded(&self, jobs: &[Job]) -> (Vec<Job>, HashMap<Uuid, Verdict>) {
        let mut remaining = Vec::with_capacity(jobs.len());
        let mut settled = HashMap::new();
        for job in jobs {
            let Some((failures, cause)) = self.take_unrecorded(job.investment_id) else {
                remaining.push(*job);
                continue;
            };
            match self
                .try_record_failure(job.investment_id, failures, &cause)
                .await
            {
                Ok(Some(row)) if row.allocation_status == AllocationStatus::Failed => {
                    tracing::error!(investment_id = %row.id, error = %cause, attempts = row.allocation_attempts, "allocation failed permanently");
                    settled.insert(job.investment_id, Verdict::Ack);
                }
                Ok(Some(_)) => remaining.push(*job),
                Ok(None) => {
                    settled.insert(job.investment_id, Verdict::Ack);
                }
                Err(_) => {
                    self.remember_unrecorded(job.investment_id, failures, cause);
                    remaining.push(*job);
                }
            }
        }
        (remaining, settled)
    }

    /// Allocates `jobs` of pool `deal_id`, in arrival order; one verdict per job.
    ///
    /// If the batch transaction fails, its jobs are tried one by one, so one bad request
    /// cannot fail its neighbours; a job that still fails is recorded as a failed attempt.
    pub async fn run_batch(&self, deal_id: Uuid, jobs: &[Job]) -> Vec<Verdict> {
        let (todo, mut verdicts) = self.catch_up_unrecorded(jobs).await;
        for (job, verdict) in todo.iter().zip(self.run_jobs(deal_id, &todo).await) {
            verdicts.insert(job.investment_id, verdict);
        }
        jobs.iter()
            .map(|j| {
                verdicts
                    .get(&j.investment_id)
                    .copied()
                    .unwrap_or(Verdict::Ack)
            })
            .collect()
    }

    async fn run_jobs(&self, deal_id: Uuid, jobs: &[Job]) -> Vec<Verdict> {
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        match self.try_batch(deal_id, jobs).await {
            Ok(verdicts) => verdicts,
            // A fault of the pool or the database, not of one request: every job failed alike.
            Err(e) if is_pool_wide(&e) => {
                let mut verdicts = Vec::with_capacity(jobs.len());
                for job in jobs {
                    verdicts.push(self.record_failure(*job, &e).await);
                }
                verdicts
            }
            Err(e) if jobs.len() > 1 => {
                tracing::warn!(%deal_id, error = %e, jobs = jobs.len(), "batch failed; retrying its jobs one by one");
                let mut verdicts = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let verdict = match self.try_batch(deal_id, std::slice::from_ref(job)).await {
                        Ok(v) => v.first().copied().unwrap_or(Verdict::Ack),
                        Err(e) => self.record_failure(*job, &e).await,
                    };
                    verdicts.push(verdict);
                }
                verdicts
            }
            Err(e) => vec![self.record_failure(*first, &e).await],
        }
    }

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.db.begin().await?;
        let ms = self.args.lock_timeout.as_millis();
        txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{ms}ms'"))
            .await?;
        Ok(txn)
    }

    async fn try_batch(&self, deal_id: Uuid, jobs: &[Job]) -> Result<Vec<Verdict>, DbErr> {
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.investment_id).collect();

        // 1. pending -> processing.
        let txn = self.begin().await?;
        let Some(rows) = lock(&txn, deal_id, &ids).await? else {
            tracing::warn!(%deal_id, "requests for an unknown deal rejected");
            return Ok(vec![Verdict::Reject; jobs.len()]);
        };
        let mut verdicts = HashMap::new();
        let mut active = Vec::new();
        let mut to_mark = Vec::new();
        let mut finished = Vec::new();
        for id in &ids {
            match rows.get(id) {
                None => {
                    tracing::warn!(investment_id = %id, "request for an unknown investment rejected");
                    verdicts.insert(*id, Verdict::Reject);
                }
                Some(row) if row.deal_id != deal_id => {
                    tracing::warn!(investment_id = %id, %deal_id, "request on another deal's subject rejected");
                    verdicts.insert(*id, Verdict::Reject);
                }
                Some(row) if row.allocation_status.is_terminal() => {
                    tracing::info!(investment_id = %id, "already allocated; redelivery ignored");
                    verdicts.insert(*id, Verdict::Ack);
                    finished.push(row.clone());
                }
                Some(row) => {
                    if row.allocation_status == AllocationStatus::Pending {
                        to_mark.push(row.id);
                    }
                    if !active.contains(id) {
                        active.push(*id);
                    }
                }
            }
        }
        let marked = set_status(&txn, &to_mark, AllocationStatus::Processing, Vec::new()).await?;
        events::record(&txn, &marked).await?;
        txn.commit().await?;
        self.announce(&marked).await;
        // A status event lost in a crash after the commit is sent again on redelivery.
        self.announce(&finished).await;

        // 2. processing -> completed | failed.
        if !active.is_empty() {
            let txn = self.begin().await?;
            let rows = lock(&txn, deal_id, &active).await?.unwrap_or_default();
            let requests: Vec<_> = active
                .iter()
                .filter_map(|id| rows.get(id))
                .filter(|row| row.allocation_status == AllocationStatus::Processing)
                .map(|row| allocate::Request {
                    investment_id: row.id,
                    shares: row.shares,
                    price_per_share: row.price_per_share,
                })
                .collect();
            let changed = self.allocate(&txn, deal_id, &rows, &requests).await?;
            events::record(&txn, &changed).await?;
            txn.commit().await?;
            self.announce(&changed).await;
            for id in &active {
                verdicts.insert(*id, Verdict::Ack);
            }
        }
        Ok(ids.iter().map(|id| verdicts[id]).collect())
    }

    /// Runs the pure step over the locked batches and writes its result; returns the
    /// investments whose status changed.
    async fn allocate(
        &self,
        txn: &DatabaseTransaction,
        deal_id: Uuid,
        rows: &HashMap<Uuid, investment::Model>,
        requests: &[allocate::Request],
    ) -> Result<Vec<investment::Model>, DbErr> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let stored = BulkPurchase::find()
            .filter(bulk_purchase::Column::DealId.eq(deal_id))
            .filter(bulk_purchase::Column::UnitsRemaining.gt(0))
            .order_by_asc(bulk_purchase::Column::PurchasedAt)
            .order_by_asc(bulk_purchase::Column::Id)
            .lock(LockType::NoKeyUpdate)
            .all(txn)
            .await?;
        let mut batches: Vec<_> = stored
            .iter()
            .map(|b| allocate::Batch {
                id: b.id,
                remaining: b.units_remaining,
            })
            .collect();
        let outcomes = allocate::allocate(&mut batches, requests);

        let changed_batches: Vec<_> = batches
            .iter()
            .zip(&stored)
            .filter(|(now, before)| now.remaining != before.units_remaining)
            .map(|(now, _)| now)
            .collect();
        update_remaining(txn, &changed_batches).await?;

        let mut pieces = Vec::new();
        let mut completed = Vec::new();
        let mut changed = Vec::new();
        for (request, outcome) in requests.iter().zip(outcomes) {
            let row = &rows[&request.investment_id];
            match outcome {
                Outcome::Allocated(allocated) => {
                    completed.push(row.id);
                    pieces.extend(allocated.into_iter().map(|p| user_investment::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        user_id: Set(row.user_id),
                        subscription_id: Set(row.subscription_id),
                        investment_id: Set(row.id),
                        deal_id: Set(row.deal_id),
                        bulk_purchase_id: Set(p.batch_id),
                        units_allocated: Set(p.units),
                        value_allocated: Set(p.value),
                        is_reversed: Set(false),
                        ..Default::default()
                    }));
                }
                Outcome::Insufficient {
                    requested,
                    available,
                } => {
                    let error = format!(
                        "insufficient inventory: {requested} shares requested, {available} units left in the pool"
                    );
                    tracing::info!(investment_id = %row.id, %error, "allocation failed");
                    let failed = set_status(
                        txn,
                        &[row.id],
                        AllocationStatus::Failed,
                        vec![(investment::Column::AllocationError, Expr::val(error))],
                    )
                    .await?;
                    changed.extend(failed);
                }
            }
        }
        if !pieces.is_empty() {
            UserInvestment::insert_many(pieces).exec(txn).await?;
        }
        let completed = set_status(
            txn,
            &completed,
            AllocationStatus::Completed,
            vec![
                (investment::Column::AllocatedAt, Expr::cust("now()")),
                (
                    investment::Column::AllocationError,
                    Expr::val(Option::<String>::None),
                ),
            ],
        )
        .await?;
        changed.extend(completed);
        Ok(changed)
    }

    /// A transient fault: back to `pending` with one more attempt, or `FAILED` after the last.
    async fn record_failure(&self, job: Job, error: &DbErr) -> Verdict {
        let cause = error.to_string();
        let earlier = self
            .take_unrecorded(job.investment_id)
            .map_or(0, |(n, _)| n);
        match self
            .try_record_failure(job.investment_id, earlier + 1, &cause)
            .await
        {
            Ok(Some(row)) if row.allocation_status == AllocationStatus::Failed => {
                tracing::error!(investment_id = %row.id, error = %cause, attempts = row.allocation_attempts, "allocation failed permanently");
                Verdict::Ack
            }
            Ok(Some(row)) => {
                let delay = self.args.backoff(row.allocation_attempts);
                tracing::warn!(investment_id = %row.id, error = %cause, attempt = row.allocation_attempts, ?delay, "allocation attempt failed; will retry");
                Verdict::Retry(delay)
            }
            // Finished meanwhile, or gone: nothing left to retry.
            Ok(None) => Verdict::Ack,
            // The database cannot even record the attempt: let NATS bring it back later.
            Err(e) => {
                self.remember_unrecorded(job.investment_id, earlier + 1, cause);
                let attempt = i32::try_from(job.delivered).unwrap_or(i32::MAX);
                let delay = self.args.backoff(attempt);
                tracing::warn!(investment_id = %job.investment_id, error = %e, ?delay, "cannot record the failed attempt; will retry");
                Verdict::Retry(delay)
            }
        }
    }

    /// Adds `failures` attempts to the investment: back to `pending`, or `FAILED` once the
    /// budget is spent.
    async fn try_record_failure(
        &self,
        id: Uuid,
        failures: i32,
        cause: &str,
    ) -> Result<Option<investment::Model>, DbErr> {
        let txn = self.db.begin().await?;
        let Some(row) = Investment::find_by_id(id)
            .lock(LockType::NoKeyUpdate)
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        if row.allocation_status.is_terminal() {
            return Ok(None);
        }
        let attempts = row.allocation_attempts + failures;
        let (status, error) = if attempts >= self.args.max_attempts {
            (
                AllocationStatus::Failed,
                format!("permanent failure after {attempts} attempts: {cause}"),
            )
        } else {
            (AllocationStatus::Pending, cause.to_owned())
        };
        let extra = vec![
            (investment::Column::AllocationAttempts, Expr::val(attempts)),
            (investment::Column::AllocationError, Expr::val(error)),
        ];
        let Some(updated) = set_status(&txn, &[row.id], status, extra).await?.pop() else {
            return Ok(None);
        };
        events::record(&txn, std::slice::from_ref(&updated)).await?;
        txn.commit().await?;
        self.announce(std::slice::from_ref(&updated)).await;
        Ok(Some(updated))
    }

    /// Publishes the status events of `rows` (after their commit). A lost event only delays
    /// watchers until their next re-read of the event log.
    async fn announce(&self, rows: &[investment::Model]) {
        if rows.is_empty() {
            return;
        }
        let completed = rows
            .iter()
            .filter(|r| r.allocation_status == AllocationStatus::Completed)
            .map(|r| r.id);
        let mut allocations = match events::allocations(&self.db, completed).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read allocations for status events");
                HashMap::new()
            }
        };
        for row in rows {
            let event: pb::AllocationStatusEvent =
                events::status_event(row, allocations.remove(&row.id).unwrap_or_default());
            if let Err(e) =
                messaging::publish_status(&self.nats, &self.topology, row.user_id, row.id, &event)
                    .await
            {
                tracing::warn!(investment_id = %row.id, error = %e, "status event not published");
            }
        }
    }
}

/// Lock waits, lost races and lost connections hit every job of a batch alike: retrying the
/// jobs one by one would only repeat the wait per job.
fn is_pool_wide(error: &DbErr) -> bool {
    matches!(error, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        || service_kit::status::is_contention(error)
        || service_kit::status::is_unavailable(error)
}

/// Locks the deal row (serializing its pool across replicas), then the investments by id:
/// the lock order of every allocation transaction. `None` if the deal does not exist.
async fn lock(
    txn: &DatabaseTransaction,
    deal_id: Uuid,
    ids: &[Uuid],
) -> Result<Option<HashMap<Uuid, investment::Model>>, DbErr> {
    // NO KEY UPDATE, not UPDATE: it still serializes allocators, but does not wait for (or
    // deadlock with) creates, whose foreign keys take KEY SHARE locks on the deal row.
    if Deal::find_by_id(deal_id)
        .lock(LockType::NoKeyUpdate)
        .one(txn)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let rows = Investment::find()
        .filter(investment::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(investment::Column::Id)
        .lock(LockType::NoKeyUpdate)
        .all(txn)
        .await?;
    Ok(Some(rows.into_iter().map(|r| (r.id, r)).collect()))
}

/// Moves `ids` to `status` (and the investment status that goes with it), bumping `status_version` and `updated_at`, with extra column
/// values. Callers log the returned rows with [`events::record`].
pub(crate) async fn set_status(
    txn: &DatabaseTransaction,
    ids: &[Uuid],
    status: AllocationStatus,
    extra: Vec<(investment::Column, Expr)>,
) -> Result<Vec<investment::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut update = Investment::update_many()
        .col_expr(
            investment::Column::AllocationStatus,
            ActiveEnum::as_enum(&status),
        )
        .col_expr(
            investment::Column::Status,
            ActiveEnum::as_enum(&status.investment_status()),
        )
        .col_expr(
            investment::Column::StatusVersion,
            Expr::col(investment::Column::StatusVersion).add(1),
        )
        .col_expr(investment::Column::UpdatedAt, Expr::cust("now()"));
    for (column, value) in extra {
        update = update.col_expr(column, value);
    }
    update
        .filter(investment::Column::Id.is_in(ids.iter().copied()))
        .exec_with_returning(txn)
        .await
}

/// Writes the new `units_remaining` of the batches the step changed, in one statement.
async fn update_remaining(
    txn: &DatabaseTransaction,
    batches: &[&allocate::Batch],
) -> Result<(), DbErr> {
    if batches.is_empty() {
        return Ok(());
    }
    let mut values = Vec::with_capacity(batches.len() * 2);
    let rows: Vec<String> = batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            values.push(Value::from(b.id));
            values.push(Value::from(b.remaining));
            format!("(${}::uuid, ${}::bigint)", 2 * i + 1, 2 * i + 2)
        })
        .collect();
    let sql = format!(
        "UPDATE bulk_purchases b SET units_remaining = v.remaining \
         FROM (VALUES {}) AS v(id, remaining) WHERE b.id = v.id",
        rows.join(", ")
    );
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?;
    Ok(())
}
