//! `load`: creates at the speed of the database, measured from outside (BENCHMARKS.md,
//! "Creates under load").
//!
//! Both services run as processes of their own on a fresh database, allocation-svc
//! allocating. For each client count C it measures, one after the other on the same
//! PostgreSQL:
//! - the reference: C connections inserting one investments-shaped row per statement into a
//!   copy of the `investments` table (its constraints and indexes, no triggers), as pgbench
//!   would;
//! - creates: C clients, each with its own HTTP/2 connection and subscription, calling
//!   CreateInvestment (one share, a fresh request id) back to back;
//!
//! and prints both rates, latencies, their ratio and the CPU each process spent per create.
//! Then the history case: one client alternating creates on a subscription with `--history`
//! past allocations and on a fresh one. Ends with the audit of the database.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use api::v1 as pb;
use bench::{
    Investments, PgSample, cpu_of, histogram, investments, micros, spawn_service, unfinished,
};
use chrono::Utc;
use clap::Parser;
use entity::prelude::*;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};
use testkit::stack::Infra;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Creates per second against a 1-row INSERT reference, and the history case.")]
struct Args {
    /// Concurrent clients (and reference connections) to measure at.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    clients: Vec<usize>,
    /// How long each measured window lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Load before each window that is not measured.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Deals (allocation pools) the clients spread over.
    #[arg(long, default_value_t = 4)]
    pools: usize,
    /// Past allocations of the subscription in the history case.
    #[arg(long, default_value_t = 50_000)]
    history: i64,
    /// Creates measured on each subscription of the history case.
    #[arg(long, default_value_t = 300)]
    history_creates: usize,
}

/// The reference statement: one investments-shaped row, as a create inserts it.
const REFERENCE_INSERT: &str = "INSERT INTO load_reference (id, user_id, subscription_id, \
     deal_id, shares, price_per_share, total_amount, request_id, last_published_at) \
     VALUES ($1, $2, $3, $4, 1, 1.00, 1.00, $5, now())";

/// When a measured window starts and ends.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    /// Starts after `warmup` and lasts `seconds`.
    fn after(warmup: u64, seconds: u64) -> Self {
        let from = Instant::now() + Duration::from_secs(warmup);
        Window {
            from,
            until: from + Duration::from_secs(seconds),
        }
    }

    fn seconds(&self) -> f64 {
        (self.until - self.from).as_secs_f64()
    }
}

/// What one client (or reference connection) saw inside the window.
struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, usize>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latencies: histogram(),
            errors: BTreeMap::new(),
        }
    }

    fn add(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latencies.add(other.latencies)?;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        Ok(())
    }

    /// Runs `op` back to back until the window ends, counting what started inside it.
    async fn run(window: Window, mut op: impl Operation) -> Tally {
        let mut tally = Tally::new();
        loop {
            let start = Instant::now();
            if start >= window.until {
                return tally;
            }
            let outcome = op.once().await;
            if start < window.from {
                continue;
            }
            match outcome {
                Ok(()) => {
                    let _ = tally.latencies.record(micros(start.elapsed()));
                }
                Err(e) => *tally.errors.entry(e.to_string()).or_default() += 1,
            }
        }
    }

    fn print(&self, what: &str, window: Window) {
        let ms = |q: f64| self.latencies.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{what:<34} {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {:?}",
            self.latencies.len() as f64 / window.seconds(),
            ms(0.5),
            ms(0.99),
            self.errors
        );
    }

    fn rate(&self, window: Window) -> f64 {
        self.latencies.len() as f64 / window.seconds()
    }
}

/// What a client or reference connection does, over and over.
trait Operation: Send + 'static {
    /// Once; the error says what went wrong.
    fn once(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Sums over `tasks`' tallies.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> anyhow::Result<Tally> {
    let mut total = Tally::new();
    for task in tasks {
        total.add(task.await?)?;
    }
    Ok(total)
}

/// A client creating one-share investments on its own subscription.
struct Client {
    grpc: Investments,
    request: pb::CreateInvestmentRequest,
}

impl Operation for Client {
    async fn once(&mut self) -> Result<(), String> {
        let mut request = self.request.clone();
        request.request_id = Uuid::new_v4().to_string();
        self.grpc
            .create_investment(request)
            .await
            .map(drop)
            .map_err(|s| format!("{:?}", s.code()))
    }
}

/// A reference connection inserting rows of one user and subscription.
struct Insert {
    pool: sea_orm::DatabaseConnection,
    user: Uuid,
    subscription: Uuid,
}

impl Operation for Insert {
    async fn once(&mut self) -> Result<(), String> {
        let values = [
            Uuid::now_v7().into(),
            self.user.into(),
            self.subscription.into(),
            self.subscription.into(),
            Uuid::new_v4().to_string().into(),
        ];
        self.pool
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                REFERENCE_INSERT,
                values,
            ))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The processes whose CPU time is reported: name and how to find their pids.
const PROCESSES: [&str; 5] = [
    "investment-svc",
    "allocation-svc",
    "postgres",
    "nats-server",
    "load",
];

fn cpu_sample() -> Vec<f64> {
    PROCESSES.iter().map(|p| cpu_of(p)).collect()
}

