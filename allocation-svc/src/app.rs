//! Assembly: connections (three PostgreSQL pools: [`Pools`]), stream and consumer, lanes,
//! watchers, gRPC server, and their shutdown in order (stop pulling, finish transactions in
//! flight, end streams).

use std::{net::SocketAddr, sync::Arc};

use allocation_bus::Topology;
use anyhow::Context as _;
use api::v1::allocation_service_server::AllocationServiceServer;
use prometheus_client::registry::Registry;
use service_kit::{auth::Authenticator, messaging, metrics::Common, server};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

use crate::{
    Config, consumer,
    lanes::{Dispatcher, LaneArgs},
    metrics::Metrics,
    pools::Pools,
    service::Api,
    watch::{Hub, Watchers},
    watch_limit::WatchLimit,
    worker::Allocator,
};

/// This port's service; a call to the other one is told where it is served.
const PORT: server::Port = server::Port {
    serves: api::v1::allocation_service_server::SERVICE_NAME,
    elsewhere: &[(
        api::v1::investment_service_server::SERVICE_NAME,
        "investment-svc (default port 50051)",
    )],
    descriptors: api::FILE_DESCRIPTOR_SET,
};

/// A built service, bound to its port, ready to run.
pub struct App {
    config: Config,
    listener: TcpListener,
    /// The bound `METRICS_ADDR`, if set.
    metrics: Option<TcpListener>,
    /// This App's families, none shared with another App (replica) in the process.
    registry: Registry,
    common: Common,
    own: Arc<Metrics>,
    pools: Pools,
    nats: async_nats::Client,
    auth: Authenticator,
}

impl App {
    /// Opens the three PostgreSQL pools and connects to NATS as configured, and binds
    /// `LISTEN_ADDR`.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let pools = Pools::open(&config.common.db, &config.pools)
            .await
            .context("connecting to PostgreSQL")?;
        let nats = messaging::connect(&config.common.nats, "allocation-svc")
            .await
            .context("connecting to NATS")?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {}", config.listen_addr))?;
        Self::from_parts(config, pools, nats, listener).await
    }

    /// From pools, a NATS client and a listener made by the caller (tests bind port 0); makes
    /// the App's metric families.
    pub async fn from_parts(
        config: Config,
        pools: Pools,
        nats: async_nats::Client,
        listener: TcpListener,
    ) -> anyhow::Result<App> {
        let server::Prepared { auth, metrics } =
            server::prepare::<migration::Migrator>(&pools.read, &config.common).await?;
        let mut registry = Registry::default();
        let common = Common::new(&mut registry);
        let own = Arc::new(Metrics::new(&mut registry));
        Ok(App {
            config,
            listener,
            metrics,
            registry,
            common,
            own,
            pools,
            nats,
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

    /// Ensures the stream and consumer, then allocates and serves until `shutdown` is
    /// cancelled; stops within `SHUTDOWN_GRACE`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let config = self.config;
        let js = messaging::jetstream(self.nats.clone(), config.common.nats.nats_timeout);
        let topology = Topology::from_args(&config.common.nats);
        allocation_bus::ensure_stream(&js, &topology)
            .await
            .with_context(|| format!("ensuring stream {}", topology.stream))?;
        let pools = self.pools;
        let hub = Hub::start(
            &self.nats,
            pools.watch.clone(),
            &topology,
            &config.watch,
            shutdown.child_token(),
        )
        .await
        .context("subscribing to status events")?;

        let consuming = if config.allocator.allocate {
            let source = consumer::Source {
                js: js.clone(),
                topology: topology.clone(),
                args: config.allocator.clone(),
            };
            let pull = source
                .ensure()
                .await
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(|| format!("ensuring consumer {}", config.allocator.consumer_name))?;
            let allocator = Allocator::new(
                pools.allocator.clone(),
                self.nats.clone(),
                topology.clone(),
                config.allocator.clone(),
                self.own.clone(),
            );
            let lanes = LaneArgs {
                micro_batch: config.allocator.micro_batch.max(1),
                idle: config.allocator.lane_idle,
                ack_wait: config.allocator.ack_wait,
            };
            let dispatcher = Dispatcher::new(
                allocator,
                config.allocator.max_lanes,
                lanes,
                shutdown.child_token(),
            );
            Some(tokio::spawn(consumer::run(
                source,
                pull,
                dispatcher,
                config.allocator.fetch_batch.max(1),
                shutdown.child_token(),
            )))
        } else {
            tracing::info!("ALLOCATE=false: serving watchers and admin RPCs only");
            None
        };

        if self.metrics.is_some() {
            tokio::spawn(pools.clone().sample(
                self.own.clone(),
                config.common.telemetry.metrics_sample_interval,
                shutdown.child_token(),
            ));
            tokio::spawn(crate::admin::sample(
                self.own.clone(),
                pools.read.clone(),
                js.clone(),
                topology.clone(),
                config.allocator.clone(),
                config.common.telemetry.metrics_sample_interval,
                shutdown.child_token(),
            ));
        }
        let api = Api {
            db: pools.read.clone(),
            nats: self.nats,
            js,
            topology,
            allocator: config.allocator.clone(),
            watchers: Watchers {
                db: pools.watch,
                hub,
                limit: WatchLimit::new(config.watch.watch_max_per_user),
                shutdown: shutdown.child_token(),
                metrics: self.own.clone(),
            },
            metrics: self.own,
        };
        let (routes, health) = server::base_routes(&PORT)?;
        health.set_serving::<AllocationServiceServer<Api>>().await;
        server::Watch {
            service: PORT.serves,
            db: api.db.clone(),
            nats: api.nats.clone(),
            health: health.clone(),
            metrics: self.metrics.map(|l| (l, self.registry)),
            common: self.common.clone(),
            readiness_interval: config.common.server.readiness_interval,
            sample_interval: config.common.telemetry.metrics_sample_interval,
        }
        .spawn(&shutdown);
        let limit = config.common.server.max_message_bytes;
        let service = AllocationServiceServer::new(api)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let routes = routes.add_service(InterceptedService::new(service, self.auth));
        tracing::info!(addr = %self.listener.local_addr()?, "allocation-svc serving");
        let grace = config.common.server.shutdown_grace;
        // Server and lanes drain at the same time, each within the same grace period.
        let draining = async {
            shutdown.cancelled().await;
            if let Some(consuming) = consuming {
                match tokio::time::timeout(grace, consuming).await {
                    Ok(joined) => joined.context("consumer task")?,
                    Err(_) => {
                        tracing::warn!(?grace, "lanes did not finish in time; NATS will redeliver")
                    }
                }
            }
            anyhow::Ok(())
        };
        let serving = async {
            let served = server::serve(
                self.listener,
                &PORT,
                routes,
                health,
                shutdown.clone(),
                &config.common.server,
                self.common,
            )
            .await;
            // If the server stopped by itself, stop pulling too.
            shutdown.cancel();
            served
        };
        let (served, drained) = tokio::join!(serving, draining);
        drained?;
        served.context("gRPC server")?;
        tracing::info!("allocation-svc stopped");
        Ok(())
    }
}
