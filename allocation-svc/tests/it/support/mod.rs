//! `Stack`: investment-svc plus allocation-svc replicas sharing a fresh database and stream.

mod invariants;
mod locks;
mod watch;

pub use invariants::*;
pub use locks::*;
pub use watch::*;

use std::time::Duration;

use api::v1::{
    self as pb, allocation_service_client::AllocationServiceClient,
    investment_service_client::InvestmentServiceClient,
};
use chrono::Utc;
use clap::Parser;
use entity::prelude::*;
use sea_orm::EntityTrait;
use testkit::{
    Bearer,
    stack::{Infra, Running},
};
use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

pub type Investments = InvestmentServiceClient<InterceptedService<Channel, Bearer>>;
pub type Allocations = AllocationServiceClient<InterceptedService<Channel, Bearer>>;

/// Settings of the allocation-svc replicas (and of investment-svc's sweeper).
#[derive(Clone)]
pub struct Options {
    pub replicas: usize,
    /// `RETRY_BACKOFF`.
    pub backoff: Vec<Duration>,
    pub max_attempts: i32,
    pub lock_timeout: Duration,
    pub micro_batch: usize,
    pub ack_wait: Duration,
    /// Run against a private nats-server the test can stop.
    pub own_nats_server: bool,
    /// investment-svc's sweeper `(interval, min age)`; by default it never runs.
    pub sweeper: (Duration, Duration),
    /// investment-svc's `SWEEP_STUCK_AGE`.
    pub sweep_stuck_age: Duration,
    /// The consumer's `MAX_ACK_PENDING`.
    pub max_ack_pending: i64,
    /// Every service serves Prometheus metrics on a port of its own.
    pub metrics: bool,
    /// More allocation-svc flags (pool sizes, `--watch-max-per-user`, ...).
    pub extra_args: Vec<String>,
}

impl Options {
    /// A private nats-server the test can stop, and a sweeper that publishes within about a
    /// second what an outage left unpublished.
    pub fn nats_outage() -> Self {
        Self {
            own_nats_server: true,
            sweeper: (ms(200), secs(1)),
            ..Self::default()
        }
    }
}

/// Any free loopback port.
const LOCAL_PORT: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A duration in milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A duration in seconds.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl Default for Options {
    fn default() -> Self {
        Self {
            replicas: 1,
            backoff: vec![ms(50), ms(100)],
            max_attempts: 3,
            lock_timeout: ms(300),
            micro_batch: 32,
            ack_wait: secs(10),
            own_nats_server: false,
            sweeper: (secs(3600), secs(3600)),
            sweep_stuck_age: secs(3600),
            max_ack_pending: 1000,
            metrics: false,
            extra_args: Vec::new(),
        }
    }
}

/// investment-svc and the allocation-svc replicas, sharing one [`Infra`] (`stack.db`,
/// `stack.nats`, ... through `Deref`).
pub struct Stack {
    pub options: Options,
    pub investment_svc: Running,
    pub replicas: Vec<Running>,
    /// Each replica's pools, by index, for tests that hold their connections.
    pub pools: Vec<allocation_svc::Pools>,
    // Dropped last: the services stop before their database goes.
    pub infra: Infra,
}

impl std::ops::Deref for Stack {
    type Target = Infra;
    fn deref(&self) -> &Infra {
        &self.infra
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Infra {
        &mut self.infra
    }
}

pub async fn stack() -> Stack {
    stack_with(Options::default()).await
}

pub async fn stack_with(options: Options) -> Stack {
    let infra = Infra::start(options.own_nats_server)
        .await
        .expect("database and NATS (run the tests with scripts/test)");
    stack_on(infra, options).await
}

/// A stack on infrastructure made by the caller (a 3-node cluster).
pub async fn stack_on(infra: Infra, options: Options) -> Stack {
    let mut config = investment_svc::Config::try_parse_from(infra.service_args("investment-svc"))
        .expect("config");
    config.sweeper.sweep_interval = options.sweeper.0;
    config.sweeper.sweep_min_age = options.sweeper.1;
    config.sweeper.sweep_stuck_age = options.sweep_stuck_age;
    if options.metrics {
        config.common.telemetry.metrics_addr = Some(LOCAL_PORT);
    }
    // Its pool as the binary opens it (DATABASE_ACQUIRE_TIMEOUT and all).
    config.common.db.database_url = infra.test_db.url.clone().into();
    let db = service_kit::db::connect(&config.common.db)
        .await
        .expect("investment-svc's pool");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
    let app = investment_svc::App::from_parts(config, db, infra.nats.clone(), listener)
        .await
        .expect("investment-svc builds");
    let metrics_addr = app.metrics_addr();
    let investment_svc = Running::start(app.local_addr().expect("addr"), |t| {
        app.run_until_stopped(t)
    })
    .with_metrics(metrics_addr);
    let mut stack = Stack {
        options: options.clone(),
        investment_svc,
        replicas: Vec::new(),
        pools: Vec::new(),
        infra,
    };
    for _ in 0..options.replicas {
        stack.add_replica(true).await;
    }
    stack
}

impl Stack {
    /// The allocation-svc configuration of this stack.
    pub fn replica_config(&self, allocate: bool) -> allocation_svc::Config {
        allocation_svc::Config::try_parse_from(self.replica_args(allocate)).expect("config")
    }

