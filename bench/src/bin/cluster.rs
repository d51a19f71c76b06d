//! `cluster`: what stream replicas cost on a 3-node JetStream cluster (BENCHMARKS.md,
//! "Cluster"), and the longest pause a client sees when the stream leader is lost.
//!
//! For each configuration, one after the other in the same run, on a cluster of its own and a
//! fresh database: R1 (the reference), R3, and R3 with `sync_interval: always` (every node
//! flushes before it acknowledges). investment-svc and an allocating allocation-svc run in
//! process; C clients call CreateInvestment back to back for the window: creates/s and create
//! latency seen by the clients. Then a window at `--paced-rate` creates/s (below what the
//! allocator drains, so no backlog): create -> COMPLETED p50/p99 from the database (the
//! COMPLETED event's time against the investment's). Each figure is also printed as a ratio
//! of R1's. Then, on R3, the stream leader is SIGKILLed under the same load: the longest a
//! single create took around the loss (its publish retried through the election) and how long
//! the clients went without any create answered.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench::{Investments, histogram, investments, micros, report, request};
use clap::Parser;
use futures::future::join_all;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use testkit::cluster::{Cluster, Sync};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Creates on R1 vs R3 vs R3 with sync_interval: always; a leader loss.")]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// How long each measured window lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Deals (allocation pools) the clients spread over.
    #[arg(long, default_value_t = 4)]
    pools: usize,
    /// Creates per second, all clients together, of the window that measures create ->
    /// COMPLETED: below what the allocator drains, so the figure is the path, not a backlog.
    #[arg(long, default_value_t = 200)]
    paced_rate: u32,
}

