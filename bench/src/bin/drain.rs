//! `drain`: how fast one allocator drains a backlog, against the batched limit, and what each
//! create and each allocation costs PostgreSQL (BENCHMARKS.md, "Allocation").
//!
//! investment-svc and allocation-svc run in process on a fresh database and NATS. In one run:
//! - **the batched limit**: 4 connections (and, for a single hot pool, whose micro-batches run
//!   one at a time by design, 1 connection), each on a pool (deal) of its own, run the
//!   allocation-shaped SQL directly, as pgbench would: per transaction 32 pending investments
//!   of one pool are locked (deal first), take units from the pool's batch, get their
//!   `user_investments` rows, move to `completed` with both events logged;
//! - for each pool count (`--pools`, default 1 then 4): a backlog of `--backlog` creates from
//!   100 clients with no allocator running (the creates' cost), then one allocator started
//!   and timed until nothing is pending (the allocations' cost).
//!
//! Costs per investment: CPU of the PostgreSQL processes of the bench's database (backends and
//! autovacuum by `pg_stat_activity`, plus the WAL writer, background writer and checkpointer),
//! WAL bytes (`pg_stat_wal`, server-wide) and statements (each pool's own counter; BEGIN and
//! COMMIT not counted), and how many of the `investments` row updates were HOT. With
//! `--hot-variant`, every pool count again without the indexes that stop a status change from
//! being HOT. Ends with the audit; exits 1 on any violation.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench::{PgSample, Stack, count, cpu_of, cpu_seconds, hot::Updates, request, unfinished};
use chrono::Utc;
use clap::Parser;
use futures::future::join_all;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Backlog drain against the batched limit; PostgreSQL's cost per investment.")]
struct Args {
    /// Requests queued before the allocator starts, in each case.
    #[arg(long, default_value_t = 4000)]
    backlog: usize,
    /// Pool counts to drain the backlog over (1: one hot pool).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pools: Vec<usize>,
    /// Clients creating the backlog.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Transactions of 32 each reference connection runs.
    #[arg(long, default_value_t = 40)]
    reference_batches: usize,
    /// Run each pool count a second time without the indexes that name `allocation_status`
    /// and with `fillfactor = 90`, so a status change can be a HOT update: what the indexes
    /// that keep reads fast cost each allocation.
    #[arg(long)]
    hot_variant: bool,
}

/// Requests per transaction in the reference: the allocator's `MICRO_BATCH`.
const BATCH: usize = 32;
/// Connections of the reference, as pgbench's clients.
const CONNECTIONS: usize = 4;

const LOCK_DEAL: &str = "SELECT id FROM deals WHERE id = $1 FOR NO KEY UPDATE";
const LOCK_INVESTMENTS: &str =
    "SELECT id FROM investments WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE";
const LOCK_BATCHES: &str = "SELECT id FROM bulk_purchases WHERE deal_id = $1 \
     AND units_remaining > 0 ORDER BY purchased_at, id FOR NO KEY UPDATE";
const TAKE_UNITS: &str = "UPDATE bulk_purchases SET units_remaining = units_remaining - $2 \
     WHERE id = $1";
const INSERT_ALLOCATIONS: &str = "INSERT INTO user_investments (id, user_id, subscription_id, \
     investment_id, deal_id, bulk_purchase_id, units_allocated, value_allocated) \
     SELECT gen_random_uuid(), user_id, subscription_id, id, deal_id, $2, shares, total_amount \
     FROM investments WHERE id = ANY($1::uuid[])";
const COMPLETE: &str = "WITH upd AS (UPDATE investments SET allocation_status = 'completed', \
     status = 'active', status_version = status_version + 2, allocated_at = now(), \
     updated_at = now() WHERE id = ANY($1::uuid[]) RETURNING *) \
     INSERT INTO allocation_events (investment_id, version, user_id, deal_id, \
     allocation_status, attempt) \
     SELECT id, status_version - 1, user_id, deal_id, 'processing', allocation_attempts FROM upd \
     UNION ALL SELECT id, status_version, user_id, deal_id, allocation_status, \
     allocation_attempts FROM upd";

