//! What both services need and do the same way: identity, configuration, telemetry, database
//! and NATS set-up, pagination, metrics, health and the gRPC server around a service. The
//! domain's mapping to protobuf is in the `wire` crate.
//!
//! Everything here is generic over the two services; anything that only one of them needs
//! lives in that service's crate.

pub mod auth;
pub mod config;
pub mod db;
pub mod health;
pub mod listener;
pub mod messaging;
pub mod metrics;
pub mod nats_options;
pub mod observe;
pub mod page;
pub mod secret;
pub mod server;
pub mod status;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod tracing_context;
pub mod transport;
