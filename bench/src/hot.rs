//! How many of `investments`' row updates were HOT (heap-only: no index entry written), from
//! `pg_stat_user_tables`. An update is HOT only when it changes no indexed column and the new
//! version fits on the same page; `allocation_status` is indexed (and named in two partial-index
//! predicates), so every status change is a non-HOT update today (BENCHMARKS.md, "Allocation").

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Cumulative update counters of `investments` in the bench's database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Updates {
    /// Rows updated.
    pub all: i64,
    /// Of which heap-only.
    pub hot: i64,
}

impl Updates {
    /// The counters now. Backends report their statistics when idle, up to about a second
    /// late, so a caller wanting a settled figure uses [`Updates::settled`].
    pub async fn take(db: &DatabaseConnection) -> anyhow::Result<Updates> {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
                 WHERE relname = 'investments'",
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no statistics row for investments"))?;
        Ok(Updates {
            all: row.try_get("", "n_tup_upd")?,
            hot: row.try_get("", "n_tup_hot_upd")?,
        })
    }

    /// The counters once every backend has reported: the same reading twice, 1.5 s apart
    /// (PostgreSQL 15 flushes an idle backend's statistics at most once a second), within 20 s.
    pub async fn settled(db: &DatabaseConnection) -> anyhow::Result<Updates> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Updates::take(db).await?;
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let now = Updates::take(db).await?;
            if now == last || Instant::now() > deadline {
                return Ok(now);
            }
            last = now;
        }
    }

    /// "`n` updates per investment, `p` % HOT" between `before` and `self`.
    pub fn describe_since(&self, before: &Updates, investments: usize) -> String {
        let all = self.all - before.all;
        let hot = self.hot - before.hot;
        format!(
            "{:.2} row updates per investment, {:.0} % HOT",
            all as f64 / investments.max(1) as f64,
            if all > 0 {
                hot as f64 * 100.0 / all as f64
            } else {
                0.0
            }
        )
    }
}
