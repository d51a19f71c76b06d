//! Faults with real processes and real outages (issue "Prove the guarantees"): each test ends
//! with every investment terminal and the audit clean.

use std::time::Duration;

use entity::prelude::*;
use futures::future::join_all;
use sea_orm::EntityTrait;

use crate::{deliveries::*, support::*};

#[tokio::test]
async fn allocator_killed_mid_load_then_restarted_loses_nothing_and_allocates_nothing_twice() {
    let mut stack = stack_with(Options {
        replicas: 0,
        ack_wait: secs(2),
        micro_batch: 4,
        ..Options::default()
    })
    .await;
    let mut investors = Vec::new();
    for _ in 0..3 {
        investors.push(stack.investor("120000.00", "1.00", &[40, 40, 40]).await);
    }
    let process = stack.spawn_process().await;

    // Creates keep arriving while the allocator is killed with SIGKILL.
    let first: Vec<_> =
        join_all((0..60).map(|i| stack.create(&investors[i % 3], (i % 4) as i64 + 1))).await;
    process.signal("KILL");
    drop(process);
    let second: Vec<_> =
        join_all((0..60).map(|i| stack.create(&investors[i % 3], (i % 4) as i64 + 1))).await;
    stack.add_replica(true).await;

    let all = stack.all_terminal(Duration::from_secs(60)).await;
    assert_eq!(all.len(), first.len() + second.len(), "nothing lost");
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn nats_outage_creates_still_accepted_every_investment_allocated_and_watchers_see_it_all() {
    let mut stack = stack_with(Options::nats_outage()).await;
    let investor = stack.investor("120000.00", "1.00", &[1000]).await;
    stack.create_finished(&investor, 1).await;

    stack.own_nats().stop();
    // Accepted while NATS is down (each waits out its publish timeout, so run them together).
    let during: Vec<_> = join_all((0..10).map(|_| stack.create(&investor, 2))).await;
    assert!(
        during
            .iter()
            .all(|i| i.allocation_status() == api::v1::AllocationStatus::Pending)
    );
    // Watchers connected across the outage.
    let mut watches = Vec::new();
    for investment in &during[..3] {
        watches.push(stack.watch(0, investor.user_id, &investment.id).await);
    }
    stack.own_nats().resume().await;

    for (watch, investment) in watches.into_iter().zip(&during) {
        let updates = collect(watch).await;
        let versions: Vec<_> = updates.iter().map(|u| u.version).collect();
        assert!(
            versions.windows(2).all(|w| w[1] == w[0] + 1),
            "{}: gap in {versions:?}",
            investment.id
        );
        assert_eq!(
            updates.last().expect("terminal").allocation_status(),
            api::v1::AllocationStatus::Completed
        );
    }
    stack.all_completed(Duration::from_secs(60)).await;
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn database_unreachable_during_allocation_retries_then_succeeds() {
    // One attempt in all: the outage spends none of it.
    let stack = stack_with(Options {
        backoff: vec![ms(300)],
        max_attempts: 1,
        lock_timeout: secs(5),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("120000.00", "1.00", &[1000]).await;
    // Allocation waits on the batch rows the test holds locked, so the outage hits it inside
    // its transaction.
    let lock = hold(&stack, &investor, Hold::Batches).await;
    join_all((0..5).map(|_| stack.create(&investor, 3))).await;
    stack.test_db.lock_waiter().await;

    let spare = backend_pid(&lock).await;
    stack.test_db.set_reachable(false, Some(spare)).await;
    lock.rollback().await.expect("release the lock");
    // Without a database, each request comes back after its backoff, uncounted: wait until
    // they have come back twice as often as there are requests (more than MAX_ATTEMPTS each
    // on average, had the outage counted).
    let before = deliveries(&stack).await;
    delivered_at_least(&stack, before + 10).await;
    stack.test_db.set_reachable(true, None).await;

    stack.all_completed(Duration::from_secs(60)).await;
    check_invariants(&stack.db).await;
}

/// SIGTERM while a unit of work is inside its transaction (held there by the test's lock on
/// the pool's batches, and seen waiting): the process stops taking work but finishes that
/// transaction before it exits, within the grace period; the rest is allocated by the next
/// replica.
#[tokio::test]
async fn sigterm_under_load_drains_within_the_grace_period_and_loses_nothing() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let mut stack = stack_with(Options {
        replicas: 0,
        ack_wait: secs(3),
        // Longer than the test holds its lock: the transaction waits instead of retrying.
        lock_timeout: secs(20),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("120000.00", "1.00", &[5000]).await;
    let mut process = stack.spawn_process().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", process.addr()))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel);
    let serving = || {
        let mut health = health.clone();
        async move {
            let answer = health.check(HealthCheckRequest::default()).await;
            answer.is_ok_and(|a| a.into_inner().status() == ServingStatus::Serving)
        }
    };
    assert!(serving().await, "serving before the signal");

    let lock = hold(&stack, &investor, Hold::Batches).await;
    let created: Vec<_> =
        join_all((0..100).map(|i| stack.create(&investor, (i % 3) as i64 + 1))).await;
    // Work in flight: the process's allocation transaction waits on the test's lock.
    stack.test_db.lock_waiter().await;
    process.signal("TERM");
    // It has begun to drain (health no longer SERVING: NOT_SERVING, or the connection gone
    // away) while that transaction is still open.
    testkit::eventually(Duration::from_secs(10), "the drain to begin", || async {
        (!serving().await).then_some(())
    })
    .await;
    let waiting = Investment::find().all(&stack.db).await.expect("rows");
    assert!(
        waiting.iter().all(|i| !i.allocation_status.is_terminal()),
        "nothing allocated before the lock is released"
    );
    lock.rollback().await.expect("release the lock");
    let status = process.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "clean exit: {status:?}");
    // The transaction in flight at the signal was finished, not dropped.
    let drained = Investment::find().all(&stack.db).await.expect("rows");
    let finished = drained
        .iter()
        .filter(|i| i.allocation_status == AllocationStatus::Completed)
        .count();
    assert!(
        finished > 0,
        "the draining process committed its unit of work"
    );

    stack.add_replica(true).await;
    let all = stack.all_completed(Duration::from_secs(60)).await;
    assert_eq!(all.len(), created.len());
    check_invariants(&stack.db).await;
}

/// The unit of work itself, called while PostgreSQL refuses connections: deliveries that find
/// the database out of reach come back without spending an attempt (nothing is remembered in
/// the process, and the delivery count only picks the delay), so the next real failure counts
/// one and the investment still completes.
#[tokio::test]
async fn database_unreachable_spends_no_attempt_and_the_next_real_failure_counts_one() {
    use allocation_svc::worker::{Job, Verdict};

    let stack = stack_with(Options {
        replicas: 0,
        max_attempts: 3,
        ..Options::default()
    })
    .await;
    let investor = stack.investor("120000.00", "1.00", &[100]).await;
    let created = stack.create(&investor, 3).await;
    let mut options = sea_orm::ConnectOptions::new(stack.test_db.url.clone());
    options
        .acquire_timeout(Duration::from_millis(500))
        .sqlx_logging(false);
    let pool = sea_orm::Database::connect(options).await.expect("pool");
    let allocator = stack.allocator_on(pool);
    let delivery = |delivered| Job {
        investment_id: created.id.parse().expect("uuid"),
        delivered,
    };
    let (allocator, deal) = (&allocator, DealId(investor.deal.id));
    let run = |delivered| {
        let job = delivery(delivered);
        async move { allocator.run_batch(deal, &[job]).await }
    };

    // Deliveries 1 to 4, more than MAX_ATTEMPTS, while the database is unreachable: each
    // comes back later, and none is counted.
    stack.test_db.set_reachable(false, None).await;
    for delivered in 1..=4 {
        let verdicts = run(delivered).await;
        assert!(
            matches!(verdicts[..], [Verdict::Retry(_)]),
            "delivery {delivered}: {verdicts:?}"
        );
    }
    stack.test_db.set_reachable(true, None).await;
    let waiting = stack.investment(&created.id).await;
    assert_eq!(
        (waiting.allocation_status, waiting.allocation_attempts),
        (AllocationStatus::Pending, 0)
    );

    // Delivery 5, the database back but the pool's deal locked: a real failure, counted once.
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let verdicts = run(5).await;
    drop(lock);
    assert!(matches!(verdicts[..], [Verdict::Retry(_)]), "{verdicts:?}");
    let retried = stack.investment(&created.id).await;
    assert_eq!(
        (retried.allocation_status, retried.allocation_attempts),
        (AllocationStatus::Pending, 1),
        "{retried:?}"
    );
    assert!(
        retried
            .allocation_error
            .as_deref()
            .is_some_and(|e| e.contains("lock")),
        "{retried:?}"
    );

    // Delivery 6 allocates it.
    assert_eq!(run(6).await, [Verdict::Ack]);
    let done = stack.investment(&created.id).await;
    assert_eq!(
        (done.allocation_status, done.allocation_attempts),
        (AllocationStatus::Completed, 1)
    );
    let batch = BulkPurchase::find_by_id(investor.batches[0].id)
        .one(&stack.db)
        .await
        .expect("q")
        .expect("batch");
    assert_eq!(batch.units_remaining, 97);
    check_invariants(&stack.db).await;
}
