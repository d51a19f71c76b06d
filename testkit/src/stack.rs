//! The shape every service test harness shares (investment-svc's `spawn_app`, allocation-svc's
//! `Stack`, the bench): fresh infrastructure, and services run in this process until dropped.

use std::{future::Future, net::SocketAddr};

use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::{
    db::TestDb,
    fixtures::Fixtures,
    nats::{Names, NatsServer},
};

/// What the services of one test run against: a fresh database, NATS (the shared server, or a
/// private one the test can stop) and stream and subject names of their own.
pub struct Infra {
    /// The test's own pool, for fixtures and checks.
    pub db: DatabaseConnection,
    /// Row builders on `db`.
    pub fixtures: Fixtures,
    /// The stream and subject names of this test.
    pub names: Names,
    /// A NATS client that reconnects forever (the services get clones).
    pub nats: async_nats::Client,
    /// The URL of the NATS server in use.
    pub nats_url: String,
    /// The private nats-server, if the test asked for one.
    pub nats_server: Option<NatsServer>,
    /// Flags every service of this test gets after the shared ones (a cluster's replicas).
    pub extra_args: Vec<String>,
    // Dropped last: the database outlives the services using it.
    /// The database, dropped with the infrastructure.
    pub test_db: TestDb,
}

impl Infra {
    /// Creates the database and connects to NATS (a private server if `own_nats_server`).
    pub async fn start(own_nats_server: bool) -> anyhow::Result<Infra> {
        Infra::on_database(TestDb::create().await?, own_nats_server).await
    }

    /// As [`Infra::start`], on a database made by the caller (on a private server).
    pub async fn on_database(test_db: TestDb, own_nats_server: bool) -> anyhow::Result<Infra> {
        crate::init_logging();
        let db = test_db.connect().await;
        let nats_server = if own_nats_server {
            Some(NatsServer::start().await)
        } else {
            None
        };
        let nats_url = nats_server
            .as_ref()
            .map_or_else(crate::nats::url, NatsServer::url);
        let nats = async_nats::ConnectOptions::new()
            .max_reconnects(None)
            .connect(&nats_url)
            .await?;
        Ok(Infra {
            fixtures: Fixtures::new(db.clone()),
            db,
            names: Names::unique(),
            nats,
            nats_url,
            nats_server,
            extra_args: Vec::new(),
            test_db,
        })
    }

    /// The command line every service of this test starts from: `bin`, then the flags shared by
    /// both services (test secret, NATS and its names, short timeouts).
    pub fn service_args(&self, bin: &str) -> Vec<String> {
        let mut args = vec![bin.to_owned()];
        args.extend(crate::nats::service_args(&self.names, &self.nats_url));
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A service running in this process, stopped when dropped.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancelling it starts the service's graceful shutdown.
    pub shutdown: CancellationToken,
    /// The service's task; its result says how it stopped.
    pub task: JoinHandle<anyhow::Result<()>>,
    /// Its Prometheus endpoint, if it has one.
    pub metrics_addr: Option<SocketAddr>,
}

impl Running {
    /// Spawns `run` (a service's `run_until_stopped`) for a service bound to `addr`.
    pub fn start<F>(addr: SocketAddr, run: impl FnOnce(CancellationToken) -> F) -> Running
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Running {
            addr,
            shutdown,
            task,
            metrics_addr: None,
        }
    }

    /// Notes where the service serves its metrics.
    pub fn with_metrics(mut self, metrics_addr: Option<SocketAddr>) -> Running {
        self.metrics_addr = metrics_addr;
        self
    }

    /// A new connection to the service.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the service")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
