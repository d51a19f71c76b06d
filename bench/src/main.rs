//! `bench`: the figures quoted in BENCHMARKS.md (the watch figures: `watchers`), measured on this machine with both services
//! in process (so client and servers share its cores), a fresh database and real NATS.
//! Run it with `scripts/bench`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use api::v1 as pb;
use bench::{Stack, histogram, micros, report, request, rss_mib};
use clap::Parser;
use entity::prelude::*;
use futures::{StreamExt, future::join_all};
use hdrhistogram::Histogram;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Measures the invest services on this machine.")]
struct Args {
    /// Sequential creates timed one by one.
    #[arg(long, default_value_t = 200)]
    creates: usize,
    /// Concurrent clients in the load round (the old system: 100 users, 8.5 s per request).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Creates each concurrent client makes.
    #[arg(long, default_value_t = 10)]
    per_client: usize,
    /// Investments timed from create to COMPLETED, one at a time.
    #[arg(long, default_value_t = 100)]
    end_to_end: usize,
    /// Requests queued before one allocator is started, to measure its throughput.
    #[arg(long, default_value_t = 4000)]
    backlog: usize,
    /// Pools the backlog is spread over.
    #[arg(long, default_value_t = 4)]
    pools: usize,
    /// Streams one client asks for in the flood round.
    #[arg(long, default_value_t = 20_000)]
    flood: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start(false)
        .await
        .context("starting the stack (run with scripts/bench)")?;
    println!(
        "bench: {} cores, investment-svc and allocation-svc in process\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Allocator throughput: queue a backlog with no allocator running, then start one.
    let (user, subscription, deals) = stack.investor(args.pools, 1_000_000).await?;
    let client = stack.investments(user).await?;
    let per_task = args.backlog.div_ceil(args.concurrency);
    join_all((0..args.concurrency).map(|t| {
        let mut client = client.clone();
        let deals = deals.clone();
        async move {
            for i in 0..per_task {
                let deal = deals[(t + i) % deals.len()];
                let _ = client.create_investment(request(subscription, deal)).await;
            }
        }
    }))
    .await;
    let queued = Investment::find().count(&stack.db).await?;
    let started = Instant::now();
    let allocation_addr = stack.start_allocator().await?;
    loop {
        let open = Investment::find()
            .filter(
                investment::Column::AllocationStatus
                    .is_in([AllocationStatus::Pending, AllocationStatus::Processing]),
            )
            .count(&stack.db)
            .await?;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "{:<56} {queued} allocations over {} pools in {:.2} s = {:.0} allocations/s",
        "allocator throughput (one instance, backlog)",
        args.pools,
        elapsed.as_secs_f64(),
        queued as f64 / elapsed.as_secs_f64()
    );

    // 2. Create latency, one at a time (allocator running).
    let (user, subscription, deals) = stack.investor(1, 1_000_000).await?;
    let mut client = stack.investments(user).await?;
    let mut h = histogram();
    for _ in 0..args.creates {
        let t = Instant::now();
        client
            .create_investment(request(subscription, deals[0]))
            .await?;
        h.record(micros(t.elapsed()))?;
    }
    report("CreateInvestment, sequential", &h);

    // 3. Create under load: N concurrent clients, as the old system's 100 users.
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        let (user, subscription, deals) = stack.investor(1, 1_000_000).await?;
        clients.push((stack.investments(user).await?, subscription, deals[0]));
    }
    let started = Instant::now();
    let results = join_all(clients.into_iter().map(
        |(mut client, subscription, deal)| async move {
            let mut h = histogram();
            let mut failed = 0;
            for _ in 0..args.per_client {
                let t = Instant::now();
                match client.create_investment(request(subscription, deal)).await {
                    Ok(_) => h.record(micros(t.elapsed())).map_err(anyhow::Error::from)?,
                    Err(_) => failed += 1,
                }
            }
            anyhow::Ok((h, failed))
        },
    ))
    .await;
    let wall = started.elapsed();
    let mut h = histogram();
    let mut failed = 0;
    for result in results {
        let (part, f) = result?;
        h.add(part)?;
        failed += f;
    }
    report(
        &format!("CreateInvestment, {} concurrent clients", args.concurrency),
        &h,
    );
    println!(
        "{:<56} {:.0} creates/s, {failed} failed of {}",
        "",
        h.len() as f64 / wall.as_secs_f64(),
        args.concurrency * args.per_client
    );

