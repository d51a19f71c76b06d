//! What a lane hands the worker, and what it gets back: the worker's whole interface to the
//! lanes (and to tests, which call it directly).

use std::time::Duration;

use entity::prelude::InvestmentId;

/// What to tell NATS about one request once its batch is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done (allocated, failed, or already finished before): acknowledge.
    Ack,
    /// A transient fault: redeliver after this delay.
    Retry(Duration),
    /// Garbage or an unknown investment: never redeliver.
    Reject,
}

/// One request as a lane hands it to the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// The investment to allocate.
    pub investment_id: InvestmentId,
    /// How many times NATS has delivered it (1 the first time): picks the delay while the
    /// database is out of reach; attempts are counted on the row (see [`retry`](super::retry)).
    pub delivered: i64,
}