    /// An allocator with this stack's replica settings on `db` (a pool of the test's: counting,
    /// recording or short-timed), for tests that drive units of work themselves.
    pub fn allocator_on(
        &self,
        db: sea_orm::DatabaseConnection,
    ) -> allocation_svc::worker::Allocator {
        let config = self.replica_config(true);
        allocation_svc::worker::Allocator::new(
            db,
            self.nats.clone(),
            allocation_bus::Topology::from_args(&config.common.nats),
            config.allocator,
            Default::default(),
        )
    }

    /// The command line of an allocation-svc replica of this stack (the options rendered once,
    /// for replicas in process and for the binary alike).
    pub fn replica_args(&self, allocate: bool) -> Vec<String> {
        let o = &self.options;
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let backoff: Vec<_> = o.backoff.iter().map(|&d| duration(d)).collect();
        let mut args = self.service_args("allocation-svc");
        args.extend([
            format!("--allocate={allocate}"),
            format!("--ack-wait={}", duration(o.ack_wait)),
            format!("--retry-backoff={}", backoff.join(",")),
            format!("--max-attempts={}", o.max_attempts),
            format!("--lock-timeout={}", duration(o.lock_timeout)),
            format!("--micro-batch={}", o.micro_batch),
            format!("--max-ack-pending={}", o.max_ack_pending),
            "--watch-resync=500ms".into(),
        ]);
        args.extend(o.extra_args.iter().cloned());
        args
    }

    /// Starts one more allocation-svc replica with its three pools opened as configured;
    /// returns its index.
    pub async fn add_replica(&mut self, allocate: bool) -> usize {
        let pools = self.open_pools(&self.replica_config(allocate)).await;
        self.add_replica_on(allocate, pools).await
    }

    /// The database settings of a replica with `config`, pointed at the test database.
    pub fn replica_db(&self, config: &allocation_svc::Config) -> service_kit::config::DbArgs {
        let mut db = config.common.db.clone();
        db.database_url = self.test_db.url.clone().into();
        db
    }

    /// The three pools of a replica with `config`, opened on the test database as the binary
    /// opens them.
    pub async fn open_pools(&self, config: &allocation_svc::Config) -> allocation_svc::Pools {
        allocation_svc::Pools::open(&self.replica_db(config), &config.pools)
            .await
            .expect("pools")
    }

    /// Starts one more replica whose statements are counted; returns its index and the count.
    pub async fn add_counted_replica(
        &mut self,
        allocate: bool,
    ) -> (usize, testkit::db::StatementCounter) {
        let (pool, statements) = self.test_db.connect_counting().await;
        let pools = allocation_svc::Pools::shared(pool);
        (self.add_replica_on(allocate, pools).await, statements)
    }

    /// Starts one more replica on pools made by the caller; returns its index.
    pub async fn add_replica_on(&mut self, allocate: bool, pools: allocation_svc::Pools) -> usize {
        let config = self.replica_config(allocate);
        self.add_replica_as(config, pools).await
    }

