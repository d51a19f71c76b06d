//! Faults of an allocation, and which of them spend its budget (`MAX_ATTEMPTS`).
//!
//! - **The database out of reach** (no pooled connection within `DATABASE_ACQUIRE_TIMEOUT`,
//!   a connection refused or cut, PostgreSQL shutting down or out of resources) says nothing
//!   about the request: nothing is counted and nothing is written. The request is NAKed with the
//!   `RETRY_BACKOFF` delay for its NATS delivery count, and the row keeps its status
//!   (`pending`: an attempt commits nothing until its outcome) and its attempts. An outage or
//!   an exhausted pool alone therefore never fails an investment: its requests come back with
//!   backoff until PostgreSQL answers (`allocation_requeues_total`).
//! - **A failed attempt** (lock timeout, serialization failure or deadlock, any other database
//!   error while allocating) is counted on the row, durably: `allocation_attempts + 1` in the
//!   transaction that logs the attempt (`processing`) and sends it back to `pending` with the
//!   error, and the request is NAKed with
//!   the delay for that attempt (a plain NAK would redeliver at once). After `MAX_ATTEMPTS`
//!   it is `FAILED` with "permanent failure after N attempts: <cause>".
//!
//! The count lives only on the row: nothing is remembered in the process, and NATS's delivery
//! count only picks a delay. A failed attempt that cannot be written (the database went away
//! meanwhile) is not counted: the request comes back like an outage's.

use std::sync::Arc;

use entity::prelude::*;
use ledger::outcomes;
use sea_orm::{
    DatabaseConnection, DbErr, EntityTrait, QuerySelect, TransactionTrait, sea_query::LockType,
};

use super::{
    announce::Announcer,
    job::{Job, Verdict},
};
use crate::{
    config::AllocatorArgs,
    metrics::{Metrics, Retry},
};

/// Lock waits, lost races and lost connections hit every job of a batch alike: retrying the
/// jobs one by one would only repeat the wait per job.
pub(super) fn is_pool_wide(error: &DbErr) -> bool {
    out_of_reach(error).is_some() || service_kit::status::is_contention(error)
}

/// The cause, if `error` means the database cannot be reached (rather than that the attempt
/// failed): `pool_timeout` when no pooled connection came in time, else `database_unavailable`.
fn out_of_reach(error: &DbErr) -> Option<&'static str> {
    match error {
        DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout) => Some("pool_timeout"),
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Some("database_unavailable"),
        _ if service_kit::status::is_unavailable(error) => Some("database_unavailable"),
        _ => None,
    }
}

/// The retry policy: what becomes of a request whose attempt failed. Cheap to clone.
#[derive(Clone)]
pub(super) struct Faults {
    db: DatabaseConnection,
    args: AllocatorArgs,
    /// The failed attempt's status changes are announced like any others.
    announcer: Announcer,
    /// Where retries and requeues are counted.
    metrics: Arc<Metrics>,
}

impl Faults {
    pub(super) fn new(
        db: DatabaseConnection,
        args: AllocatorArgs,
        announcer: Announcer,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            args,
            announcer,
            metrics,
        }
    }

    /// Says when NATS should bring `job` back after `error`, counting the attempt on the row
    /// if `error` is a failed attempt rather than the database out of reach.
    pub(super) async fn on_fault(&self, job: Job, error: &DbErr) -> Verdict {
        let delivered = i32::try_from(job.delivered).unwrap_or(i32::MAX);
        if let Some(cause) = out_of_reach(error) {
            self.metrics.requeues.get_or_create(&Retry { cause }).inc();
            let delay = self.args.backoff(delivered);
            tracing::warn!(investment_id = %job.investment_id, error = %error, cause, ?delay, "database out of reach; request sent back, no attempt counted");
            return Verdict::Retry(delay);
        }
        let kind = if service_kit::status::is_contention(error) {
            "lock_timeout"
        } else {
            "database_error"
        };
        self.metrics
            .retries
            .get_or_create(&Retry { cause: kind })
            .inc();
        let cause = error.to_string();
        match self.try_record_failure(job.investment_id, &cause).await {
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
            // The attempt cannot be written, so it is not counted.
            Err(e) => {
                let delay = self.args.backoff(delivered);
                tracing::warn!(investment_id = %job.investment_id, error = %e, ?delay, "cannot record the failed attempt; sent back uncounted");
                Verdict::Retry(delay)
            }
        }
    }

    /// Counts one attempt on the row: back to `pending`, or `FAILED` once the budget is spent.
    async fn try_record_failure(
        &self,
        id: InvestmentId,
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
        let attempts = row.allocation_attempts.saturating_add(1);
        let (status, error, failure) = if attempts >= self.args.max_attempts {
            (
                AllocationStatus::Failed,
                format!("permanent failure after {attempts} attempts: {cause}"),
                Some(AllocationFailure::AttemptsExhausted),
            )
        } else {
            (AllocationStatus::Pending, cause.to_owned(), None)
        };
        // The attempt passed through `processing` (logged before its outcome, as a successful
        // one is): watchers see every attempt.
        let change = outcomes::Change {
            row,
            status,
            error: Some(error),
            failure,
            attempts,
        };
        let updated = outcomes::apply(&txn, &[change]).await?;
        txn.commit().await?;
        self.announcer.announce(&updated, Vec::new()).await;
        Ok(updated.into_iter().next().map(|c| c.row))
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{RuntimeErr, error::ConnAcquireErr};

    use super::*;

    #[test]
    fn an_unreachable_database_is_not_an_attempt_and_other_errors_are() {
        let timeout = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
        assert_eq!(out_of_reach(&timeout), Some("pool_timeout"));
        let refused = DbErr::Conn(RuntimeErr::Internal("refused".into()));
        assert_eq!(out_of_reach(&refused), Some("database_unavailable"));
        let other = DbErr::Custom("constraint".into());
        assert_eq!(out_of_reach(&other), None);
        assert!(!is_pool_wide(&other));
    }
}
