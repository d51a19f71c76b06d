//! The replica's three PostgreSQL pools. One pool for everything let enough readers or watchers
//! hold every connection, so allocations waited on them and timed out: the allocator has its
//! own pool, the API and the watchers one each, sized by [`PoolArgs`].

use sea_orm::DatabaseConnection;
use service_kit::config::DbArgs;
use service_kit::db::DbSetupError;

use crate::config::{PoolArgs, PoolSizeError, PoolSizes};

/// Why the pools could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PoolsError {
    /// The sizes do not fit `DATABASE_MAX_CONNECTIONS`.
    #[error(transparent)]
    Sizes(#[from] PoolSizeError),
    /// PostgreSQL refused or could not be reached.
    #[error("opening the {pool} pool")]
    Connect {
        /// `allocator`, `read` or `watch`.
        pool: &'static str,
        /// What PostgreSQL said.
        #[source]
        source: DbSetupError,
    },
}

/// The pools, each for one kind of work; cheap to clone.
#[derive(Clone)]
pub struct Pools {
    /// The allocator's (`worker`): nothing else takes its connections.
    pub allocator: DatabaseConnection,
    /// The API's: admin RPCs, queue stats, readiness, sampled metrics.
    pub read: DatabaseConnection,
    /// The watchers': snapshots, gap fills, resyncs.
    pub watch: DatabaseConnection,
}

impl Pools {
    /// Opens the three pools on `db`'s database, sized by `sizes` within
    /// `DATABASE_MAX_CONNECTIONS`.
    pub async fn open(db: &DbArgs, sizes: &PoolArgs) -> Result<Pools, PoolsError> {
        let PoolSizes {
            allocator,
            read,
            watch,
        } = sizes.sizes(db.database_max_connections)?;
        let open = |pool: &'static str, size: u32| async move {
            let args = DbArgs {
                database_max_connections: size,
                ..db.clone()
            };
            service_kit::db::connect(&args)
                .await
                .map_err(|source| PoolsError::Connect { pool, source })
        };
        Ok(Pools {
            allocator: open("allocator", allocator).await?,
            read: open("read", read).await?,
            watch: open("watch", watch).await?,
        })
    }

    /// Samples each pool's open and in-use connections into `allocation_db_pool_connections`
    /// (of `metrics`) every `every` until `shutdown`; takes no connection to do it.
    pub(crate) async fn sample(
        self,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        use crate::metrics::PoolConnections;
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (pool, db) in [
                ("allocator", &self.allocator),
                ("read", &self.read),
                ("watch", &self.watch),
            ] {
                let sqlx = db.get_postgres_connection_pool();
                let open = i64::from(sqlx.size());
                let idle = i64::try_from(sqlx.num_idle()).unwrap_or(i64::MAX);
                let gauge = |state| {
                    metrics
                        .pool_connections
                        .get_or_create_owned(&PoolConnections { pool, state })
                };
                gauge("open").set(open);
                gauge("in_use").set((open - idle).max(0));
            }
        }
    }

    /// One pool for every kind of work: for tests that count every statement of a replica on
    /// one connection, not for production (readers could starve the allocator again).
    pub fn shared(db: DatabaseConnection) -> Pools {
        Pools {
            allocator: db.clone(),
            read: db.clone(),
            watch: db,
        }
    }
}
