//! What every service of ours needs and does the same way, knowing nothing of the domain:
//! identity, configuration, telemetry, the database and the NATS connection, pagination,
//! metrics, health and the gRPC server around a service. The domain's mapping to protobuf is
//! in the `wire` crate; the allocation stream and its publishes in `allocation-bus`.
//!
//! Nothing here depends on the API or the entities; anything that only one service needs
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
pub mod telemetry;
pub mod tls;
pub mod tracing_context;
pub mod transport;
