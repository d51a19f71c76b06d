//! Transient faults: the attempt count and the backoff.
//!
//! A fault of the pool or the database (lock timeout, serialization failure, database out of
//! reach) sends the investment back to `pending` with the attempt counted and the error kept,
//! and the request is NAKed with the delay of `RETRY_BACKOFF` for that attempt (a plain NAK
//! would redeliver at once). After `MAX_ATTEMPTS` it is `FAILED` with "permanent failure after
//! N attempts: <cause>".
//!
//! The attempt count is durable: the larger of the attempts recorded on the row plus one and
//! NATS's delivery count. So the deliveries an outage kept from being recorded count as soon
//! as a failure can be written, and nothing is remembered in the process. An outage alone
//! never fails an investment: its requests come back with backoff until PostgreSQL answers.

use entity::prelude::*;
use ledger::events;
use sea_orm::{
    DbErr, EntityTrait, QuerySelect, TransactionTrait,
    sea_query::{Expr, LockType},
};

use crate::worker::{Allocator, Job, Verdict};

/// Lock waits, lost races and lost connections hit every job of a batch alike: retrying the
/// jobs one by one would only repeat the wait per job.
pub(crate) fn is_pool_wide(error: &DbErr) -> bool {
    matches!(error, DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        || service_kit::status::is_contention(error)
        || service_kit::status::is_unavailable(error)
}

impl Allocator {
    /// Records a failed attempt of `job` and says when NATS should bring it back.
    pub(crate) async fn record_failure(&self, job: Job, error: &DbErr) -> Verdict {
        let kind = if service_kit::status::is_contention(error) {
            "lock_timeout"
        } else if service_kit::status::is_unavailable(error) {
            "database_unavailable"
        } else {
            "database_error"
        };
        crate::metrics::METRICS
            .retries
            .get_or_create(&crate::metrics::Retry { cause: kind })
            .inc();
        let cause = error.to_string();
        let delivered = i32::try_from(job.delivered).unwrap_or(i32::MAX);
        match self
            .try_record_failure(job.investment_id, delivered, &cause)
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
            // The database cannot even record the attempt: the delivery count will.
            Err(e) => {
                let delay = self.args.backoff(delivered);
                tracing::warn!(investment_id = %job.investment_id, error = %e, ?delay, "cannot record the failed attempt; will retry");
                Verdict::Retry(delay)
            }
        }
    }

    /// Counts the attempt (at least `delivered`): back to `pending`, or `FAILED` once the
    /// budget is spent.
    async fn try_record_failure(
        &self,
        id: InvestmentId,
        delivered: i32,
        cause: &str,
    ) -> Result<Option<investment::Model>, DbErr> {
        let txn = self.db.begin().await?;
        let Some(row) = Investment::find_by_id(id.uuid())
            .lock(LockType::NoKeyUpdate)
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        if row.allocation_status.is_terminal() {
            return Ok(None);
        }
        let attempts = (row.allocation_attempts + 1).max(delivered);
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
        let updated = events::change_status(&txn, &[row.investment_id()], status, extra).await?;
        txn.commit().await?;
        self.settle(&updated).await;
        Ok(updated.into_iter().next())
    }
}