/// One configuration's services on its own cluster.
struct Setup {
    cluster: Cluster,
    infra: testkit::stack::Infra,
    investment_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Setup {
    async fn start(replicas: usize, sync: Sync) -> anyhow::Result<Setup> {
        let cluster = Cluster::start_with(sync).await;
        let infra = cluster.infra(replicas).await?;
        let shutdown = CancellationToken::new();
        let config = investment_svc::Config::try_parse_from(infra.service_args("investment-svc"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let app = investment_svc::App::from_parts(
            config,
            infra.test_db.connect().await,
            infra.nats.clone(),
            listener,
        )
        .await?;
        let investment_addr = app.local_addr()?;
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let config = allocation_svc::Config::try_parse_from(infra.service_args("allocation-svc"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let app = allocation_svc::App::from_parts(
            config,
            allocation_svc::Pools::shared(infra.test_db.connect().await),
            infra.nats.clone(),
            listener,
        )
        .await?;
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Ok(Setup {
            cluster,
            infra,
            investment_addr,
            shutdown,
        })
    }

    /// A client per worker, each with its own subscription, over `pools` deals.
    async fn clients(
        &self,
        n: usize,
        pools: usize,
    ) -> anyhow::Result<Vec<(Investments, Uuid, Uuid)>> {
        let f = &self.infra.fixtures;
        let mut deals = Vec::new();
        for _ in 0..pools {
            let deal = f.deal("1.00", entity::prelude::DealStatus::Open).await?;
            f.batch(deal.id, 10_000_000, chrono::Utc::now()).await?;
            deals.push(deal.id);
        }
        let mut out = Vec::new();
        for i in 0..n {
            let user = Uuid::new_v4();
            let plan = f.plan("1000000000.00", Some(12)).await?;
            let subscription = f
                .subscription(
                    user,
                    plan.id,
                    None,
                    entity::prelude::SubscriptionStatus::Active,
                )
                .await?;
            out.push((
                investments(self.investment_addr, user).await?,
                subscription.id,
                deals[i % deals.len()],
            ));
        }
        Ok(out)
    }

    /// Waits until nothing is pending or processing.
    async fn drained(&self) -> anyhow::Result<()> {
        let give_up = Instant::now() + Duration::from_secs(300);
        while bench::unfinished(&self.infra.db).await? > 0 {
            anyhow::ensure!(Instant::now() < give_up, "backlog not drained in 5 minutes");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The database's clock.
    async fn now(&self) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        let row = self
            .infra
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT now() AS now",
            ))
            .await?
            .context("now row")?;
        Ok(row.try_get("", "now")?)
    }

    /// Create -> COMPLETED p50 and p99 in ms over the investments created since `since`.
    async fn to_completed(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<(f64, f64)> {
        let row = self
            .infra
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50, \
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99 \
                 FROM (SELECT extract(epoch FROM e.created_at - i.created_at) * 1000 AS d \
                       FROM allocation_events e JOIN investments i ON i.id = e.investment_id \
                       WHERE e.allocation_status = 'completed' AND i.created_at >= $1) t",
                [since.into()],
            ))
            .await?
            .context("percentile row")?;
        Ok((row.try_get("", "p50")?, row.try_get("", "p99")?))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What the clients saw in a window.
struct Seen {
    latencies: Histogram<u64>,
    errors: usize,
    /// When each answered create was answered.
    answered: Vec<Instant>,
}

/// Every client creates until `until`: back to back, or one create per `pace` each.
async fn load(
    clients: &[(Investments, Uuid, Uuid)],
    until: Instant,
    pace: Option<Duration>,
) -> anyhow::Result<Seen> {
    let runs = clients.iter().map(|(client, subscription, deal)| {
        let mut client = client.clone();
        async move {
            let mut ticks = pace.map(tokio::time::interval);
            let mut seen = Seen {
                latencies: histogram(),
                errors: 0,
                answered: Vec::new(),
            };
            while Instant::now() < until {
                if let Some(ticks) = ticks.as_mut() {
                    ticks.tick().await;
                }
                let start = Instant::now();
                match client
                    .create_investment(request(*subscription, *deal))
                    .await
                {
                    Ok(_) => {
                        let _ = seen.latencies.record(micros(start.elapsed()));
                        seen.answered.push(Instant::now());
                    }
                    Err(_) => seen.errors += 1,
                }
            }
            seen
        }
    });
    let mut all = Seen {
        latencies: histogram(),
        errors: 0,
        answered: Vec::new(),
    };
    for seen in join_all(runs).await {
        all.latencies.add(seen.latencies)?;
        all.errors += seen.errors;
        all.answered.extend(seen.answered);
    }
    all.answered.sort();
    Ok(all)
}

/// One configuration's figures.
struct Figures {
    rate: f64,
    create_p50: f64,
    create_p99: f64,
    completed_p50: f64,
    completed_p99: f64,
}

async fn measure(label: &str, setup: &Setup, args: &Args) -> anyhow::Result<Figures> {
    let clients = setup.clients(args.clients, args.pools).await?;
    // Warm-up: connections, plans, the first stream blocks.
    load(&clients, Instant::now() + Duration::from_secs(2), None).await?;
    setup.drained().await?;
    let from = Instant::now();
    let seen = load(&clients, from + Duration::from_secs(args.seconds), None).await?;
    let rate = seen.latencies.len() as f64 / from.elapsed().as_secs_f64();
    setup.drained().await?;
    // Create -> COMPLETED at a rate the allocator keeps up with.
    let since = setup.now().await?;
    let pace = Duration::from_secs_f64(clients.len() as f64 / f64::from(args.paced_rate.max(1)));
    load(
        &clients,
        Instant::now() + Duration::from_secs(args.seconds),
        Some(pace),
    )
    .await?;
    setup.drained().await?;
    let (completed_p50, completed_p99) = setup.to_completed(since).await?;
    let ms = |q: f64| seen.latencies.value_at_quantile(q) as f64 / 1000.0;
    report(&format!("{label}: create"), &seen.latencies);
    println!(
        "{label:<20} {rate:>8.0} creates/s  create->COMPLETED at {}/s: p50 {completed_p50:>7.1} ms  p99 {completed_p99:>7.1} ms  errors {}",
        args.paced_rate, seen.errors
    );
    ledger_audit(&setup.infra.db).await?;
    Ok(Figures {
        rate,
        create_p50: ms(0.5),
        create_p99: ms(0.99),
        completed_p50,
        completed_p99,
    })
}

/// The production audit, strict: the bench's runs must leave nothing wrong behind.
async fn ledger_audit(db: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let violations = ledger::audit::run(db, Duration::ZERO).await?;
    anyhow::ensure!(violations.is_empty(), "audit: {violations:#?}");
    Ok(())
}

/// The stream leader SIGKILLed a third into a window of load on R3.
async fn leader_loss(setup: &mut Setup, args: &Args) -> anyhow::Result<()> {
    let clients = setup.clients(args.clients, args.pools).await?;
    let js = async_nats::jetstream::new(setup.infra.nats.clone());
    let stream = setup.infra.names.stream.clone();
    let leader = setup.cluster.stream_leader(&js, &stream).await;
    let from = Instant::now();
    let until = from + Duration::from_secs(args.seconds.max(9));
    let kill_at = from + Duration::from_secs(args.seconds.max(9) / 3);
    let (seen, killed) = tokio::join!(load(&clients, until, None), async {
        tokio::time::sleep_until(kill_at.into()).await;
        setup.cluster.kill(leader);
        Instant::now()
    });
    let seen = seen?;
    let gap = seen
        .answered
        .windows(2)
        .filter(|w| w[1] >= killed)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    report("R3, stream leader SIGKILLed: create", &seen.latencies);
    println!(
        "R3 leader loss: longest create {:.0} ms, longest time without any create answered {:.0} ms, errors {}",
        seen.latencies.max() as f64 / 1000.0,
        gap.as_secs_f64() * 1000.0,
        seen.errors
    );
    setup.cluster.restart(leader).await;
    setup.drained().await?;
    ledger_audit(&setup.infra.db).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "cluster bench: {} clients, {} s windows, {} pools, 3 nats-server nodes on this machine",
        args.clients, args.seconds, args.pools
    );
    let r1 = {
        let setup = Setup::start(1, Sync::Default).await?;
        measure("R1", &setup, &args).await?
    };
    let mut r3_setup = Setup::start(3, Sync::Default).await?;
    let r3 = measure("R3", &r3_setup, &args).await?;
    leader_loss(&mut r3_setup, &args).await?;
    drop(r3_setup);
    let always = {
        let setup = Setup::start(3, Sync::Always).await?;
        measure("R3 sync always", &setup, &args).await?
    };
    for (label, f) in [("R3", &r3), ("R3 sync always", &always)] {
        println!(
            "{label:<20} vs R1: creates/s x{:.2}, create p50 x{:.2} p99 x{:.2}, create->COMPLETED p50 x{:.2} p99 x{:.2}",
            f.rate / r1.rate,
            f.create_p50 / r1.create_p50,
            f.create_p99 / r1.create_p99,
            f.completed_p50 / r1.completed_p50,
            f.completed_p99 / r1.completed_p99,
        );
    }
    Ok(())
}
