//! allocation-svc's own Prometheus families (README, Operations); the common ones are in
//! `service_kit::metrics`, the publishes (admin retries) in `allocation_bus::metrics`. Each
//! App makes its own ([`Metrics::new`]) and hands them to the code that counts.

use allocation_bus::PublishMetrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// How an allocation ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `completed` or `failed`.
    pub outcome: &'static str,
}

/// Why an attempt is retried (or, out of attempts, failed), or a request sent back uncounted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Retry {
    /// Attempts: `lock_timeout` or `database_error`; requeues: `pool_timeout` or
    /// `database_unavailable`.
    pub cause: &'static str,
}

/// A count of unfinished investments by status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Unfinished {
    /// `pending` or `processing`.
    pub status: &'static str,
}

/// Connections of one of the replica's pools in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolConnections {
    /// `allocator`, `read` or `watch`.
    pub pool: &'static str,
    /// `open` or `in_use`.
    pub state: &'static str,
}

/// A watch RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rpc {
    /// `WatchAllocation` or `WatchAllocations`.
    pub rpc: &'static str,
}

/// Counts in a gauge for as long as it lives (a panic included): a watch stream in
/// `watch_streams_open` while its producer lives, a lane in `allocation_lanes_active`.
pub struct Alive(Gauge);

impl Alive {
    /// One more in `gauge` until this is dropped.
    pub fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Alive(gauge)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One App's families; [`Default`] makes them unregistered (for tests that build parts of the
/// service alone).
#[derive(Debug)]
pub struct Metrics {
    /// Watch streams open, by RPC.
    pub watch_streams: Family<Rpc, Gauge>,
    /// Allocations that ended, by outcome.
    pub allocations: Family<Outcome, Counter>,
    /// Completed allocations an admin reversed (ReverseAllocation, replays not counted).
    pub reversals: Counter,
    /// Requests per allocation transaction.
    pub micro_batch_size: Histogram,
    /// Failed attempts, by cause.
    pub retries: Family<Retry, Counter>,
    /// Requests sent back without counting an attempt (the database out of reach), by cause.
    pub requeues: Family<Retry, Counter>,
    /// Pools with a lane alive.
    pub lanes_active: Gauge,
    /// Connections of each PostgreSQL pool, open and in use (sampled).
    pub pool_connections: Family<PoolConnections, Gauge>,
    /// Requests in the stream not yet delivered (sampled).
    pub consumer_pending: Gauge,
    /// Requests delivered and not yet acknowledged (sampled).
    pub consumer_ack_pending: Gauge,
    /// Requests delivered more than once, not yet acknowledged (sampled).
    pub consumer_redelivered: Gauge,
    /// Investments not yet terminal, by status (sampled).
    pub unfinished: Family<Unfinished, Gauge>,
    /// Age of the oldest investment not yet terminal, in seconds (sampled).
    pub oldest_unfinished_seconds: Gauge,
    /// Allocation requests published by admin retries.
    pub publishes: PublishMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            watch_streams: Family::default(),
            allocations: Family::default(),
            reversals: Counter::default(),
            micro_batch_size: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            retries: Family::default(),
            requeues: Family::default(),
            lanes_active: Gauge::default(),
            pool_connections: Family::default(),
            consumer_pending: Gauge::default(),
            consumer_ack_pending: Gauge::default(),
            consumer_redelivered: Gauge::default(),
            unfinished: Family::default(),
            oldest_unfinished_seconds: Gauge::default(),
            publishes: PublishMetrics::default(),
        }
    }
}

impl Metrics {
    /// A stream of `rpc` open while the result lives.
    pub fn open_stream(&self, rpc: &'static str) -> Alive {
        Alive::new(self.watch_streams.get_or_create_owned(&Rpc { rpc }))
    }

    /// New families, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics {
            publishes: PublishMetrics::new(registry),
            ..Metrics::default()
        };
        registry.register(
            "watch_streams_open",
            "Watch streams open on this replica, by RPC",
            m.watch_streams.clone(),
        );
        registry.register(
            "allocations",
            "Allocations that ended, by outcome",
            m.allocations.clone(),
        );
        registry.register(
            "allocations_reversed",
            "Completed allocations reversed by an admin",
            m.reversals.clone(),
        );
        registry.register(
            "allocation_micro_batch_size",
            "Requests of one pool allocated in one transaction",
            m.micro_batch_size.clone(),
        );
        registry.register(
            "allocation_retries",
            "Failed allocation attempts, by cause",
            m.retries.clone(),
        );
        registry.register(
        "allocation_requeues",
        "Allocation requests sent back without counting an attempt (database out of reach), by cause",
        m.requeues.clone(),
    );
        registry.register(
            "allocation_lanes_active",
            "Pools with an allocation lane alive",
            m.lanes_active.clone(),
        );
        registry.register(
            "allocation_db_pool_connections",
            "Connections of each of the replica's PostgreSQL pools, open or in use (sampled)",
            m.pool_connections.clone(),
        );
        registry.register(
            "jetstream_consumer_pending",
            "Allocation requests in the stream not yet delivered (sampled)",
            m.consumer_pending.clone(),
        );
        registry.register(
            "jetstream_consumer_ack_pending",
            "Allocation requests delivered and not yet acknowledged (sampled)",
            m.consumer_ack_pending.clone(),
        );
        registry.register(
            "jetstream_consumer_redelivered",
            "Allocation requests delivered more than once and not yet acknowledged (sampled)",
            m.consumer_redelivered.clone(),
        );
        registry.register(
            "investments_unfinished",
            "Investments not yet COMPLETED or FAILED, by status (sampled)",
            m.unfinished.clone(),
        );
        registry.register(
            "investments_oldest_unfinished_seconds",
            "Age of the oldest investment not yet COMPLETED or FAILED, in seconds (sampled)",
            m.oldest_unfinished_seconds.clone(),
        );
        m
    }
}
