//! investment-svc's own Prometheus families (README, Operations); the common ones (gRPC calls,
//! publishes, the pool) are in `service_kit::metrics`.

use std::sync::LazyLock;

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

/// The families.
pub struct Metrics {
    /// Creates by outcome.
    pub creates: Family<Outcome, Counter>,
    /// Cancels by outcome.
    pub cancels: Family<Outcome, Counter>,
}

/// The process's families.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    creates: Family::default(),
    cancels: Family::default(),
});

/// Registers the families in `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "investments_created",
        "CreateInvestment calls by outcome",
        METRICS.creates.clone(),
    );
    registry.register(
        "investments_cancelled",
        "CancelInvestment calls by outcome: cancelled, replayed (cancelled before), refused \
         (not pending), rejected (invalid, unknown) or error",
        METRICS.cancels.clone(),
    );
}

/// Counts a cancel that ended with `outcome`.
pub fn count_cancel(outcome: &'static str) {
    METRICS.cancels.get_or_create(&Outcome { outcome }).inc();
}

/// Counts a create that ended with `outcome`.
pub fn count_create(outcome: &'static str) {
    METRICS.creates.get_or_create(&Outcome { outcome }).inc();
}
