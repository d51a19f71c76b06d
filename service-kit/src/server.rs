//! The gRPC server around a service: health (`grpc.health.v1`), reflection v1 and v1alpha
//! (older grpcurl builds only speak v1alpha), and graceful shutdown with a deadline.

use std::net::SocketAddr;

use anyhow::Context as _;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{service::Routes, transport::Server};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::{limit::GlobalConcurrencyLimitLayer, load_shed::LoadShedLayer, util::MapResponseLayer};

use crate::{
    config::{CommonArgs, ServerArgs},
    db,
    listener::{self, ConnectionLayer},
    messaging,
    metrics::Common,
    observe::{Methods, ObserveLayer},
    transport,
};

/// What a service needs from outside, opened from its configuration at start-up (tests make
/// their own and hand them to the service's `App::from_parts`).
pub struct Connections {
    /// PostgreSQL pool.
    pub db: DatabaseConnection,
    /// NATS client; reconnects by itself.
    pub nats: async_nats::Client,
    /// The bound gRPC port.
    pub listener: TcpListener,
}

impl Connections {
    /// Connects to PostgreSQL and NATS and binds `listen_addr`; `name` identifies the client
    /// to NATS. The token settings are checked first: a process that could never verify a
    /// token fails at once, naming the setting, before it waits on any connection.
    pub async fn open(
        common: &CommonArgs,
        listen_addr: SocketAddr,
        name: &str,
    ) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        crate::auth::Authenticator::from_args(&common.auth)?;
        let db = db::connect(&common.db)
            .await
            .context("connecting to PostgreSQL")?;
        let nats = messaging::connect(&common.nats, name)
            .await
            .context("connecting to NATS")?;
        let listener = TcpListener::bind(listen_addr)
            .await
            .with_context(|| format!("binding {listen_addr}"))?;
        Ok(Self { db, nats, listener })
    }
}

/// What watches a serving process, each task ending at shutdown: readiness, and if a metrics
/// endpoint is bound, the endpoint and the pool sampler.
pub struct Watch {
    /// The service whose readiness is reported (`NamedService::NAME`).
    pub service: &'static str,
    /// The pool to check and sample.
    pub db: DatabaseConnection,
    /// The NATS client to check.
    pub nats: async_nats::Client,
    /// Where readiness is reported.
    pub health: HealthReporter,
    /// The bound metrics endpoint (`METRICS_ADDR`), with the App's registry it serves.
    pub metrics: Option<(TcpListener, prometheus_client::registry::Registry)>,
    /// The App's common families, whose pool gauges the sampler sets.
    pub common: Common,
    /// How often readiness is checked.
    pub readiness_interval: std::time::Duration,
    /// How often sampled metrics are refreshed.
    pub sample_interval: std::time::Duration,
}

impl Watch {
    /// Spawns the tasks.
    pub fn spawn(self, shutdown: &CancellationToken) {
        tokio::spawn(crate::health::readiness(
            self.db.clone(),
            self.nats,
            self.health,
            self.service,
            self.readiness_interval,
            shutdown.child_token(),
        ));
        // Samples are taken only when someone can scrape them.
        if let Some((listener, registry)) = self.metrics {
            tokio::spawn(crate::metrics::sample_pool(
                self.db,
                self.common,
                self.sample_interval,
                shutdown.child_token(),
            ));
            let shutdown = shutdown.child_token();
            tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve(listener, registry, shutdown).await {
                    tracing::error!(error = %e, "metrics endpoint failed");
                }
            });
        }
    }
}

/// What every service checks and binds before it runs.
pub struct Prepared {
    /// Verifies bearer tokens.
    pub auth: crate::auth::Authenticator,
    /// The bound metrics endpoint, if `METRICS_ADDR` is set.
    pub metrics: Option<TcpListener>,
}

/// Refuses NATS settings that contradict each other and a schema with pending migrations of
/// `M`, builds the token verifier and binds the metrics endpoint.
pub async fn prepare<M: sea_orm_migration::MigratorTrait>(
    db: &DatabaseConnection,
    common: &CommonArgs,
) -> anyhow::Result<Prepared> {
    common.nats.check().map_err(anyhow::Error::msg)?;
    db::ensure_migrated::<M>(db).await?;
    let auth = crate::auth::Authenticator::from_args(&common.auth)?;
    let metrics = crate::metrics::bind(common.telemetry.metrics_addr)
        .await
        .context("binding METRICS_ADDR")?;
    Ok(Prepared { auth, metrics })
}

/// Why the server could not be assembled.
pub type ReflectionError = tonic_reflection::server::Error;

/// What a port serves: its own service, and the others of the API with where they are, so
/// that a call made on the wrong port is told where to go.
pub struct Port {
    /// Fully-qualified name of the service on this port (`NamedService::NAME`).
    pub serves: &'static str,
    /// The API's other services and the process that serves them.
    pub elsewhere: &'static [(&'static str, &'static str)],
    /// The API's encoded file descriptor set (`tonic::include_file_descriptor_set!`), for
    /// reflection and metric labels: the kit knows no API of its own.
    pub descriptors: &'static [u8],
}

