//! Readers cannot starve the allocator (issue 17): the allocator has a pool of its own, and
//! the database out of reach (a pool acquire timeout, an outage) sends a request back without
//! spending an attempt, while real failed attempts still count.

use std::time::Duration;

use entity::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{deliveries::*, support::*};

/// Holds `n` connections of `pool` until the transactions are dropped, as readers in the
/// middle of long queries would.
async fn hold_connections(pool: &DatabaseConnection, n: usize) -> Vec<DatabaseTransaction> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.begin().await.expect("a connection of the pool"));
    }
    held
}

/// Waits until the database lets the allocation run again after `lock` kept it waiting on
/// the deal, and checks that exactly that one lock timeout was counted as an attempt.
async fn lock_timeout_counted(stack: &Stack, id: &str, lock: DatabaseTransaction) {
    let retried = row_until(stack, id, "a lock timeout counted", |row| {
        row.allocation_attempts > 0
    })
    .await;
    lock.rollback().await.expect("release the deal");
    assert_eq!(
        (retried.allocation_status, retried.allocation_attempts),
        (AllocationStatus::Pending, 1),
        "{retried:?}"
    );
}

/// Waits for the investment to finish, and checks that it COMPLETED with the lock timeout as
/// its one counted attempt.
async fn completed_after_the_lock_timeout(stack: &Stack, id: &str) {
    let done = finished(stack, id).await;
    assert_eq!(
        (done.allocation_status, done.allocation_attempts),
        (AllocationStatus::Completed, 1),
        "only the lock timeout counted: {done:?}"
    );
}

/// The investment's row once it is COMPLETED or FAILED.
async fn finished(stack: &Stack, id: &str) -> investment::Model {
    row_until(stack, id, "the investment to finish", |row| {
        row.allocation_status.is_terminal()
    })
    .await
}

/// Waits until the investment's row satisfies `done`.
async fn row_until(
    stack: &Stack,
    id: &str,
    what: &str,
    done: impl Fn(&investment::Model) -> bool,
) -> investment::Model {
    testkit::eventually(Duration::from_secs(30), what, || async {
        let row = stack.investment(id).await;
        done(&row).then_some(row)
    })
    .await
}

