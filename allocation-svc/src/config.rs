//! allocation-svc configuration: environment variables (or flags), listed by `--help`.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser};
use service_kit::config::{CommonArgs, parse_duration};

/// Everything allocation-svc reads at start-up.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "allocation-svc",
    version,
    about = "Allocates inventory FIFO per pool and streams allocation status over gRPC."
)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub pools: PoolArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub allocator: AllocatorArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: WatchArgs,
}

/// The sizes of the replica's three PostgreSQL pools ([`Pools`](crate::pools::Pools)), so that
/// no number of readers or watchers can take the allocator's connections. Together they open at
/// most `DATABASE_MAX_CONNECTIONS` (the number to budget against PostgreSQL's
/// `max_connections`); each one left unset takes its share of it.
#[derive(Clone, Debug, Args)]
pub struct PoolArgs {
    /// Connections of the allocator's pool (lanes, retries); nothing else uses them. Give it at
    /// least MAX_LANES: each lane at work holds one [default: half of DATABASE_MAX_CONNECTIONS].
    #[arg(long, env = "DATABASE_ALLOCATOR_CONNECTIONS")]
    pub database_allocator_connections: Option<u32>,
    /// Connections for the API's reads and writes (admin RPCs, queue stats, readiness, sampled
    /// metrics) [default: a quarter of DATABASE_MAX_CONNECTIONS].
    #[arg(long, env = "DATABASE_READ_CONNECTIONS")]
    pub database_read_connections: Option<u32>,
    /// Connections for watchers (snapshots, gap fills, resyncs) [default: what the other two
    /// leave of DATABASE_MAX_CONNECTIONS].
    #[arg(long, env = "DATABASE_WATCH_CONNECTIONS")]
    pub database_watch_connections: Option<u32>,
}

/// How many connections each pool may open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSizes {
    /// The allocator's.
    pub allocator: u32,
    /// The API's.
    pub read: u32,
    /// The watchers'.
    pub watch: u32,
}

/// Pool sizes that do not fit `DATABASE_MAX_CONNECTIONS`.
#[derive(Debug, thiserror::Error)]
#[error(
    "DATABASE_ALLOCATOR_CONNECTIONS ({}) + DATABASE_READ_CONNECTIONS ({}) + \
     DATABASE_WATCH_CONNECTIONS ({}) must be at most DATABASE_MAX_CONNECTIONS ({total}), \
     and each at least 1",
    sizes.allocator, sizes.read, sizes.watch
)]
pub struct PoolSizeError {
    /// What was asked for.
    pub sizes: PoolSizes,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub total: u32,
}

impl PoolArgs {
    /// The sizes within `total` (`DATABASE_MAX_CONNECTIONS`): the ones set as given, the others
    /// their share (allocator 1/2, read 1/4, watch the rest; 10, 5 and 5 of the default 20).
    pub fn sizes(&self, total: u32) -> Result<PoolSizes, PoolSizeError> {
        let allocator = self
            .database_allocator_connections
            .unwrap_or((total / 2).max(1));
        let read = self.database_read_connections.unwrap_or((total / 4).max(1));
        let watch = self
            .database_watch_connections
            .unwrap_or(total.saturating_sub(allocator + read).max(1));
        let sizes = PoolSizes {
            allocator,
            read,
            watch,
        };
        let sum = u64::from(allocator) + u64::from(read) + u64::from(watch);
        if allocator == 0 || read == 0 || watch == 0 || sum > u64::from(total) {
            return Err(PoolSizeError { sizes, total });
        }
        Ok(sizes)
    }
}

