//! The publish families (README, Operations): allocation requests acknowledged and not
//! published, by the path that published them. Each App makes its own and registers them in
//! its registry, so two Apps in one process count apart.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Which code path published an allocation request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PublishPath {
    /// Right after the create committed.
    Create,
    /// The sweeper, for a request that may never have reached NATS.
    Sweeper,
    /// An admin retry.
    Retry,
}

impl PublishPath {
    /// The label value: `create`, `sweeper` or `retry`.
    pub fn label(self) -> &'static str {
        match self {
            PublishPath::Create => "create",
            PublishPath::Sweeper => "sweeper",
            PublishPath::Retry => "retry",
        }
    }
}

/// Labels of a publish.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Publish {
    /// Who published ([`PublishPath::label`]).
    pub path: &'static str,
}

/// Labels of a failed publish.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishFailure {
    /// Who published ([`PublishPath::label`]).
    pub path: &'static str,
    /// `disconnected` (not tried: the client knew NATS was down) or `error`.
    pub reason: &'static str,
}

/// One App's publish families; clones count into the same ones.
#[derive(Clone, Debug, Default)]
pub struct PublishMetrics {
    /// Allocation requests NATS acknowledged.
    pub published: Family<Publish, Counter>,
    /// Allocation requests not published (left to the sweeper).
    pub failures: Family<PublishFailure, Counter>,
}

impl PublishMetrics {
    /// New families, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "allocation_requests_published",
            "Allocation requests acknowledged by JetStream, by path",
            m.published.clone(),
        );
        registry.register(
            "allocation_request_publish_failures",
            "Allocation requests not published (the sweeper publishes them later), by path and reason",
            m.failures.clone(),
        );
        m
    }
}
