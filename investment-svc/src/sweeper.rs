//! Re-publishes `pending` (and long-`processing`) investments whose allocation request may
//! never have reached NATS or was lost with a server's store, so none is ever stranded
//! (docs/invariants.md, invariant 3).
//!
//! "Stale" means untouched for `SWEEP_MIN_AGE` when the request never reached the stream
//! (`last_published_at` is NULL: the create's publish failed), and for the much longer
//! `SWEEP_STUCK_AGE` when it did (the request is queued, perhaps behind a backlog; only a lost
//! store strands it). Retries bump `updated_at`, so a request waiting out its backoff in NATS
//! is left alone.
//!
//! A pass claims a batch of stale `pending` rows with `FOR UPDATE SKIP LOCKED` (so replicas
//! never claim the same rows) and stamps `last_published_at` in the same statement, then
//! publishes them. Publishing twice is harmless: within the duplicate window NATS drops the
//! copy, and after it the allocator skips an investment that is no longer `pending`.

use allocation_bus::{Committed, PublishMetrics, PublishPath, Topology};
use async_nats::connection::State;
use entity::prelude::*;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Statement, Value,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SweeperArgs;

/// The sweeper's dependencies and settings.
#[derive(Clone)]
pub struct Sweeper {
    db: DatabaseConnection,
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    topology: Topology,
    args: SweeperArgs,
    publishes: PublishMetrics,
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Requests published again.
    pub published: usize,
    /// Claimed but not published (NATS failed mid-pass): their stamp is cleared, so they are
    /// retried after `SWEEP_MIN_AGE`.
    pub failed: usize,
}

const CLAIM: &str = r#"
UPDATE investments SET last_published_at = now()
WHERE id IN (
    SELECT id FROM investments
    WHERE allocation_status IN ('pending', 'processing')
      AND CASE WHEN last_published_at IS NULL
               THEN updated_at < now() - $1 * interval '1 millisecond'
               ELSE greatest(last_published_at, updated_at) < now() - $3 * interval '1 millisecond'
          END
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"#;

/// The claim a pass runs with `args` (its plan is checked under a generic plan in the tests).
pub fn claim_statement(args: &SweeperArgs) -> Statement {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        CLAIM,
        [
            Value::from(ms(args.sweep_min_age)),
            Value::from(args.sweep_batch as i64),
            Value::from(ms(args.sweep_stuck_age)),
        ],
    )
}

impl Sweeper {
    /// A sweeper over `db`, publishing through `js` and counting in `publishes`.
    pub fn new(
        db: DatabaseConnection,
        nats: async_nats::Client,
        js: async_nats::jetstream::Context,
        topology: Topology,
        args: SweeperArgs,
        publishes: PublishMetrics,
    ) -> Self {
        Self {
            db,
            nats,
            js,
            topology,
            args,
            publishes,
        }
    }

    /// Runs passes every `SWEEP_INTERVAL` until `shutdown`, the first one interval after the
    /// start rather than at once: a start does no database work before it is asked for any
    /// (which the statement-counting tests rely on), and a row left by a crash waits at most
    /// one interval more.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = self.args.sweep_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match self.sweep_once().await {
                Ok(pass) if pass == Pass::default() => {}
                Ok(pass) => tracing::info!(
                    pass.published,
                    pass.failed,
                    "sweeper re-published stale pending investments"
                ),
                Err(e) => tracing::warn!(error = %e, "sweeper pass failed"),
            }
        }
    }

    /// One pass. Skipped while NATS is disconnected: claiming rows it cannot publish would
    /// only delay them.
    pub async fn sweep_once(&self) -> Result<Pass, sea_orm::DbErr> {
        if self.nats.connection_state() != State::Connected {
            return Ok(Pass::default());
        }
        let claim = claim_statement(&self.args);
        let claimed: Vec<Uuid> = self
            .db
            .query_all_raw(claim)
            .await?
            .iter()
            .map(|row| row.try_get("", "id"))
            .collect::<Result<_, _>>()?;
        if claimed.is_empty() {
            return Ok(Pass::default());
        }
        let rows = Investment::find()
            .filter(investment::Column::Id.is_in(claimed))
            .order_by_asc(investment::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let requests: Vec<Committed> = rows.iter().map(wire::first_request).collect();
        let (published, failure) = allocation_bus::publish_committed(
            &self.db,
            &self.js,
            &self.topology,
            &self.publishes,
            PublishPath::Sweeper,
            &requests,
        )
        .await;
        if let Some(e) = failure {
            tracing::warn!(error = %e, published, "re-publish failed; the rest waits SWEEP_MIN_AGE");
        }
        let pass = Pass {
            published,
            failed: requests.len() - published,
        };
        Ok(pass)
    }
}