/// The consumer, the lanes and the retry policy.
#[derive(Clone, Debug, Args)]
pub struct AllocatorArgs {
    /// Run the allocator. `false` makes a replica that only serves watchers and admin RPCs.
    #[arg(long, env = "ALLOCATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub allocate: bool,
    /// Durable consumer shared by every replica.
    #[arg(long, env = "CONSUMER_NAME", default_value = "allocator")]
    pub consumer_name: String,
    /// How long NATS waits for an ack before redelivering a request.
    #[arg(long, env = "ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,
    /// Most requests delivered to this consumer and not yet acknowledged (all replicas).
    #[arg(long, env = "MAX_ACK_PENDING", default_value_t = 1000)]
    pub max_ack_pending: i64,
    /// Requests pulled per fetch; small, since a fetched request is already on its ack clock.
    #[arg(long, env = "FETCH_BATCH", default_value_t = 64)]
    pub fetch_batch: usize,
    /// Failed attempts (lock timeout, serialization failure, other database error) before an
    /// allocation becomes FAILED; the database out of reach or the pool exhausted never counts.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: i32,
    /// Delays before each retry (comma separated; the last repeats).
    #[arg(long, env = "RETRY_BACKOFF", default_value = "5s,10s,30s", value_delimiter = ',', value_parser = parse_duration)]
    pub retry_backoff: Vec<Duration>,
    /// Pools allocated in parallel at most.
    #[arg(long, env = "MAX_LANES", default_value_t = 8)]
    pub max_lanes: usize,
    /// Requests of one pool allocated in one transaction at most.
    #[arg(long, env = "MICRO_BATCH", default_value_t = 32)]
    pub micro_batch: usize,
    /// A lane with no work for this long is torn down.
    #[arg(long, env = "LANE_IDLE", default_value = "30s", value_parser = parse_duration)]
    pub lane_idle: Duration,
    /// Row-lock wait inside an allocation transaction before it counts as a transient fault.
    #[arg(long, env = "LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

impl AllocatorArgs {
    /// The NAK delay after the `attempt`-th failure (1-based).
    pub fn backoff(&self, attempt: i32) -> Duration {
        let i = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
        self.retry_backoff
            .get(i)
            .or(self.retry_backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(5))
    }
}

/// Status streaming.
#[derive(Clone, Debug, Args)]
pub struct WatchArgs {
    /// How often the replica reads the event log for changes its watchers may have missed
    /// (events NATS dropped): one read for all its watchers, none while nobody watches.
    #[arg(long, env = "WATCH_RESYNC", default_value = "2s", value_parser = parse_duration)]
    pub watch_resync: Duration,
    /// Updates queued per watcher; a watcher whose client reads slower catches up from the
    /// event log instead of growing memory.
    #[arg(long, env = "WATCH_BUFFER", default_value_t = 64)]
    pub watch_buffer: usize,
    /// Watch streams (WatchAllocation and WatchAllocations together) one user may hold open on
    /// this replica; more get RESOURCE_EXHAUSTED. The dashboard holds one WatchAllocations and
    /// at most four short WatchAllocation per tab, so 100 leaves room for many tabs.
    #[arg(long, env = "WATCH_MAX_PER_USER", default_value_t = 100)]
    pub watch_max_per_user: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(args: &[&str]) -> Result<PoolSizes, PoolSizeError> {
        let config =
            Config::try_parse_from(std::iter::once("allocation-svc").chain(args.iter().copied()))
                .expect("parses");
        config
            .pools
            .sizes(config.common.db.database_max_connections)
    }

    #[test]
    fn pools_share_database_max_connections_unless_set() {
        let at = |allocator, read, watch| PoolSizes {
            allocator,
            read,
            watch,
        };
        assert_eq!(sizes(&[]).expect("fits"), at(10, 5, 5));
        assert_eq!(
            sizes(&["--database-max-connections=40"]).expect("fits"),
            at(20, 10, 10)
        );
        assert_eq!(
            sizes(&["--database-allocator-connections=14"]).expect("fits"),
            at(14, 5, 1)
        );
        assert_eq!(
            sizes(&["--database-max-connections=3"]).expect("fits"),
            at(1, 1, 1)
        );
        let over = sizes(&["--database-read-connections=12"]).expect_err("over 20");
        assert!(
            over.to_string().contains("DATABASE_MAX_CONNECTIONS (20)"),
            "{over}"
        );
        assert!(sizes(&["--database-max-connections=2"]).is_err());
        assert!(sizes(&["--database-watch-connections=0"]).is_err());
    }

    #[test]
    fn backoff_follows_the_list_and_repeats_the_last() {
        let config =
            Config::try_parse_from(["allocation-svc", "--retry-backoff=1s,2s"]).expect("parses");
        let a = &config.allocator;
        assert_eq!(
            [a.backoff(1), a.backoff(2), a.backoff(3)],
            [
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(2)
            ]
        );
    }
}
