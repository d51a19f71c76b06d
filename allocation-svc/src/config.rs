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
    pub allocator: AllocatorArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: WatchArgs,
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
    /// Attempts in all before a transiently failing allocation becomes FAILED.
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
