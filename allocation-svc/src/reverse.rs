//! ReverseAllocation: an admin undoes a completed investment (a refund, a mistaken trade).
//!
//! One transaction, in the allocator's lock order (deal -> investment -> batches ->
//! subscription), so it never deadlocks with an allocation of the same pool and the pool's
//! units are never counted twice: its `user_investments` rows are marked `is_reversed`, their
//! units go back to the batches they came from (one statement), and the investment becomes
//! `reversed` with who, why, when and the request id, through [`events::change_status`] (its
//! event logged). The `committed_amount` trigger gives the value back to the subscription.
//! After the commit the change is announced like any other status change.
//!
//! Idempotent by `request_id` (AIP-155): the same key returns the reversal it made.

use allocation_bus::Topology;
use api::v1 as pb;
use entity::prelude::*;
use ledger::events;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, SqlErr, Statement, TransactionTrait,
    sea_query::{Expr, LockType},
};
use uuid::Uuid;

use crate::{Error, Result};

/// The longest reason accepted (the column's CHECK).
pub const MAX_REASON_LEN: usize = 1000;

/// A validated ReverseAllocationRequest.
#[derive(Clone, Debug)]
pub struct Reversal {
    /// The investment to reverse.
    pub investment_id: InvestmentId,
    /// Why.
    pub reason: String,
    /// The idempotency key, if given.
    pub request_id: Option<String>,
    /// The admin reversing it.
    pub by: UserId,
}

impl Reversal {
    /// Validates every field of `request` made by `by`.
    pub fn parse(request: pb::ReverseAllocationRequest, by: UserId) -> Result<Self> {
        let mut v = service_kit::status::Violations::default();
        let investment_id = v.id("investment_id", &request.investment_id);
        let reason = request.reason.trim();
        if reason.is_empty() {
            v.add("reason", "required");
        } else if reason.chars().count() > MAX_REASON_LEN {
            v.add(
                "reason",
                format!("must be at most {MAX_REASON_LEN} characters"),
            );
        } else if reason
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            v.add("reason", "must not contain control characters");
        }
        let request_id = v.request_id("request_id", request.request_id);
        v.finish()?;
        Ok(Self {
            investment_id,
            reason: reason.to_owned(),
            request_id,
            by,
        })
    }
}

const LOCK_DEAL: &str = "SELECT id FROM deals WHERE id = $1 FOR NO KEY UPDATE";

/// Marks the investment's allocations reversed and gives their units back to their batches.
const RETURN_UNITS: &str = r#"
WITH reversed AS (
    UPDATE user_investments SET is_reversed = true
    WHERE investment_id = $1 AND NOT is_reversed
    RETURNING bulk_purchase_id, units_allocated
)
UPDATE bulk_purchases b SET units_remaining = b.units_remaining + r.units
FROM (SELECT bulk_purchase_id, sum(units_allocated) AS units FROM reversed
      GROUP BY bulk_purchase_id) r
WHERE b.id = r.bulk_purchase_id
"#;

/// Reverses a `completed` investment, or returns the one this request id reversed; a reversal
/// made now is counted in `metrics`.
pub async fn reverse(
    db: &DatabaseConnection,
    nats: &async_nats::Client,
    topology: &Topology,
    reversal: &Reversal,
    metrics: &crate::metrics::Metrics,
) -> Result<investment::Model> {
    let (row, now) = match reverse_in_txn(db, reversal).await {
        Err(Error::Db(e)) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            // The same request id raced us on another investment.
            return Err(Error::RequestIdReused);
        }
        other => other?,
    };
    if now {
        metrics.reversals.inc();
        let event = wire::status_event(&row, Vec::new());
        allocation_bus::announce_status(nats, topology, row.owner(), row.investment_id(), &event)
            .await;
        tracing::info!(investment_id = %row.id, reversed_by = %reversal.by, "allocation reversed by an admin");
    }
    Ok(row)
}

/// The transaction; `true` with the row if it reversed it now.
async fn reverse_in_txn(
    db: &DatabaseConnection,
    reversal: &Reversal,
) -> Result<(investment::Model, bool)> {
    let id = reversal.investment_id;
    if let Some(request_id) = &reversal.request_id {
        let earlier = Investment::find()
            .filter(investment::Column::ReversalRequestId.eq(request_id.as_str()))
            .one(db)
            .await?;
        match earlier {
            Some(row) if row.id == id.uuid() => return Ok((row, false)),
            Some(_) => return Err(Error::RequestIdReused),
            None => {}
        }
    }
    // Settled without waiting for the pool when it is plainly not reversible...
    let unlocked = Investment::find_by_id(id.uuid())
        .one(db)
        .await?
        .ok_or(Error::NotFound("investment"))?;
    if let Some(settled) = settled(unlocked.clone(), reversal) {
        return settled;
    }
    let txn = db.begin().await?;
    txn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        LOCK_DEAL,
        [unlocked.deal_id.into()],
    ))
    .await?;
    let row = Investment::find_by_id(id.uuid())
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("investment"))?;
    // ...and decided again under the locks (a reversal by the same request may have won).
    if let Some(settled) = settled(row, reversal) {
        return settled;
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        RETURN_UNITS,
        [id.uuid().into()],
    ))
    .await?;
    let by: Uuid = reversal.by.uuid();
    let extra = vec![
        // Stamped now, under the deal lock, as allocation rows are: the audit replays the pool in
        // that order (see the migration).
        (
            investment::Column::ReversedAt,
            Expr::cust("clock_timestamp()"),
        ),
        (investment::Column::ReversedBy, Expr::val(by)),
        (
            investment::Column::ReversalReason,
            Expr::val(reversal.reason.clone()),
        ),
        (
            investment::Column::ReversalRequestId,
            Expr::val(reversal.request_id.clone()),
        ),
    ];
    let reversed = events::change_status(&txn, &[id], AllocationStatus::Reversed, extra)
        .await?
        .pop()
        .ok_or(Error::NotFound("investment"))?;
    txn.commit().await?;
    Ok((reversed, true))
}

/// What a reversal of `row` answers without changing anything: the reversal this request
/// made, or the refusal of anything but `completed`. `None`: reverse it.
fn settled(
    row: investment::Model,
    reversal: &Reversal,
) -> Option<Result<(investment::Model, bool)>> {
    if row.allocation_status == AllocationStatus::Reversed
        && reversal.request_id.is_some()
        && row.reversal_request_id == reversal.request_id
    {
        return Some(Ok((row, false)));
    }
    (row.allocation_status != AllocationStatus::Completed).then(|| {
        Err(Error::FailedPrecondition {
            kind: "ALLOCATION_STATUS",
            subject: "investment_id",
            message: format!(
                "only ALLOCATION_STATUS_COMPLETED investments can be reversed; this one is {}",
                wire::allocation_status(row.allocation_status).as_str_name()
            ),
        })
    })
}
