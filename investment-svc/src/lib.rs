//! investment-svc: accepts investments at once as `pending`, hands their allocation to NATS
//! JetStream, and lists subscription balances from eager-loaded aggregates.
//!
//! `main.rs` only parses [`Config`] and runs an [`App`]; everything else is here so tests can
//! run the service in process on port 0.

mod app;
pub mod cancel;
pub mod config;
mod deals;
pub mod error;
pub mod investments;
mod metrics;
mod service;
pub mod sweeper;

pub use app::App;
pub use config::Config;
pub use error::{Error, Result};
