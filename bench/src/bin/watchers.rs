//! `watchers`: what open watch streams cost one allocation-svc, measured from outside
//! (BENCHMARKS.md, "Watching at scale"). allocation-svc runs with `ALLOCATE=false` as a process
//! of its own; for each count of open streams (half WatchAllocation on pending investments,
//! half WatchAllocations, over `--connections` HTTP/2 connections) it prints the service's RSS,
//! its CPU and the database's committed transactions per second while nothing changes, and the
//! first-message latency of new watches; then, with every stream still open, the delivery lag
//! (event time to client) while allocations run at `--rate` per second, and the RSS once every
//! stream has closed. Every client checks that each investment's versions arrive one after the
//! other (invariant 6); the bench fails if one did not, if a stream ended on its own, or if the
//! audit of the database finds a violation.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use api::v1 as pb;
use bench::{Allocations, Stack, allocations, cpu_seconds, histogram, micros, request, rss_mib};
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::task::JoinHandle;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Measures what open watch streams cost one allocation-svc.")]
struct Args {
    /// Open streams to measure at, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    streams: Vec<usize>,
    /// HTTP/2 connections (and users) the streams are spread over.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// How long each idle window lasts.
    #[arg(long, default_value_t = 5)]
    idle_seconds: u64,
    /// Creates (hence allocations) per second in the delivery-lag round.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// How long the delivery-lag round lasts.
    #[arg(long, default_value_t = 5)]
    load_seconds: u64,
}

/// How long PostgreSQL may take to count a backend's transactions in `pg_stat_database`
/// (PGSTAT_IDLE_INTERVAL is 10 s), with a margin.
const STATS_FLUSH: Duration = Duration::from_secs(11);

/// Transactions committed in the test database so far (each statement outside a
/// transaction is one).
async fn commits(db: &sea_orm::DatabaseConnection) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        ))
        .await?
        .context("pg_stat_database row")?;
    Ok(row.try_get("", "xact_commit")?)
}

/// Updates that were not the next version of their investment on their stream.
static OUT_OF_ORDER: AtomicU64 = AtomicU64::new(0);
/// Streams that ended before the bench closed them.
static ENDED: AtomicU64 = AtomicU64::new(0);

/// How long the service is given to free what closed streams held before its RSS is read.
const CLOSE_SETTLE: Duration = Duration::from_secs(5);

/// Streams opened at once while the bench opens them.
const OPENING: usize = 64;

/// The last version a stream showed of each investment: after the first, each must be the
/// next one.
#[derive(Default)]
struct InOrder(HashMap<String, i64>);

impl InOrder {
    /// Whether `update` comes in order; counts it in [`OUT_OF_ORDER`] if not.
    fn see(&mut self, update: &pb::AllocationUpdate) -> bool {
        let last = self.0.insert(update.investment_id.clone(), update.version);
        let ok = last.is_none_or(|last| update.version == last + 1);
        if !ok {
            OUT_OF_ORDER.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
}

/// A user of the bench: a connection to the watching service, and pending investments.
struct Watcher {
    user: Uuid,
    client: Allocations,
    pending: Vec<String>,
}

/// Reads a stream (a client that keeps up), checking the order of what it says; aborting the
/// task closes the stream. Nothing changes the bench's watched investments, so a stream that
/// ends on its own is counted in [`ENDED`].
fn drain<T: Send + 'static>(
    mut stream: tonic::Streaming<T>,
    update: fn(T) -> Option<pb::AllocationUpdate>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut order = InOrder::default();
        while let Some(Ok(item)) = stream.next().await {
            if let Some(update) = update(item) {
                order.see(&update);
            }
        }
        ENDED.fetch_add(1, Ordering::Relaxed);
    })
}

