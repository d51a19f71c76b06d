//! One unit of work: allocate a micro-batch of one pool's requests. The lane loop only feeds
//! it ([`Allocator::run_batch`]); tests call it directly.
//!
//! The work is one transaction and its announcements ([`steps`](crate::steps)):
//! 1. **allocate and persist**: lock the deal, the investments (by id) and the deal's batches
//!    (FIFO), run the pure [`allocate`](crate::allocate) step, write batches,
//!    `user_investments` and outcomes. Each investment's row is updated once, from `pending`
//!    straight to its outcome, and both of its status changes (`processing`, then the outcome)
//!    are logged in `allocation_events` in that transaction ([`ledger::outcomes`]);
//! 2. **announce**: after the commit, publish the status events, `processing` first; the
//!    lane acks after that.
//!
//! A redelivered request for a finished investment changes nothing (invariant 4). Transient
//! faults are [`retry`](crate::retry)'s business.

use std::{collections::HashMap, time::Duration};

use entity::prelude::{DealId, InvestmentId};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};
use service_kit::messaging::Topology;

use crate::{config::AllocatorArgs, retry, steps::Done};

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
    pub investment_id: InvestmentId,
    /// How many times NATS has delivered it (1 the first time): picks the delay while the
    /// database is out of reach; attempts are counted on the row (see [`retry`](crate::retry)).
    pub delivered: i64,
}

/// Allocates micro-batches; cheap to clone.
#[derive(Clone)]
pub struct Allocator {
    pub(crate) db: DatabaseConnection,
    pub(crate) nats: async_nats::Client,
    pub(crate) topology: Topology,
    pub(crate) args: AllocatorArgs,
}

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
        }
    }

    /// Allocates `jobs` of pool `deal_id`, in arrival order; one verdict per job.
    ///
    /// If the batch fails with a fault of the whole pool or database, every job has it (a
    /// failed attempt, or sent back uncounted while the database is out of reach); with any
    /// other error its jobs are tried one by one, so one bad request cannot fail its
    /// neighbours.
    pub async fn run_batch(&self, deal_id: DealId, jobs: &[Job]) -> Vec<Verdict> {
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        crate::metrics::METRICS
            .micro_batch_size
            .observe(jobs.len() as f64);
        match self.try_batch(deal_id, jobs).await {
            Ok(verdicts) => verdicts,
            Err(e) if retry::is_pool_wide(&e) => {
                let mut verdicts = Vec::with_capacity(jobs.len());
                for job in jobs {
                    verdicts.push(self.on_fault(*job, &e).await);
                }
                verdicts
            }
            Err(e) if jobs.len() > 1 => {
                tracing::warn!(%deal_id, error = %e, jobs = jobs.len(), "batch failed; retrying its jobs one by one");
                let mut verdicts = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let verdict = match self.try_batch(deal_id, std::slice::from_ref(job)).await {
                        Ok(v) => v.first().copied().unwrap_or(Verdict::Ack),
                        Err(e) => self.on_fault(*job, &e).await,
                    };
                    verdicts.push(verdict);
                }
                verdicts
            }
            Err(e) => vec![self.on_fault(*first, &e).await],
        }
    }

    /// The allocation transaction over `jobs`, then its announcements; an error means
    /// nothing was committed.
    async fn try_batch(&self, deal_id: DealId, jobs: &[Job]) -> Result<Vec<Verdict>, DbErr> {
        let ids: Vec<InvestmentId> = jobs.iter().map(|j| j.investment_id).collect();

        let txn = self.begin().await?;
        let Some(Done {
            verdicts,
            changed,
            allocations,
            finished,
        }) = self.allocate_batch(&txn, deal_id, &ids).await?
        else {
            tracing::warn!(%deal_id, "requests for an unknown deal rejected");
            return Ok(vec![Verdict::Reject; jobs.len()]);
        };
        txn.commit().await?;
        self.announce(&changed, allocations).await;
        // A status event lost in a crash after the commit is sent again on redelivery.
        self.settle(&finished).await;
        Ok(ids
            .iter()
            .map(|id| verdicts.get(id).copied().unwrap_or(Verdict::Ack))
            .collect())
    }

    /// A transaction whose row-lock waits end after `LOCK_TIMEOUT`.
    pub(crate) async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.db.begin().await?;
        let timeout = format!("{}ms", self.args.lock_timeout.as_millis());
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('lock_timeout', $1, true)",
            [timeout.into()],
        ))
        .await?;
        Ok(txn)
    }
}

/// Verdicts by investment, while a batch is worked on.
pub(crate) type Verdicts = HashMap<InvestmentId, Verdict>;
