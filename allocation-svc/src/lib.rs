//! allocation-svc: consumes allocation requests from NATS JetStream, allocates units from
//! inventory batches FIFO, one lane per pool, with retries, and streams each investment's
//! status to clients.
//!
//! `main.rs` only parses [`Config`] and runs an [`App`]; everything else is here so tests can
//! run replicas in process on port 0.

pub mod admin;
pub mod allocate;
mod app;
pub mod config;
pub mod consumer;
pub mod error;
pub mod lanes;
pub mod metrics;
pub mod pools;
pub mod reverse;
mod service;
pub mod watch;
pub mod watch_limit;
pub mod worker;

pub use app::App;
pub use config::Config;
pub use error::{Error, Result};
pub use pools::Pools;
