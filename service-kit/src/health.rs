//! Liveness and readiness (README, Operations), both on `grpc.health.v1.Health`:
//!
//! - `""` is liveness: `SERVING` from start-up until shutdown begins, whatever the
//!   dependencies do (restarting the process would not bring PostgreSQL back);
//! - the service's own name (`invest.v1.InvestmentService`, ...) is readiness: `NOT_SERVING`
//!   while PostgreSQL or NATS is unreachable, and from the start of shutdown.

use std::time::Duration;

use async_nats::connection::State;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

/// Checks PostgreSQL (a ping through the pool) and NATS (the client's connection state) every
/// `every`, and reports `service` as serving only while both answer. Ends at `shutdown`,
/// leaving `service` `NOT_SERVING`.
pub async fn readiness(
    db: DatabaseConnection,
    nats: async_nats::Client,
    health: HealthReporter,
    service: &'static str,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    let mut last = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let database = tokio::time::timeout(every, db.ping())
            .await
            .is_ok_and(|pinged| pinged.is_ok());
        let broker = nats.connection_state() == State::Connected;
        let status = if database && broker {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if status == ServingStatus::NotServing {
                tracing::warn!(database, nats = broker, "not ready");
            } else if last.is_some() {
                tracing::info!("ready again");
            }
            health.set_service_status(service, status).await;
            last = Some(status);
        }
    }
    health
        .set_service_status(service, ServingStatus::NotServing)
        .await;
}
