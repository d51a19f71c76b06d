//! What the bench binaries share: the services in process (or allocation-svc as a process of its
//! own, when its memory and CPU are measured), test users and deals, and the reporting.

use std::time::Duration;

use anyhow::Context as _;
use api::v1::{
    self as pb, allocation_service_client::AllocationServiceClient,
    investment_service_client::InvestmentServiceClient,
};
use chrono::Utc;
use clap::Parser;
use entity::prelude::*;
use hdrhistogram::Histogram;
use testkit::{Bearer, stack::Infra};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

pub mod hot;

/// A client of investment-svc calling as one user.
pub type Investments = InvestmentServiceClient<InterceptedService<Channel, Bearer>>;

/// A client of allocation-svc calling as one user.
pub type Allocations = AllocationServiceClient<InterceptedService<Channel, Bearer>>;

/// A connection of its own to the service at `addr`, and the bearer token of `user`.
async fn connect(addr: std::net::SocketAddr, user: Uuid) -> anyhow::Result<(Channel, Bearer)> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok((channel, Bearer(Some(testkit::token(user)))))
}

/// A client of the allocation-svc at `addr` calling as `user`, on a connection of its own.
pub async fn allocations(addr: std::net::SocketAddr, user: Uuid) -> anyhow::Result<Allocations> {
    let (channel, bearer) = connect(addr, user).await?;
    Ok(AllocationServiceClient::with_interceptor(channel, bearer))
}

/// A client of the investment-svc at `addr` calling as `user`, on a connection of its own.
pub async fn investments(addr: std::net::SocketAddr, user: Uuid) -> anyhow::Result<Investments> {
    let (channel, bearer) = connect(addr, user).await?;
    Ok(InvestmentServiceClient::with_interceptor(channel, bearer))
}

/// investment-svc in process against a fresh database and NATS.
pub struct Stack {
    /// investment-svc's address.
    pub investment_addr: std::net::SocketAddr,
    /// Stops the services in process.
    pub shutdown: CancellationToken,
    /// Database, NATS and names.
    pub infra: Infra,
    /// Statements investment-svc's pool has sent (BEGIN and COMMIT not counted).
    pub create_statements: Counter,
}

