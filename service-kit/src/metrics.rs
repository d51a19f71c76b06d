//! Prometheus metrics (README, Operations): the families every service has (gRPC calls, the
//! database pool), and the HTTP endpoint that serves an App's registry on `METRICS_ADDR`.
//!
//! Families belong to one App: it makes them when it is built, registers them in its own
//! registry, and hands clones (which count into the same family) to the code that counts. Two
//! Apps in one process (tests, replicas side by side) never see each other's figures.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Latency buckets in seconds, 1 ms to 10 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// Labels of a handled gRPC call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcCall {
    /// `invest.v1.InvestmentService`.
    pub grpc_service: String,
    /// `CreateInvestment`.
    pub grpc_method: String,
    /// `OK`, `NOT_FOUND`, ...
    pub grpc_code: String,
}

/// Labels of a gRPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcMethod {
    /// `invest.v1.InvestmentService`.
    pub grpc_service: String,
    /// `CreateInvestment`.
    pub grpc_method: String,
}

/// The families every service has, made for one App; clones count into the same families.
#[derive(Clone, Debug)]
pub struct Common {
    /// Calls by service, method and code.
    pub grpc_handled: Family<GrpcCall, Counter>,
    /// Call latency (to the end of the response; a stream's whole life).
    pub grpc_seconds: Family<GrpcMethod, Histogram>,
    /// Pool connections in use.
    pub db_in_use: Gauge,
    /// Pool connections open.
    pub db_open: Gauge,
    /// How long a probe waited for a pool connection.
    pub db_acquire_seconds: Histogram,
}

/// Unregistered families, for a server no endpoint scrapes (tests of the kit alone).
impl Default for Common {
    fn default() -> Self {
        Self {
            grpc_handled: Family::default(),
            grpc_seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            db_in_use: Gauge::default(),
            db_open: Gauge::default(),
            db_acquire_seconds: Histogram::new(latency_buckets()),
        }
    }
}

impl Common {
    /// New families, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let c = Self::default();
        registry.register(
            "grpc_server_handled",
            "gRPC calls handled, by service, method and status code",
            c.grpc_handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "gRPC call latency in seconds (a stream counts until it ends)",
            c.grpc_seconds.clone(),
        );
        registry.register(
            "db_pool_connections_in_use",
            "PostgreSQL pool connections in use (sampled)",
            c.db_in_use.clone(),
        );
        registry.register(
            "db_pool_connections_open",
            "PostgreSQL pool connections open (sampled)",
            c.db_open.clone(),
        );
        registry.register(
            "db_pool_acquire_seconds",
            "Time a sampling probe waited for a pool connection, in seconds",
            c.db_acquire_seconds.clone(),
        );
        c
    }
}

/// Samples the pool every `every` until `shutdown`: connections open and in use, and how long
/// taking one takes (a probe standing for every caller's wait), into the gauges of `c`.
pub async fn sample_pool(
    db: DatabaseConnection,
    c: Common,
    every: Duration,
    shutdown: CancellationToken,
) {
    let pool = db.get_postgres_connection_pool().clone();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        if let Ok(conn) = tokio::time::timeout(every, pool.acquire()).await {
            c.db_acquire_seconds
                .observe(started.elapsed().as_secs_f64());
            drop(conn);
        } else {
            c.db_acquire_seconds.observe(every.as_secs_f64());
        }
        let open = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        c.db_open.set(open);
        c.db_in_use.set((open - idle).max(0));
    }
}

/// Binds the metrics endpoint if `addr` is set.
pub async fn bind(addr: Option<SocketAddr>) -> std::io::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => TcpListener::bind(addr).await.map(Some),
        None => Ok(None),
    }
}

/// Serves `GET /metrics` (Prometheus/OpenMetrics text) on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(registry));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn scrape(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
