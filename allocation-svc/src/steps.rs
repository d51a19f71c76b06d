//! The steps of the unit of work ([`worker`](crate::worker)): mark processing, allocate and
//! persist, settle. Lock order in every transaction: deal -> investments (by id) -> batches
//! (FIFO) -> subscriptions of failing investments (by id).

use std::collections::{BTreeSet, HashMap};

use api::v1 as pb;
use entity::prelude::*;
use ledger::events;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
    sea_query::{Expr, LockType},
};
use service_kit::messaging;
use uuid::Uuid;

use crate::{
    allocate::{self, Outcome},
    worker::{Allocator, Verdict, Verdicts},
};

/// What marking a batch `processing` found.
pub(crate) struct Marked {
    /// Settled already: unknown or misrouted requests (rejected), finished ones (acked).
    pub verdicts: Verdicts,
    /// The investments to allocate, in arrival order, each once.
    pub active: Vec<InvestmentId>,
    /// Those this step moved to `processing`.
    pub marked: Vec<investment::Model>,
    /// Those finished before (a redelivery): their last status is announced again.
    pub finished: Vec<investment::Model>,
}

impl Allocator {
    /// Step 1: locks the deal and the investments, settles what is not to be allocated, and
    /// moves the `pending` ones to `processing`. `None` if the deal does not exist.
    pub(crate) async fn mark_processing(
        &self,
        txn: &DatabaseTransaction,
        deal_id: DealId,
        ids: &[InvestmentId],
    ) -> Result<Option<Marked>, DbErr> {
        let Some(rows) = lock(txn, deal_id, ids).await? else {
            return Ok(None);
        };
        let mut verdicts = HashMap::new();
        let mut active = Vec::new();
        let mut to_mark = Vec::new();
        let mut finished = Vec::new();
        for id in ids {
            match rows.get(id) {
                None => {
                    tracing::warn!(investment_id = %id, "request for an unknown investment rejected");
                    verdicts.insert(*id, Verdict::Reject);
                }
                Some(row) if row.deal() != deal_id => {
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
                        to_mark.push(row.investment_id());
                    }
                    if !active.contains(id) {
                        active.push(*id);
                    }
                }
            }
        }
        let marked =
            events::change_status(txn, &to_mark, AllocationStatus::Processing, Vec::new()).await?;
        Ok(Some(Marked {
            verdicts,
            active,
            marked,
            finished,
        }))
    }

    /// Step 2: locks the deal, the investments and the deal's batches, runs the pure step
    /// over the `processing` ones and writes its result; returns the investments whose status
    /// changed.
    pub(crate) async fn allocate_and_persist(
        &self,
        txn: &DatabaseTransaction,
        deal_id: DealId,
        active: &[InvestmentId],
    ) -> Result<Vec<investment::Model>, DbErr> {
        let rows = lock(txn, deal_id, active).await?.unwrap_or_default();
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
        let outcomes = allocate::allocate(&mut batches, &requests);
        let failing = requests
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| matches!(outcome, Outcome::Insufficient { .. }))
            .map(|(r, _)| rows[&InvestmentId(r.investment_id)].subscription_id);
        lock_subscriptions(txn, failing.collect()).await?;

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
            let row = &rows[&InvestmentId(request.investment_id)];
            match outcome {
                Outcome::Allocated(allocated) => {
                    completed.push(row.investment_id());
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
                    let failed = events::change_status(
                        txn,
                        &[row.investment_id()],
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
        let completed = events::change_status(
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

    /// Step 3, after each commit: publishes the status events of `rows`, each the complete
    /// update (allocations included once completed). A lost event only delays watchers until
    /// they repair from the event log.
    pub(crate) async fn settle(&self, rows: &[investment::Model]) {
        if rows.is_empty() {
            return;
        }
        for row in rows {
            let outcome = match row.allocation_status {
                AllocationStatus::Completed => "completed",
                AllocationStatus::Failed => "failed",
                AllocationStatus::Pending | AllocationStatus::Processing => continue,
            };
            crate::metrics::METRICS
                .allocations
                .get_or_create(&crate::metrics::Outcome { outcome })
                .inc();
        }
        let completed = rows
            .iter()
            .filter(|r| r.allocation_status == AllocationStatus::Completed)
            .map(investment::Model::investment_id);
        let mut allocations = match events::allocations(&self.db, completed).await {
            Ok(rows) => wire::allocations(rows),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read allocations for status events");
                HashMap::new()
            }
        };
        for row in rows {
            let event: pb::AllocationStatusEvent =
                wire::status_event(row, allocations.remove(&row.id).unwrap_or_default());
            messaging::announce_status(
                &self.nats,
                &self.topology,
                row.owner(),
                row.investment_id(),
                &event,
            )
            .await;
        }
    }
}

/// Locks the deal row (serializing its pool across replicas), then the investments by id:
/// the lock order of every allocation transaction. `None` if the deal does not exist.
async fn lock(
    txn: &DatabaseTransaction,
    deal_id: DealId,
    ids: &[InvestmentId],
) -> Result<Option<HashMap<InvestmentId, investment::Model>>, DbErr> {
    // NO KEY UPDATE, not UPDATE: it still serializes allocators, but does not wait for (or
    // deadlock with) creates, whose foreign keys take KEY SHARE locks on the deal row.
    if Deal::find_by_id(deal_id.uuid())
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
    Ok(Some(
        rows.into_iter().map(|r| (r.investment_id(), r)).collect(),
    ))
}

/// Locks the subscriptions of the investments about to fail, in id order. A failure gives the
/// amount back to its subscription's `committed_amount` (by trigger), which takes these row
/// locks anyway; taking them in one order first keeps two pools' transactions from
/// deadlocking on them. (Completing an investment does not touch its subscription.)
async fn lock_subscriptions(txn: &DatabaseTransaction, ids: BTreeSet<Uuid>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    Subscription::find()
        .select_only()
        .column(subscription::Column::Id)
        .filter(subscription::Column::Id.is_in(ids))
        .order_by_asc(subscription::Column::Id)
        .lock(LockType::NoKeyUpdate)
        .into_tuple::<Uuid>()
        .all(txn)
        .await?;
    Ok(())
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