    // 4. Balances of a user with 100 subscriptions, each with payments and allocations.
    let user = Uuid::new_v4();
    let plan = stack.fixtures.plan("100.00", None).await?;
    for _ in 0..100 {
        let sub = stack
            .fixtures
            .subscription(user, plan.id, None, SubscriptionStatus::Active)
            .await?;
        for _ in 0..3 {
            stack
                .fixtures
                .payment(&sub, "100.00", PaymentStatus::Paid)
                .await?;
        }
    }
    let mut client = stack.investments(user).await?;
    // Once before the tables' statistics exist (a freshly loaded database), once after
    // ANALYZE (what autovacuum provides in production).
    for (label, analyze) in [("fresh statistics", false), ("after ANALYZE", true)] {
        if analyze {
            stack.db.execute_unprepared("ANALYZE").await?;
        }
        let mut h = histogram();
        for _ in 0..50 {
            let t = Instant::now();
            let page = client
                .list_subscription_balances(pb::ListSubscriptionBalancesRequest {
                    page_size: 100,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            h.record(micros(t.elapsed()))?;
            anyhow::ensure!(page.balances.len() == 100, "expected 100 balances");
        }
        report(&format!("ListSubscriptionBalances, 100 subs, {label}"), &h);
    }

    // 5. End to end: create, then watch until COMPLETED.
    let (user, subscription, deals) = stack.investor(1, 1_000_000).await?;
    let mut investments = stack.investments(user).await?;
    let mut allocations = bench::allocations(allocation_addr, user).await?;
    let mut h = histogram();
    for _ in 0..args.end_to_end {
        let t = Instant::now();
        let created = investments
            .create_investment(request(subscription, deals[0]))
            .await?
            .into_inner()
            .investment
            .context("investment")?;
        let mut watch = allocations
            .watch_allocation(pb::WatchAllocationRequest {
                investment_id: created.id,
            })
            .await?
            .into_inner();
        let mut completed = false;
        while let Some(update) = watch.next().await {
            if update?
                .update
                .is_some_and(|u| u.allocation_status() == pb::AllocationStatus::Completed)
            {
                completed = true;
            }
        }
        anyhow::ensure!(completed, "an investment did not complete");
        h.record(micros(t.elapsed()))?;
    }
    report("create -> COMPLETED (watched), sequential", &h);
    stack.shutdown.cancel();

    // 6. Creates while NATS is down (a private nats-server, stopped): they commit and answer
    //    without waiting for the publish timeout; the sweeper publishes them later. The same
    //    creates with NATS up, in the same run, are the reference.
    let mut stack = Stack::start(true).await?;
    let (user, subscription, deals) = stack.investor(1, 1_000_000).await?;
    let mut client = stack.investments(user).await?;
    let mut timed = async |label: &str| -> anyhow::Result<Histogram<u64>> {
        let mut h = histogram();
        for _ in 0..args.creates {
            let t = Instant::now();
            client
                .create_investment(request(subscription, deals[0]))
                .await?;
            h.record(micros(t.elapsed()))?;
        }
        report(label, &h);
        Ok(h)
    };
    let up = timed("CreateInvestment, sequential, NATS up").await?;
    stack
        .infra
        .nats_server
        .as_mut()
        .context("a private nats-server")?
        .stop();
    while stack.nats.connection_state() == async_nats::connection::State::Connected {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let down = timed("CreateInvestment, sequential, NATS down").await?;
    println!(
        "{:<56} p50 {:.2}x, p99 {:.2}x of NATS up (NATS_TIMEOUT is {} ms)",
        "",
        down.value_at_quantile(0.5) as f64 / up.value_at_quantile(0.5) as f64,
        down.value_at_quantile(0.99) as f64 / up.value_at_quantile(0.99) as f64,
        1000
    );
    stack.shutdown.cancel();
    drop(stack);

    // 7. A stream flood on allocation-svc, in its own process so that its RSS is its own: one
    //    client opens `flood` WatchAllocations streams on one connection and reads none.
    let stack = Stack::start(false).await?;
    let (user, subscription, deals) = stack.investor(1, 1_000_000).await?;
    let mut client = stack.investments(user).await?;
    for _ in 0..20 {
        client
            .create_investment(request(subscription, deals[0]))
            .await?;
    }
    let service = stack.spawn_allocation_svc().await?;
    let before = rss_mib(service.id())?;
    let watcher = bench::allocations(service.addr(), user).await?;
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let streams: Vec<_> = (0..args.flood)
        .map(|_| {
            let mut watcher = watcher.clone();
            let opened = std::sync::Arc::clone(&opened);
            tokio::spawn(async move {
                let stream = watcher
                    .watch_allocations(pb::WatchAllocationsRequest::default())
                    .await;
                opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Held open, never read.
                std::future::pending::<()>().await;
                drop(stream);
            })
        })
        .collect();
    // Wait until the server holds all it admits (its stream cap), then a little longer.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = opened.load(std::sync::atomic::Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let during = rss_mib(service.id())?;
    for stream in &streams {
        stream.abort();
    }
    drop(watcher);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mib(service.id())?;
    println!(
        "{:<56} {} streams asked on one connection, {last} open at once: RSS {before:.1} -> {during:.1} MiB, {after:.1} MiB after they closed",
        "allocation-svc under a stream flood (unread)", args.flood,
    );
    stack.shutdown.cancel();
    Ok(())
}