#[tokio::test]
async fn readers_and_watchers_holding_all_their_connections_do_not_stop_allocation() {
    let stack = stack_with(Options {
        extra_args: vec!["--database-acquire-timeout=500ms".into()],
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let pools = &stack.pools[0];
    // The default sizes within DATABASE_MAX_CONNECTIONS 20: read 5, watch 5.
    let _readers = hold_connections(&pools.read, 5).await;
    let _watchers = hold_connections(&pools.watch, 5).await;
    let refused = stack
        .admin()
        .await
        .get_queue_stats(api::v1::GetQueueStatsRequest {})
        .await
        .expect_err("the read pool is exhausted");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    let created = stack.create(&investor, 5).await;
    let done = row_until(&stack, &created.id, "the investment to complete", |row| {
        row.allocation_status == AllocationStatus::Completed
    })
    .await;
    assert_eq!(done.allocation_attempts, 0);
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn an_allocator_pool_timeout_sends_the_request_back_without_counting_an_attempt() {
    let stack = stack_with(Options {
        max_attempts: 2,
        backoff: vec![ms(100)],
        lock_timeout: ms(300),
        extra_args: vec![
            "--database-allocator-connections=1".into(),
            "--database-acquire-timeout=300ms".into(),
        ],
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    // The allocator's only connection, held: every allocation times out waiting for it.
    let held = stack.pools[0].allocator.begin().await.expect("held");
    let created = stack.create(&investor, 5).await;
    delivered_at_least(&stack, 3).await;
    let waiting = stack.investment(&created.id).await;
    assert_eq!(
        (waiting.allocation_status, waiting.allocation_attempts),
        (AllocationStatus::Pending, 0),
        "pool timeouts are not attempts"
    );

    // A real failed attempt next (the deal row locked) counts one, not the deliveries.
    let lock = hold(&stack, &investor, Hold::Deal).await;
    held.rollback().await.expect("release the pool");
    lock_timeout_counted(&stack, &created.id, lock).await;

    completed_after_the_lock_timeout(&stack, &created.id).await;
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn a_database_outage_longer_than_max_attempts_deliveries_does_not_fail_an_investment() {
    let stack = stack_with(Options {
        max_attempts: 2,
        backoff: vec![ms(100)],
        lock_timeout: secs(3),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    // The allocation waits on the deal row the test holds, so the outage cuts it mid-attempt;
    // the holding session is spared and keeps the lock through the outage.
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let created = stack.create(&investor, 5).await;
    stack.test_db.lock_waiter().await;
    let spare = backend_pid(&lock).await;
    let before = deliveries(&stack).await;
    stack.test_db.set_reachable(false, Some(spare)).await;
    delivered_at_least(&stack, before + 3).await;
    stack.test_db.set_reachable(true, None).await;

    // The database back, the lock still held: that attempt counts, the outage's did not.
    lock_timeout_counted(&stack, &created.id, lock).await;
    completed_after_the_lock_timeout(&stack, &created.id).await;
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn a_lock_timeout_still_counts_and_fails_the_investment_after_max_attempts() {
    let stack = stack_with(Options {
        max_attempts: 2,
        backoff: vec![ms(50)],
        lock_timeout: ms(200),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let created = stack.create(&investor, 5).await;
    let failed = finished(&stack, &created.id).await;
    lock.rollback().await.expect("release the deal");
    assert_eq!(failed.allocation_status, AllocationStatus::Failed);
    assert_eq!(failed.allocation_attempts, 2);
    let error = failed.allocation_error.clone().unwrap_or_default();
    assert!(
        error.starts_with("permanent failure after 2 attempts: ") && error.contains("lock"),
        "{error}"
    );
    check_invariants(&stack.db).await;
}

/// The before/after figure of issue 17: allocations while readers keep every connection of
/// the read and watch pools busy, with one pool for everything (the old layout) and with the
/// separate pools. A measurement, not a check:
/// `cargo test -p allocation-svc --test it -- --ignored --nocapture pools::measure`
/// (with the old attempt rule, `git show 2678d06:allocation-svc/src/retry.rs` with
/// `record_failure` renamed `on_fault`, the one-pool run fails investments).
#[tokio::test]
#[ignore = "a measurement: run it with --ignored --nocapture"]
async fn measure_allocations_while_readers_saturate_the_pools() {
    println!(
        "{READERS} readers looping on {READ_SECONDS} s queries, {INVESTMENTS} investments over {DEALS} pools, acquire timeout 1s, MAX_ATTEMPTS 3"
    );
    for shared in [true, false] {
        let layout = if shared {
            "one pool of 20 (the old layout)"
        } else {
            "allocator 10 / read 5 / watch 5 (now)"
        };
        let run = saturated_run(shared).await;
        println!(
            "{layout:<40} all terminal after {:>6.1} s, {:>4} requests sent back, {:>3} completed, {:>3} failed, attempts charged {}",
            run.seconds, run.sent_back, run.completed, run.failed, run.attempts
        );
    }
}

const READERS: usize = 300;
const READ_SECONDS: f64 = 0.2;
const INVESTMENTS: usize = 100;
const DEALS: usize = 4;

struct Run {
    seconds: f64,
    sent_back: u64,
    completed: usize,
    failed: usize,
    attempts: i32,
}

async fn saturated_run(shared: bool) -> Run {
    use sea_orm::ConnectionTrait;

    let mut stack = stack_with(Options {
        replicas: 0,
        extra_args: vec!["--database-acquire-timeout=1s".into()],
        ..Options::default()
    })
    .await;
    let config = stack.replica_config(true);
    let pools = if shared {
        let db = stack.replica_db(&config);
        allocation_svc::Pools::shared(service_kit::db::connect(&db).await.expect("pool"))
    } else {
        stack.open_pools(&config).await
    };
    stack.add_replica_on(true, pools.clone()).await;
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..READERS {
        let pool = if i % 2 == 0 {
            pools.read.clone()
        } else {
            pools.watch.clone()
        };
        readers.spawn(async move {
            loop {
                // A timed-out acquire is a reader turned away; it tries again.
                let _ = pool
                    .execute_unprepared(&format!("SELECT pg_sleep({READ_SECONDS})"))
                    .await;
            }
        });
    }
    let mut investors = Vec::new();
    for _ in 0..DEALS {
        investors.push(stack.investor("1200000.00", "1.00", &[100_000]).await);
    }
    let started = tokio::time::Instant::now();
    futures::future::join_all((0..INVESTMENTS).map(|i| stack.create(&investors[i % DEALS], 1)))
        .await;
    let all = stack.all_terminal(Duration::from_secs(600)).await;
    let seconds = started.elapsed().as_secs_f64();
    readers.abort_all();
    let count = |status| all.iter().filter(|i| i.allocation_status == status).count();
    Run {
        seconds,
        sent_back: deliveries(&stack).await.saturating_sub(INVESTMENTS as u64),
        completed: count(AllocationStatus::Completed),
        failed: count(AllocationStatus::Failed),
        attempts: all.iter().map(|i| i.allocation_attempts).sum(),
    }
}
