//! One unit of work: allocate a micro-batch of one pool's requests. The lane loop only feeds
//! it ([`Allocator::run_batch`]); tests call it directly.
//!
//! The work is one transaction ([`steps`]) and its announcements ([`announce`]):
//! 1. **allocate and persist**: lock the deal, the investments (by id) and the deal's batches
//!    (FIFO), run the pure [`allocate`](crate::allocate) step, write batches,
//!    `user_investments` and outcomes. Each investment's row is updated once, from `pending`
//!    straight to its outcome, and both of its status changes (`processing`, then the outcome)
//!    are logged in `allocation_events` in that transaction ([`ledger::outcomes`]);
//! 2. **announce**: after the commit, publish the status events, `processing` first; the
//!    lane acks after that.
//!
//! A redelivered request for a finished investment changes nothing (invariant 4). Transient
//! faults are [`retry`]'s business: this module owns the allocator and hands each part only
//! what it needs.

mod announce;
mod job;
mod retry;
mod steps;

use std::{sync::Arc, time::Duration};

use allocation_bus::Topology;
use entity::prelude::{DealId, InvestmentId};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};

pub use job::{Job, Verdict};

use crate::{config::AllocatorArgs, metrics::Metrics};
use announce::Announcer;
use retry::Faults;
use steps::Done;

/// Allocates micro-batches; cheap to clone.
#[derive(Clone)]
pub struct Allocator {
    db: DatabaseConnection,
    /// Row-lock waits inside the transaction end after this (`LOCK_TIMEOUT`).
    lock_timeout: Duration,
    announcer: Announcer,
    faults: Faults,
    metrics: Arc<Metrics>,
}

impl Allocator {
    /// An allocator writing to `db`, announcing status changes on `nats` and counting in
    /// `metrics`.
    pub fn new(
        db: DatabaseConnection,
        nats: async_nats::Client,
        topology: Topology,
        args: AllocatorArgs,
        metrics: Arc<Metrics>,
    ) -> Self {
        let announcer = Announcer::new(db.clone(), nats, topology, metrics.clone());
        Self {
            lock_timeout: args.lock_timeout,
            faults: Faults::new(db.clone(), args, announcer.clone(), metrics.clone()),
            announcer,
            db,
            metrics,
        }
    }

    /// The families it counts in (its lanes count there too).
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
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
        self.metrics.micro_batch_size.observe(jobs.len() as f64);
        match self.try_batch(deal_id, jobs).await {
            Ok(verdicts) => verdicts,
            Err(e) if retry::is_pool_wide(&e) => {
                let mut verdicts = Vec::with_capacity(jobs.len());
                for job in jobs {
                    verdicts.push(self.faults.on_fault(*job, &e).await);
                }
                verdicts
            }
            Err(e) if jobs.len() > 1 => {
                tracing::warn!(%deal_id, error = %e, jobs = jobs.len(), "batch failed; retrying its jobs one by one");
                let mut verdicts = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let verdict = match self.try_batch(deal_id, std::slice::from_ref(job)).await {
                        Ok(v) => v.first().copied().unwrap_or(Verdict::Ack),
                        Err(e) => self.faults.on_fault(*job, &e).await,
                    };
                    verdicts.push(verdict);
                }
                verdicts
            }
            Err(e) => vec![self.faults.on_fault(*first, &e).await],
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
        }) = Done::allocate_batch(&txn, deal_id, &ids).await?
        else {
            tracing::warn!(%deal_id, "requests for an unknown deal rejected");
            return Ok(vec![Verdict::Reject; jobs.len()]);
        };
        txn.commit().await?;
        self.announcer.announce(&changed, allocations).await;
        // A status event lost in a crash after the commit is sent again on redelivery.
        self.announcer.settle(&finished).await;
        Ok(ids
            .iter()
            .map(|id| verdicts.get(id).copied().unwrap_or(Verdict::Ack))
            .collect())
    }

    /// A transaction whose row-lock waits end after `LOCK_TIMEOUT`.
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.db.begin().await?;
        let timeout = format!("{}ms", self.lock_timeout.as_millis());
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('lock_timeout', $1, true)",
            [timeout.into()],
        ))
        .await?;
        Ok(txn)
    }
}