/// Opens stream number `n` of the bench, round-robin over the users' connections: even rounds
/// watch one pending investment, odd ones all of the user's.
async fn open_stream(users: &[Watcher], n: usize) -> anyhow::Result<JoinHandle<()>> {
    let user = &users[n % users.len()];
    let mut client = user.client.clone();
    let nth = n / users.len();
    Ok(if nth.is_multiple_of(2) {
        let id = user.pending[(nth / 2) % user.pending.len()].clone();
        drain(
            client
                .watch_allocation(pb::WatchAllocationRequest { investment_id: id })
                .await?
                .into_inner(),
            |item| item.update,
        )
    } else {
        drain(
            client
                .watch_allocations(pb::WatchAllocationsRequest::default())
                .await?
                .into_inner(),
            |item| item.update,
        )
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start(false)
        .await
        .context("starting the stack (run with scripts/bench)")?;
    let most = args.streams.iter().copied().max().unwrap_or(0);
    let per_connection = most.div_ceil(args.connections.max(1));
    // Half of each connection's streams watch one investment; five watchers per investment.
    let pending_per_user = (per_connection / 2).div_ceil(5).max(1);

    // Users and their pending investments; no allocator runs yet.
    // Caps raised so that the bench's streams fit: streams per connection, connections, and all
    // of them from 127.0.0.1.
    let caps = [
        format!("--http2-max-concurrent-streams={}", per_connection.max(100)),
        format!("--max-connections={}", (args.connections + 100).max(1000)),
        "--max-connections-per-address=0".into(),
    ];
    let service = stack.spawn_allocation_svc_with(&caps).await?;
    let mut users = Vec::new();
    for _ in 0..args.connections {
        let (user, subscription, deals) = stack.investor(1, 1_000_000).await?;
        let mut investments = stack.investments(user).await?;
        let mut pending = Vec::new();
        for _ in 0..pending_per_user {
            let created = investments
                .create_investment(request(subscription, deals[0]))
                .await?
                .into_inner()
                .investment
                .context("investment")?;
            pending.push(created.id);
        }
        let client = allocations(service.addr(), user).await?;
        users.push(Watcher {
            user,
            client,
            pending,
        });
    }
    println!(
        "watchers: allocation-svc (ALLOCATE=false) as its own process; {} connections, {} pending investments",
        args.connections,
        args.connections * pending_per_user
    );

    // Memory after streams close: 500 opened and closed, three times. What glibc's allocator
    // keeps after the first round is reused by the next ones, not added to.
    let baseline = rss_mib(service.id())?;
    let mut after_close = Vec::new();
    for _ in 0..3 {
        let mut streams = Vec::new();
        for n in 0..500 {
            streams.push(open_stream(&users, n).await?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for stream in &streams {
            stream.abort();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        after_close.push(format!("{:.1}", rss_mib(service.id())?));
    }
    println!(
        "   500 streams opened and closed, 3 times: RSS {baseline:.1} MiB before, {} MiB after each",
        after_close.join(" / ")
    );

    let mut open = 0;
    // Open to the end of the bench.
    let mut streams = Vec::new();
    for &target in &args.streams {
        // Open streams round-robin over the connections until `target`, a few at a time.
        let opening = Instant::now();
        let opened: Vec<_> = futures::stream::iter(open..target.max(open))
            .map(|n| open_stream(&users, n))
            .buffered(OPENING)
            .collect()
            .await;
        for stream in opened {
            streams.push(stream?);
        }
        open = open.max(target);
        let opening = opening.elapsed();
        // Settle until PostgreSQL has counted the opening (a backend flushes its counters up to
        // PGSTAT_IDLE_INTERVAL, 10 s, after its work), then an idle window. The commit count
        // is read again only once the window's own work is surely counted, and divided by all
        // that idle time.
        tokio::time::sleep(STATS_FLUSH).await;
        let window = Duration::from_secs(args.idle_seconds);
        let (cpu0, commits0) = (cpu_seconds(service.id())?, commits(&stack.db).await?);
        tokio::time::sleep(window).await;
        let cpu1 = cpu_seconds(service.id())?;
        tokio::time::sleep(STATS_FLUSH).await;
        let commits1 = commits(&stack.db).await?;
        let rss = rss_mib(service.id())?;
        // The bench's own two reads of the counter are not the service's.
        let statements =
            (commits1 - commits0 - 1).max(0) as f64 / (window + STATS_FLUSH).as_secs_f64();
        let cpu = (cpu1 - cpu0) / window.as_secs_f64() * 100.0;

        // New watches on a fresh connection (the others are at their stream cap): time to
        // the first message.
        let user = &users[0];
        let fresh = allocations(service.addr(), user.user).await?;
        let mut first = histogram();
        for i in 0..100 {
            let mut client = fresh.clone();
            let id = user.pending[i % user.pending.len()].clone();
            let started = Instant::now();
            let mut stream = client
                .watch_allocation(pb::WatchAllocationRequest { investment_id: id })
                .await?
                .into_inner();
            stream.next().await.context("first message")??;
            first.record(micros(started.elapsed()))?;
        }
        println!(
            "{open:>6} open streams: RSS {rss:>7.1} MiB, idle CPU {cpu:>5.2} %, idle DB commits {statements:>5.2}/s, first message p50 {:.2} ms p99 {:.2} ms (opened in {:.1} s)",
            first.value_at_quantile(0.5) as f64 / 1000.0,
            first.value_at_quantile(0.99) as f64 / 1000.0,
            opening.as_secs_f64(),
        );
    }

    // Delivery lag with every stream still open: the pending investments' requests are
    // dropped from the stream so that their watches stay open, an allocator starts, and
    // creates run at `rate` per second for users watching with WatchAllocations.
    let js = async_nats::jetstream::new(stack.nats.clone());
    js.get_stream(&stack.names.stream).await?.purge().await?;
    stack.start_allocator().await?;
    let (user, subscription, deals) = stack.investor(1, 10_000_000).await?;
    let deal = deals[0];
    let mut watcher = allocations(service.addr(), user).await?;
    let mut stream = watcher
        .watch_allocations(pb::WatchAllocationsRequest::default())
        .await?
        .into_inner();
    let creators = 8;
    let per_task = args.rate * args.load_seconds / creators;
    let total = per_task * creators;
    let lag = tokio::spawn(async move {
        let mut lag = histogram();
        let mut order = InOrder::default();
        let mut completed = 0;
        while completed < total {
            let Some(Ok(item)) = stream.next().await else {
                break;
            };
            let Some(update) = item.update else { continue };
            // Each investment of this user is new: PENDING (version 1) first, then each next.
            if update.version != 1 && !order.0.contains_key(&update.investment_id) {
                OUT_OF_ORDER.fetch_add(1, Ordering::Relaxed);
            }
            order.see(&update);
            let at = update.updated_at.unwrap_or_default();
            let sent =
                chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
                    .unwrap_or_default();
            let delay = (chrono::Utc::now() - sent).to_std().unwrap_or_default();
            let _ = lag.record(micros(delay));
            if update.allocation_status() == pb::AllocationStatus::Completed {
                completed += 1;
            }
        }
        lag
    });
    let mut tasks = Vec::new();
    for _ in 0..creators {
        let mut client = stack.investments(user).await?;
        let period = Duration::from_secs_f64(creators as f64 / args.rate as f64);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for _ in 0..per_task {
                tick.tick().await;
                let _ = client.create_investment(request(subscription, deal)).await;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let lag: Histogram<u64> = tokio::time::timeout(Duration::from_secs(60), lag)
        .await
        .context("all allocations seen")??;
    println!(
        "{open:>6} open streams, {} allocations/s: delivery lag (event to client) p50 {:.2} ms p99 {:.2} ms over {} updates; RSS {:.1} MiB",
        args.rate,
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag.len(),
        rss_mib(service.id())?
    );

    // Every stream closed by its client, then every connection: what the service gives back.
    let open_rss = rss_mib(service.id())?;
    for stream in &streams {
        stream.abort();
    }
    for stream in streams {
        let _ = stream.await;
    }
    tokio::time::sleep(CLOSE_SETTLE).await;
    let closed_rss = rss_mib(service.id())?;
    drop((users, watcher));
    tokio::time::sleep(CLOSE_SETTLE).await;
    println!(
        "all {open} streams closed: RSS {open_rss:.1} MiB open, {closed_rss:.1} MiB {} s after the streams closed, {:.1} MiB {} s after their connections closed",
        CLOSE_SETTLE.as_secs(),
        rss_mib(service.id())?,
        CLOSE_SETTLE.as_secs(),
    );

    let violations = ledger::audit::run(&stack.db, Duration::from_secs(3600)).await?;
    let (out_of_order, ended) = (
        OUT_OF_ORDER.load(Ordering::Relaxed),
        ENDED.load(Ordering::Relaxed),
    );
    println!(
        "checks: {out_of_order} updates out of order, {ended} streams ended on their own, {} audit violations",
        violations.len()
    );
    for v in &violations {
        println!("  {v}");
    }
    stack.shutdown.cancel();
    anyhow::ensure!(
        out_of_order == 0 && ended == 0 && violations.is_empty(),
        "an invariant was broken"
    );
    Ok(())
}