    /// Starts one more replica with a configuration the caller changed; returns its index.
    pub async fn add_replica_as(
        &mut self,
        mut config: allocation_svc::Config,
        pools: allocation_svc::Pools,
    ) -> usize {
        if self.options.metrics {
            config.common.telemetry.metrics_addr = Some(LOCAL_PORT);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
        self.pools.push(pools.clone());
        let app = allocation_svc::App::from_parts(config, pools, self.nats.clone(), listener)
            .await
            .expect("allocation-svc builds");
        let addr = app.local_addr().expect("addr");
        let metrics_addr = app.metrics_addr();
        self.replicas
            .push(Running::start(addr, |t| app.run_until_stopped(t)).with_metrics(metrics_addr));
        self.replicas.len() - 1
    }

    /// The private nats-server of a stack made with `own_nats_server`.
    pub fn own_nats(&mut self) -> &mut testkit::nats::NatsServer {
        self.nats_server.as_mut().expect("own server")
    }

    pub async fn investments(&self, user_id: Uuid) -> Investments {
        InvestmentServiceClient::with_interceptor(
            self.investment_svc.channel().await,
            Bearer(Some(testkit::token(user_id))),
        )
    }

    pub async fn allocations(&self, replica: usize, token: Option<String>) -> Allocations {
        AllocationServiceClient::with_interceptor(
            self.replicas[replica].channel().await,
            Bearer(token),
        )
    }

    pub async fn admin(&self) -> Allocations {
        self.allocations(0, Some(testkit::admin_token(Uuid::new_v4())))
            .await
    }

    /// A user with a subscription worth `value` (12 x value/12) and an open deal at `price`
    /// with batches of `units`, oldest first.
    pub async fn investor(&self, value: &str, price: &str, units: &[i64]) -> Investor {
        let monthly = testkit::fixtures::dec(value) / rust_decimal::Decimal::from(12);
        let (user_id, subscription, deal) = self
            .fixtures
            .investor(&monthly.round_dp(2).to_string(), price)
            .await
            .expect("investor");
        let batches = self.batches(deal.id, units).await;
        Investor {
            user_id,
            subscription,
            deal,
            batches,
        }
    }

    /// Batches for `deal_id`, one day apart, oldest first.
    pub async fn batches(&self, deal_id: Uuid, units: &[i64]) -> Vec<bulk_purchase::Model> {
        let mut out = Vec::new();
        for (i, &u) in units.iter().enumerate() {
            let at = Utc::now() - chrono::Duration::days(100 - i as i64);
            out.push(self.fixtures.batch(deal_id, u, at).await.expect("batch"));
        }
        out
    }

    pub async fn create(&self, investor: &Investor, shares: i64) -> pb::Investment {
        self.investments(investor.user_id)
            .await
            .create_investment(pb::CreateInvestmentRequest {
                subscription_id: investor.subscription.id.to_string(),
                deal_id: investor.deal.id.to_string(),
                shares,
                request_id: String::new(),
            })
            .await
            .expect("created")
            .into_inner()
            .investment
            .expect("investment")
    }

    /// GetInvestment as `user_id`, from investment-svc.
    pub async fn get_investment(&self, user_id: Uuid, id: &str) -> pb::Investment {
        self.investments(user_id)
            .await
            .get_investment(pb::GetInvestmentRequest {
                investment_id: id.to_owned(),
            })
            .await
            .expect("get")
            .into_inner()
            .investment
            .expect("investment")
    }

    /// RetryAllocation as an admin, which must accept it.
    pub async fn retry(&self, id: &str) -> pb::Investment {
        self.admin()
            .await
            .retry_allocation(pb::RetryAllocationRequest {
                investment_id: id.to_owned(),
            })
            .await
            .expect("retry")
            .into_inner()
            .investment
            .expect("investment")
    }

    pub async fn investment(&self, id: &str) -> investment::Model {
        Investment::find_by_id(Uuid::parse_str(id).expect("uuid"))
            .one(&self.db)
            .await
            .expect("query")
            .expect("exists")
    }

    /// Waits until every investment is COMPLETED or FAILED.
    /// Every investment once all are terminal; past `deadline` it fails naming those that are
    /// not, with their status, attempts and publish stamp (what a stranded one needs to be
    /// understood).
    pub async fn all_terminal(&self, deadline: Duration) -> Vec<investment::Model> {
        testkit::eventually_explained(deadline, "every investment to be terminal", || async {
            let all = Investment::find()
                .all(&self.db)
                .await
                .map_err(|e| e.to_string())?;
            let open: Vec<_> = all
                .iter()
                .filter(|i| !i.allocation_status.is_terminal())
                .map(|i| {
                    format!(
                        "{} {:?} attempts {} version {} published {:?} updated {} created {}",
                        i.id,
                        i.allocation_status,
                        i.allocation_attempts,
                        i.status_version,
                        i.last_published_at,
                        i.updated_at,
                        i.created_at
                    )
                })
                .collect();
            if open.is_empty() {
                Ok(all)
            } else {
                Err(format!(
                    "{} of {} not terminal:\n{}",
                    open.len(),
                    all.len(),
                    open.join("\n")
                ))
            }
        })
        .await
    }
}

pub struct Investor {
    pub user_id: Uuid,
    pub subscription: subscription::Model,
    pub deal: deal::Model,
    pub batches: Vec<bulk_purchase::Model>,
}

impl Stack {
    /// Starts the allocation-svc binary against this stack, and waits until it serves.
    pub async fn spawn_process(&self) -> testkit::process::Process {
        let addr = testkit::process::free_addr();
        let mut args = self.replica_args(true);
        args.retain(|a| !a.starts_with("--listen-addr"));
        args.push(format!("--listen-addr={addr}"));
        args.push(format!("--database-url={}", self.test_db.url));
        testkit::process::Process::spawn(env!("CARGO_BIN_EXE_allocation-svc"), &args[1..], addr)
            .await
    }
}
