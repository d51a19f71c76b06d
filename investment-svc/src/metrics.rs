//! investment-svc's own Prometheus families (README, Operations); the common ones (gRPC calls,
//! the pool) are in `service_kit::metrics`, the publishes in `allocation_bus::metrics`.

use allocation_bus::PublishMetrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// How a create or a cancel ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `created`, `replayed` (same request id again), `refused` (subscription, deal or
    /// balance), `rejected` (invalid, unknown, request id reused) or `error`.
    pub outcome: &'static str,
}

/// One App's families, made and registered when it is built; clones count into the same ones.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Creates by outcome.
    creates: Family<Outcome, Counter>,
    /// Cancels by outcome.
    cancels: Family<Outcome, Counter>,
    /// Allocation requests published by creates and the sweeper.
    pub publishes: PublishMetrics,
}

impl Metrics {
    /// New families, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            creates: Family::default(),
            cancels: Family::default(),
            publishes: PublishMetrics::new(registry),
        };
        registry.register(
            "investments_created",
            "CreateInvestment calls by outcome",
            m.creates.clone(),
        );
        registry.register(
            "investments_cancelled",
            "CancelInvestment calls by outcome: cancelled, replayed (cancelled before), refused \
             (not pending), rejected (invalid, unknown) or error",
            m.cancels.clone(),
        );
        m
    }

    /// Counts a cancel that ended with `outcome`.
    pub fn count_cancel(&self, outcome: &'static str) {
        self.cancels.get_or_create(&Outcome { outcome }).inc();
    }

    /// Counts a create that ended with `outcome`.
    pub fn count_create(&self, outcome: &'static str) {
        self.creates.get_or_create(&Outcome { outcome }).inc();
    }
}