/// The services every port serves besides its own.
const BASE_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

impl Port {
    /// Every method this port serves, for metric labels.
    fn methods(&self) -> Methods {
        let [health, v1, v1alpha] = BASE_SERVICES;
        Methods::of(
            &[self.serves, health, v1, v1alpha],
            &[
                self.descriptors,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ],
        )
    }
}

/// Health and reflection routes for `port`; the caller adds its own service with
/// [`Routes::add_service`]. Reflection lists only this port's service (plus health and
/// reflection), and a call to anything else gets `UNIMPLEMENTED` naming the right place. The
/// reporter lets the service say when it is (not) serving.
pub fn base_routes(port: &Port) -> Result<(Routes, HealthReporter), ReflectionError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = || {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(port.descriptors)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details, so grpcurl can show BadRequest & co. in errors.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(port.serves);
        BASE_SERVICES
            .into_iter()
            .fold(builder, |builder, name| builder.with_service_name(name))
    };
    let routes = Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    let serves = port.serves;
    let elsewhere = port.elsewhere;
    let router = routes
        .into_axum_router()
        .fallback(move |uri: http::Uri| async move {
            unknown_method(uri.path(), serves, elsewhere).into_http::<axum::body::Body>()
        });
    Ok((Routes::from(router), health))
}

/// The `UNIMPLEMENTED` answer to a call of `path` on a port that serves `serves` (an unknown
/// method of `serves` itself is answered by its generated server).
fn unknown_method(path: &str, serves: &str, elsewhere: &[(&str, &str)]) -> tonic::Status {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let message = match elsewhere.iter().find(|(name, _)| *name == service) {
        Some((_, process)) => {
            format!("{service} is served by {process}, not on this port (which serves {serves})")
        }
        None => format!("unknown service {service:?}; this port serves {serves}"),
    };
    tonic::Status::unimplemented(message)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The browser (CORS) settings are unusable.
    #[error(transparent)]
    Cors(#[from] transport::CorsError),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `routes` for `port` on `listener` until `shutdown` is cancelled, then drains: health
/// turns `NOT_SERVING`, no new connections are accepted, and calls still open after
/// `SHUTDOWN_GRACE` are cut (tonic alone would wait forever on an open stream).
///
/// Native gRPC and grpc-web (HTTP/1.1 or HTTP/2, with CORS for the configured origins) share
/// the port, over TLS when `TLS_CERT_FILE` is set. Limits: the connection bounds of
/// [`listener`], streams per connection, HTTP/2 keepalive, and a cap on requests in progress
/// beyond which requests are refused at once (`RESOURCE_EXHAUSTED`). Calls are counted in the
/// App's `metrics`.
pub async fn serve(
    listener: TcpListener,
    port: &Port,
    routes: Routes,
    health: HealthReporter,
    shutdown: CancellationToken,
    args: &ServerArgs,
    metrics: Common,
) -> Result<(), ServeError> {
    let cors = transport::cors(&args.cors_allowed_origins)?;
    let tls = args
        .tls
        .files()
        .map(|files| {
            crate::tls::Acceptor::start(files, args.tls.tls_reload_interval, shutdown.child_token())
        })
        .transpose()?;
    let max_age = args
        .max_connection_age
        .map(|age| (age, args.max_connection_age_grace));
    let limits = listener::Limits {
        max_connections: args.max_connections,
        max_per_address: args.max_connections_per_address,
        max_handshaking: args.max_handshaking_connections,
        handshake_timeout: args.connection_handshake_timeout,
        idle_timeout: Some(args.connection_idle_timeout).filter(|idle| !idle.is_zero()),
        max_age,
    };
    let incoming = listener::incoming(listener, limits, tls, shutdown.child_token());
    let grace = args.shutdown_grace;
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
        }
    };
    let mut server = Server::builder();
    if let Some((age, _)) = max_age {
        // GOAWAY at the age; the grace is ours (ConnectionLayer ends streams with UNAVAILABLE).
        server = server.max_connection_age(age);
    }
    let server = server
        .accept_http1(true)
        .max_concurrent_streams(args.http2_max_concurrent_streams)
        .http2_keepalive_interval(Some(args.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(args.http2_keepalive_timeout))
        .layer(cors)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(ConnectionLayer)
        .layer(ObserveLayer::new(port.methods(), metrics))
        .layer(MapResponseLayer::new(transport::size_limit_status))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(
            args.max_concurrent_requests,
        ))
        .add_routes(routes.prepare())
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => Ok(result?),
        () = shutdown.cancelled() => match tokio::time::timeout(grace, server).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                tracing::warn!(?grace, "shutdown grace elapsed; cutting open calls");
                Ok(())
            }
        },
    }
}

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