fn statement(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// One reference connection's pool: a deal with one batch, a subscription, and `n` pending
/// investments of one share (logged at version 1, as a create logs them).
async fn reference_pool(stack: &Stack, n: usize) -> anyhow::Result<(Uuid, Uuid, Vec<Uuid>)> {
    let (user, subscription, deals) = stack.investor(1, 1_000_000_000).await?;
    let deal = deals[0];
    let batch: Uuid = stack
        .db
        .query_one_raw(statement(
            "SELECT id FROM bulk_purchases WHERE deal_id = $1 ORDER BY purchased_at LIMIT 1",
            vec![deal.into()],
        ))
        .await?
        .context("batch")?
        .try_get("", "id")?;
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    stack
        .db
        .execute_raw(statement(
            "WITH i AS (INSERT INTO investments (id, user_id, subscription_id, deal_id, shares, \
             price_per_share, total_amount) \
             SELECT id, $2, $3, $4, 1, 1.00, 1.00 FROM unnest($1::uuid[]) AS t(id) RETURNING *) \
             INSERT INTO allocation_events (investment_id, version, user_id, deal_id, \
             allocation_status, attempt) \
             SELECT id, 1, user_id, deal_id, allocation_status, 0 FROM i",
            vec![
                ids.clone().into(),
                user.into(),
                subscription.into(),
                deal.into(),
            ],
        ))
        .await?;
    Ok((deal, batch, ids))
}

/// The batched limit: allocations per second of the allocation-shaped SQL on `connections`
/// connections, each on a pool of its own.
async fn reference(stack: &Stack, batches: usize, connections: usize) -> anyhow::Result<f64> {
    let mut pools = Vec::new();
    for _ in 0..connections {
        pools.push(reference_pool(stack, batches * BATCH).await?);
    }
    let db = stack.test_db.connect().await;
    let before = PgSample::take(&stack.db).await?;
    let started = Instant::now();
    let done = join_all(pools.into_iter().map(|(deal, batch, ids)| {
        let db = db.clone();
        async move {
            for chunk in ids.chunks(BATCH) {
                let txn = db.begin().await?;
                txn.query_one_raw(statement(LOCK_DEAL, vec![deal.into()]))
                    .await?;
                txn.query_all_raw(statement(LOCK_INVESTMENTS, vec![chunk.to_vec().into()]))
                    .await?;
                txn.query_all_raw(statement(LOCK_BATCHES, vec![deal.into()]))
                    .await?;
                let units = i64::try_from(chunk.len())?;
                txn.execute_raw(statement(TAKE_UNITS, vec![batch.into(), units.into()]))
                    .await?;
                txn.execute_raw(statement(
                    INSERT_ALLOCATIONS,
                    vec![chunk.to_vec().into(), batch.into()],
                ))
                .await?;
                txn.execute_raw(statement(COMPLETE, vec![chunk.to_vec().into()]))
                    .await?;
                txn.commit().await?;
            }
            anyhow::Ok(ids.len())
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let cost = PgSample::take(&stack.db).await?.since(&before);
    let mut allocated = 0;
    for part in done {
        allocated += part?;
    }
    let rate = allocated as f64 / elapsed.as_secs_f64();
    println!(
        "{:<44} {allocated} in {:.2} s = {rate:.0} allocations/s; {} per allocation; 6 statements per {BATCH}",
        format!("batched limit ({connections} connection(s), {BATCH} per txn)"),
        elapsed.as_secs_f64(),
        cost.per(allocated)
    );
    Ok(rate)
}

/// Queues `backlog` creates over `pools` pools with no allocator running, then drains them
/// with one; returns the drain's allocations per second.
async fn drain(stack: &Stack, args: &Args, pools: usize, limits: Limits) -> anyhow::Result<()> {
    let (_, _, deals) = stack.investor(pools, 1_000_000_000).await?;
    let per_client = args.backlog.div_ceil(args.clients);
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (user, subscription, _) = stack.investor(0, 0).await?;
        clients.push((stack.investments(user).await?, subscription));
    }
    let updates = Updates::settled(&stack.db).await?;
    let (before, statements) = (
        PgSample::take(&stack.db).await?,
        count(&stack.create_statements),
    );
    let started = Instant::now();
    let created = join_all(clients.into_iter().enumerate().map(
        |(c, (mut client, subscription))| {
            let deals = deals.clone();
            async move {
                let mut ok = 0;
                for i in 0..per_client {
                    let deal = deals[(c + i) % deals.len()];
                    if client
                        .create_investment(request(subscription, deal))
                        .await
                        .is_ok()
                    {
                        ok += 1;
                    }
                }
                ok
            }
        },
    ))
    .await
    .into_iter()
    .sum::<usize>();
    let elapsed = started.elapsed();
    let cost = PgSample::take(&stack.db).await?.since(&before);
    let sent = count(&stack.create_statements) - statements;
    println!(
        "{:<44} {created} in {:.2} s = {:.0} creates/s; {} per create; {:.2} statements per create",
        format!(
            "creates, {pools} pool(s), {} clients{}",
            args.clients, limits.variant
        ),
        elapsed.as_secs_f64(),
        created as f64 / elapsed.as_secs_f64(),
        cost.per(created),
        sent as f64 / created.max(1) as f64
    );

    let queued = unfinished(&stack.db).await?;
    let updates_created = Updates::settled(&stack.db).await?;
    let stop = CancellationToken::new();
    let own_before = (cpu_seconds(std::process::id())?, cpu_of("nats-server"));
    let before = PgSample::take(&stack.db).await?;
    let started = Instant::now();
    let (statements, running) = stack.start_counted_allocator(stop.clone()).await?;
    while unfinished(&stack.db).await? > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the allocator did not drain the backlog"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cost = PgSample::take(&stack.db).await?.since(&before);
    let own = (
        cpu_seconds(std::process::id())? - own_before.0,
        cpu_of("nats-server") - own_before.1,
    );
    let sent = count(&statements);
    stop.cancel();
    running.await??;
    let updates_allocated = Updates::settled(&stack.db).await?;
    let n = usize::try_from(queued)?;
    let rate = n as f64 / elapsed.as_secs_f64();
    let limit = limits.all;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "{:<44} {n} in {:.2} s = {rate:.0} allocations/s = {:.3}x the batched limit (target 0.5: {}); {} per allocation (target 200 µs: {}); {:.2} statements per allocation",
        format!("drain, {pools} pool(s), one allocator{}", limits.variant),
        elapsed.as_secs_f64(),
        rate / limit,
        verdict(rate / limit >= 0.5),
        cost.per(n),
        verdict(cost.cpu_micros_per(n) <= 200.0),
        sent as f64 / n.max(1) as f64
    );
    println!(
        "{:<44} CPU µs per allocation: this process (allocator, bench, investment-svc idle) {:.0}, nats-server {:.0}",
        "",
        own.0 * 1e6 / n.max(1) as f64,
        own.1 * 1e6 / n.max(1) as f64
    );
    println!(
        "{:<44} investments: creates {}; allocation {}; {:.3}x one connection's batched limit",
        "",
        updates_created.describe_since(&updates, created),
        updates_allocated.describe_since(&updates_created, n),
        rate / limits.one
    );
    Ok(())
}

/// The references a drain is judged against, measured in the same run.
#[derive(Clone, Copy)]
struct Limits {
    /// The batched limit: [`CONNECTIONS`] pools in parallel.
    all: f64,
    /// One connection: what a single pool can reach, since a pool's allocations run one
    /// micro-batch at a time by design (DESIGN.md: serialized per pool).
    one: f64,
    /// A label for the index variant.
    variant: &'static str,
}

/// Drops the indexes whose key or predicate names `allocation_status` and leaves room on each
/// page, so that a status change can be a heap-only update (the bench's variant only: reads by
/// status and the reserved sums lose their indexes).
async fn without_status_indexes(stack: &Stack) -> anyhow::Result<()> {
    stack
        .db
        .execute_unprepared(
            "DROP INDEX investments_allocation_status_idx, investments_reserved_idx, \
             investments_deal_reserved_idx; ALTER TABLE investments SET (fillfactor = 90)",
        )
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stack = Stack::start(false)
        .await
        .context("starting the stack (run with scripts/bench)")?;
    println!(
        "# drain: {} cores, investment-svc and allocation-svc in process, {} requests per backlog, {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.backlog,
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let one = reference(&stack, args.reference_batches, 1).await?;
    let all = reference(&stack, args.reference_batches, CONNECTIONS).await?;
    let mut limits = Limits {
        all,
        one,
        variant: "",
    };
    for &pools in &args.pools {
        drain(&stack, &args, pools, limits).await?;
    }
    if args.hot_variant {
        without_status_indexes(&stack).await?;
        limits.variant = ", no status indexes";
        for &pools in &args.pools {
            drain(&stack, &args, pools, limits).await?;
        }
    }
    stack.shutdown.cancel();

    let violations = ledger::audit::run(&stack.db, Duration::from_secs(3600)).await?;
    println!("audit: {} violations", violations.len());
    for v in &violations {
        println!("  {v}");
    }
    anyhow::ensure!(violations.is_empty(), "the audit found violations");
    Ok(())
}