/// Waits until the allocator has finished every investment, so one measurement does not pay
/// for the last one's backlog.
async fn drained(db: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while unfinished(db).await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "the allocator did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `clients` connections inserting reference rows through the window.
async fn reference(infra: &Infra, clients: usize, window: Window) -> anyhow::Result<Tally> {
    let pool = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new(&infra.test_db.url)
            .max_connections(u32::try_from(clients)?)
            .min_connections(u32::try_from(clients)?)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await?;
    let tasks = (0..clients)
        .map(|_| {
            let insert = Insert {
                pool: pool.clone(),
                user: Uuid::new_v4(),
                subscription: Uuid::new_v4(),
            };
            tokio::spawn(Tally::run(window, insert))
        })
        .collect();
    let tally = gather(tasks).await;
    pool.close().await?;
    tally
}

/// `clients` clients creating through the window.
async fn creates(clients: Vec<Client>, window: Window) -> anyhow::Result<Tally> {
    let tasks = clients
        .into_iter()
        .map(|client| tokio::spawn(Tally::run(window, client)))
        .collect();
    gather(tasks).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let infra = Infra::start(false).await?;
    let investment = spawn_service(&infra, "investment-svc", &[]).await?;
    let _allocation = spawn_service(&infra, "allocation-svc", &[]).await?;
    infra
        .db
        .execute_unprepared(
            "CREATE TABLE load_reference (LIKE investments INCLUDING DEFAULTS \
             INCLUDING CONSTRAINTS INCLUDING INDEXES)",
        )
        .await?;
    let plan = infra.fixtures.plan("1000000000.00", Some(12)).await?;
    let mut deals = Vec::new();
    for _ in 0..args.pools {
        let deal = infra.fixtures.deal("1.00", DealStatus::Open).await?;
        let bought = Utc::now() - chrono::Duration::days(30);
        infra.fixtures.batch(deal.id, 1_000_000_000, bought).await?;
        deals.push(deal);
    }
    let addr = investment.addr();
    let client = |deal: usize| {
        let (fixtures, plan, deal) = (&infra.fixtures, &plan, &deals[deal % deals.len()]);
        async move {
            let user = Uuid::new_v4();
            let subscription = fixtures
                .subscription(user, plan.id, None, SubscriptionStatus::Active)
                .await?;
            anyhow::Ok(Client {
                grpc: investments(addr, user).await?,
                request: pb::CreateInvestmentRequest {
                    subscription_id: subscription.id.to_string(),
                    deal_id: deal.id.to_string(),
                    shares: 1,
                    request_id: String::new(),
                },
            })
        }
    };
    println!(
        "# load: {} s windows after {} s of warm-up, {} pools, services and PostgreSQL on this machine",
        args.seconds, args.warmup_seconds, args.pools
    );
    for &c in &args.clients {
        drained(&infra.db).await?;
        let window = Window::after(args.warmup_seconds, args.seconds);
        let insert = reference(&infra, c, window).await?;
        insert.print(&format!("reference insert, {c} connections"), window);

        let mut clients = Vec::with_capacity(c);
        for i in 0..c {
            clients.push(client(i).await?);
        }
        drained(&infra.db).await?;
        let window = Window::after(args.warmup_seconds, args.seconds);
        let task = tokio::spawn(creates(clients, window));
        tokio::time::sleep_until(window.from.into()).await;
        let before = cpu_sample();
        let pg_before = PgSample::take(&infra.db).await?;
        tokio::time::sleep_until(window.until.into()).await;
        let after = cpu_sample();
        let pg = PgSample::take(&infra.db).await?.since(&pg_before);
        let created = task.await??;
        created.print(&format!("creates, {c} clients"), window);
        let ratio = created.rate(window) / insert.rate(window);
        let p99_ms = created.latencies.value_at_quantile(0.99) as f64 / 1000.0;
        println!(
            "ratio creates/reference: {ratio:.3} (target 0.25 with p99 <= 100 ms: {})",
            if ratio >= 0.25 && p99_ms <= 100.0 {
                "met"
            } else {
                "NOT met"
            }
        );
        println!(
            "this database's {} per create (allocation included)",
            pg.per(usize::try_from(created.latencies.len())?)
        );
        let per_create =
            |i: usize| (after[i] - before[i]) * 1e6 / created.latencies.len().max(1) as f64;
        let cpu: Vec<String> = PROCESSES
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{p} {:.0}", per_create(i)))
            .collect();
        println!("CPU µs per create: {}", cpu.join(", "));
    }

    // The history case, seeded once the backlog is allocated (see `Fixtures::history`).
    let mut old = client(0).await?;
    let mut fresh = client(0).await?;
    let subscription: Uuid = old.request.subscription_id.parse()?;
    drained(&infra.db).await?;
    let seeded = Instant::now();
    let past = Subscription::find_by_id(subscription)
        .one(&infra.db)
        .await?
        .context("subscription")?;
    infra
        .fixtures
        .history(&past, &deals[0], args.history)
        .await?;
    println!(
        "history: {} past allocations seeded in {:.1} s",
        args.history,
        seeded.elapsed().as_secs_f64()
    );
    let (mut on_old, mut on_fresh) = (histogram(), histogram());
    for _ in 0..args.history_creates {
        for (client, h) in [(&mut old, &mut on_old), (&mut fresh, &mut on_fresh)] {
            let start = Instant::now();
            client
                .once()
                .await
                .map_err(|e| anyhow::anyhow!("create: {e}"))?;
            h.record(micros(start.elapsed()))?;
        }
    }
    bench::report(
        &format!("create on a subscription with {} allocations", args.history),
        &on_old,
    );
    bench::report("create on a fresh subscription", &on_fresh);
    println!(
        "ratio history/fresh p50: {:.2}",
        on_old.value_at_quantile(0.5) as f64 / on_fresh.value_at_quantile(0.5) as f64
    );

    drained(&infra.db).await?;
    let violations = ledger::audit::run(&infra.db, Duration::from_secs(3600)).await?;
    println!("audit: {} violations", violations.len());
    for v in &violations {
        println!("  {v}");
    }
    anyhow::ensure!(violations.is_empty(), "the audit found violations");
    Ok(())
}
