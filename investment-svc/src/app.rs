//! Assembly: connections, stream, gRPC server and sweeper, and their shutdown.

use std::net::SocketAddr;

use allocation_bus::Topology;
use anyhow::Context as _;
use api::v1::investment_service_server::InvestmentServiceServer;
use prometheus_client::registry::Registry;
use sea_orm::DatabaseConnection;
use service_kit::{
    auth::Authenticator,
    messaging,
    metrics::Common,
    server::{self, Connections},
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::service::interceptor::InterceptedService;

use crate::{Config, metrics::Metrics, service::Api, sweeper::Sweeper};

/// This port's service; a call to the other one is told where it is served.
const PORT: server::Port = server::Port {
    serves: api::v1::investment_service_server::SERVICE_NAME,
    elsewhere: &[(
        api::v1::allocation_service_server::SERVICE_NAME,
        "allocation-svc (default port 50052)",
    )],
    descriptors: api::FILE_DESCRIPTOR_SET,
};

/// A built service, bound to its port, ready to run.
pub struct App {
    config: Config,
    listener: TcpListener,
    /// The bound `METRICS_ADDR`, if set.
    metrics: Option<TcpListener>,
    /// This App's families, none shared with another App in the process.
    registry: Registry,
    common: Common,
    api: Api,
    sweeper: Sweeper,
    auth: Authenticator,
}

impl App {
    /// Connects to PostgreSQL and NATS as configured and binds `LISTEN_ADDR`.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let c = Connections::open(&config.common, config.listen_addr, "investment-svc").await?;
        Self::from_parts(config, c.db, c.nats, c.listener).await
    }

    /// From connections and a listener made by the caller (tests bind port 0 and count
    /// statements on the connection). Checks the schema, ensures the stream and makes the
    /// App's metric families.
    pub async fn from_parts(
        config: Config,
        db: DatabaseConnection,
        nats: async_nats::Client,
        listener: TcpListener,
    ) -> anyhow::Result<App> {
        let server::Prepared { auth, metrics } =
            server::prepare::<migration::Migrator>(&db, &config.common).await?;
        let js = messaging::jetstream(nats.clone(), config.common.nats.nats_timeout);
        let topology = Topology::from_args(&config.common.nats);
        allocation_bus::ensure_stream(&js, &topology)
            .await
            .with_context(|| format!("ensuring stream {}", topology.stream))?;
        let mut registry = Registry::default();
        let common = Common::new(&mut registry);
        let own = Metrics::new(&mut registry);
        let sweeper = Sweeper::new(
            db.clone(),
            nats.clone(),
            js.clone(),
            topology.clone(),
            config.sweeper.clone(),
            own.publishes.clone(),
        );
        let api = Api {
            db,
            nats,
            js,
            topology,
            creates: TaskTracker::new(),
            currency: config.currency.clone(),
            metrics: own,
        };
        Ok(App {
            config,
            listener,
            metrics,
            registry,
            common,
            api,
            sweeper,
            auth,
        })
    }

    /// The bound address (the real port when `LISTEN_ADDR` asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound metrics address, if `METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` is cancelled, then drains within `SHUTDOWN_GRACE`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (routes, health) = server::base_routes(&PORT)?;
        let server_args = &self.config.common.server;
        server::Watch {
            service: PORT.serves,
            db: self.api.db.clone(),
            nats: self.api.nats.clone(),
            health: health.clone(),
            metrics: self.metrics.map(|l| (l, self.registry)),
            common: self.common.clone(),
            readiness_interval: server_args.readiness_interval,
            sample_interval: self.config.common.telemetry.metrics_sample_interval,
        }
        .spawn(&shutdown);
        let creates = self.api.creates.clone();
        let limit = self.config.common.server.max_message_bytes;
        let service = InterceptedService::new(
            InvestmentServiceServer::new(self.api)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            self.auth,
        );
        health.set_serving::<InvestmentServiceServer<Api>>().await;
        let routes = routes.add_service(service);
        let sweeper = tokio::spawn(self.sweeper.run(shutdown.child_token()));
        tracing::info!(addr = %self.listener.local_addr()?, "investment-svc serving");
        let served = server::serve(
            self.listener,
            &PORT,
            routes,
            health,
            shutdown.clone(),
            &self.config.common.server,
            self.common,
        )
        .await;
        shutdown.cancel();
        // Creates whose callers went away still finish their transaction and publish.
        creates.close();
        let grace = self.config.common.server.shutdown_grace;
        if tokio::time::timeout(grace, creates.wait()).await.is_err() {
            tracing::warn!(
                ?grace,
                "creates still running at the end of the grace period"
            );
        }
        sweeper.await.context("sweeper task")?;
        served.context("gRPC server")?;
        tracing::info!("investment-svc stopped");
        Ok(())
    }
}