/// A count shared with a pool's metric callback.
pub type Counter = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// Reads a [`Counter`].
pub fn count(counter: &Counter) -> usize {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts every statement `pool` sends (sea-orm's metric callback: BEGIN and COMMIT are not
/// seen).
pub fn counted(pool: &mut sea_orm::DatabaseConnection) -> Counter {
    let counter = Counter::default();
    let seen = counter.clone();
    pool.set_metric_callback(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    counter
}

impl std::ops::Deref for Stack {
    type Target = Infra;
    fn deref(&self) -> &Infra {
        &self.infra
    }
}

impl Stack {
    /// investment-svc in process against a fresh database and NATS (a private server if
    /// `own_nats_server`, which the bench can stop).
    pub async fn start(own_nats_server: bool) -> anyhow::Result<Stack> {
        let infra = Infra::start(own_nats_server).await?;
        let mut args = infra.service_args("investment-svc");
        args.push("--database-max-connections=40".into());
        let config = investment_svc::Config::try_parse_from(args)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut pool = sea_orm::Database::connect(
            sea_orm::ConnectOptions::new(&infra.test_db.url)
                .max_connections(40)
                .sqlx_logging(false)
                .to_owned(),
        )
        .await?;
        let create_statements = counted(&mut pool);
        let app =
            investment_svc::App::from_parts(config, pool, infra.nats.clone(), listener).await?;
        let investment_addr = app.local_addr()?;
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Ok(Stack {
            investment_addr,
            shutdown,
            infra,
            create_statements,
        })
    }

    /// An allocating allocation-svc in process.
    pub async fn start_allocator(&self) -> anyhow::Result<std::net::SocketAddr> {
        let config = allocation_svc::Config::try_parse_from(self.service_args("allocation-svc"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let app = allocation_svc::App::from_parts(
            config,
            // One pool of 20 for everything, as BENCHMARKS.md's allocator figures were taken.
            allocation_svc::Pools::shared(self.test_db.connect().await),
            self.nats.clone(),
            listener,
        )
        .await?;
        let addr = app.local_addr()?;
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
        Ok(addr)
    }

    /// An allocating allocation-svc in process until `stop`, its allocator on a pool of its
    /// own whose statements are counted (readers and watchers on another). Await the handle
    /// after `stop` to know it has stopped.
    pub async fn start_counted_allocator(
        &self,
        stop: CancellationToken,
    ) -> anyhow::Result<(Counter, tokio::task::JoinHandle<anyhow::Result<()>>)> {
        let config = allocation_svc::Config::try_parse_from(self.service_args("allocation-svc"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut allocator = self.test_db.connect().await;
        let statements = counted(&mut allocator);
        let read = self.test_db.connect().await;
        let pools = allocation_svc::Pools {
            allocator,
            read: read.clone(),
            watch: read,
        };
        let app =
            allocation_svc::App::from_parts(config, pools, self.nats.clone(), listener).await?;
        let running = tokio::spawn(async move { app.run_until_stopped(stop).await });
        Ok((statements, running))
    }

    /// The allocation-svc binary (built beside this one by scripts/bench) as its own process,
    /// serving watchers only.
    pub async fn spawn_allocation_svc(&self) -> anyhow::Result<testkit::process::Process> {
        self.spawn_allocation_svc_with(&[]).await
    }

    /// [`Stack::spawn_allocation_svc`] with `extra` flags (connection and stream caps).
    pub async fn spawn_allocation_svc_with(
        &self,
        extra: &[String],
    ) -> anyhow::Result<testkit::process::Process> {
        // The bench holds up to 200 streams per user: the per-user cap is not what it measures.
        let mut args = vec![
            "--allocate=false".into(),
            "--watch-max-per-user=100000".into(),
        ];
        args.extend_from_slice(extra);
        spawn_service(&self.infra, "allocation-svc", &args).await
    }

    /// A client of investment-svc calling as `user`.
    pub async fn investments(&self, user: Uuid) -> anyhow::Result<Investments> {
        investments(self.investment_addr, user).await
    }

    /// A user whose subscription can afford anything, and `pools` open deals with plenty of
    /// inventory.
    pub async fn investor(
        &self,
        pools: usize,
        units: i64,
    ) -> anyhow::Result<(Uuid, Uuid, Vec<Uuid>)> {
        let user = Uuid::new_v4();
        let plan = self.fixtures.plan("1000000000.00", Some(12)).await?;
        let subscription = self
            .fixtures
            .subscription(user, plan.id, None, SubscriptionStatus::Active)
            .await?;
        let mut deals = Vec::new();
        for _ in 0..pools {
            let deal = self.fixtures.deal("1.00", DealStatus::Open).await?;
            for day in 0..3 {
                self.fixtures
                    .batch(
                        deal.id,
                        units,
                        Utc::now() - chrono::Duration::days(10 - day),
                    )
                    .await?;
            }
            deals.push(deal.id);
        }
        Ok((user, subscription.id, deals))
    }
}

/// The service binary `bin` (built beside this one by scripts/bench) as its own process on a
/// free port against `infra`, with `extra` flags.
pub async fn spawn_service(
    infra: &Infra,
    bin: &str,
    extra: &[String],
) -> anyhow::Result<testkit::process::Process> {
    let path = std::env::current_exe()?.with_file_name(bin);
    let addr = testkit::process::free_addr();
    let mut args = infra.service_args(bin);
    args.retain(|a| !a.starts_with("--listen-addr"));
    args.push(format!("--listen-addr={addr}"));
    args.push(format!("--database-url={}", infra.test_db.url));
    args.extend_from_slice(extra);
    Ok(testkit::process::Process::spawn(&path.to_string_lossy(), &args[1..], addr).await)
}

/// Linux's `USER_HZ`: the unit of `/proc/<pid>/stat` CPU times.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("stat field")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// CPU seconds used so far by every process named `name` (what `/proc/<pid>/comm` says).
pub fn cpu_of(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .filter_map(|pid| cpu_seconds(pid).ok())
        .sum()
}

/// A create of one share.
pub fn request(subscription: Uuid, deal: Uuid) -> pb::CreateInvestmentRequest {
    pb::CreateInvestmentRequest {
        subscription_id: subscription.to_string(),
        deal_id: deal.to_string(),
        shares: 1,
        request_id: String::new(),
    }
}

/// A latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Prints a latency line.
pub fn report(what: &str, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{what:<56} n={:<6} p50={:>8.2} ms  p95={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        h.len(),
        ms(0.5),
        ms(0.95),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
}

/// Microseconds, at least 1.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Resident memory of process `pid`, from /proc.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}

/// What PostgreSQL had spent at one moment: the CPU time of the processes working for the
/// bench's database (its backends and autovacuum workers, by `pg_stat_activity.datname`, plus
/// the server's WAL writer, background writer and checkpointer, which other databases of a
/// shared server also use) and the server's WAL bytes (`pg_stat_wal`, server-wide).
pub struct PgSample {
    cpu: std::collections::HashMap<u32, f64>,
    wal_bytes: f64,
}

/// PostgreSQL's cost between two samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct PgCost {
    /// CPU seconds of the sampled processes.
    pub cpu_seconds: f64,
    /// WAL written.
    pub wal_bytes: f64,
}

impl PgCost {
    /// The cost per unit of `n` units, as "`cpu` µs CPU, `wal` B WAL".
    pub fn per(&self, n: usize) -> String {
        let n = n.max(1) as f64;
        format!(
            "PostgreSQL {:.0} µs CPU, {:.0} B WAL",
            self.cpu_seconds * 1e6 / n,
            self.wal_bytes / n
        )
    }

    /// CPU µs per unit of `n` units.
    pub fn cpu_micros_per(&self, n: usize) -> f64 {
        self.cpu_seconds * 1e6 / n.max(1) as f64
    }
}

impl PgSample {
    /// Samples now, through `db` (a connection to the bench's database).
    pub async fn take(db: &sea_orm::DatabaseConnection) -> anyhow::Result<PgSample> {
        use sea_orm::{ConnectionTrait, DbBackend, Statement};
        let pids = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 OR backend_type IN ('walwriter', 'background writer', 'checkpointer')",
            ))
            .await?;
        let mut cpu = std::collections::HashMap::new();
        for row in pids {
            let pid: i32 = row.try_get("", "pid")?;
            let pid = u32::try_from(pid)?;
            // A backend that ended meanwhile has nothing left to count.
            if let Ok(seconds) = cpu_seconds(pid) {
                cpu.insert(pid, seconds);
            }
        }
        let wal = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT wal_bytes::float8 AS wal_bytes FROM pg_stat_wal",
            ))
            .await?
            .context("pg_stat_wal row")?;
        Ok(PgSample {
            cpu,
            wal_bytes: wal.try_get("", "wal_bytes")?,
        })
    }

    /// What was spent since `before` (a process new since then counts from zero).
    pub fn since(&self, before: &PgSample) -> PgCost {
        let cpu_seconds = self
            .cpu
            .iter()
            .map(|(pid, now)| now - before.cpu.get(pid).copied().unwrap_or(0.0))
            .sum();
        PgCost {
            cpu_seconds,
            wal_bytes: self.wal_bytes - before.wal_bytes,
        }
    }
}

/// Investments not yet completed or failed.
pub async fn unfinished(db: &sea_orm::DatabaseConnection) -> anyhow::Result<i64> {
    use sea_orm::ConnectionTrait as _;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM investments \
             WHERE allocation_status IN ('pending', 'processing')",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count row"))?;
    Ok(row.try_get("", "n")?)
}
