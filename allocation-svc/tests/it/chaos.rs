//! Faults with real processes and real outages (issue "Prove the guarantees"): each test ends
//! with every investment terminal and the audit clean.

use std::time::Duration;

use entity::prelude::*;
use futures::future::join_all;
use sea_orm::{ConnectionTrait, EntityTrait};

use crate::support::*;

/// The server process id behind a transaction's connection.
async fn backend_pid(txn: &sea_orm::DatabaseTransaction) -> i32 {
    let row = txn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .expect("pid")
        .expect("a row");
    row.try_get("", "pid").expect("pid column")
}

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
    let mut stack = stack_with(Options {
        own_nats_server: true,
        sweeper: (ms(200), secs(1)),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("120000.00", "1.00", &[1000]).await;
    let before = stack.create(&investor, 1).await;
    collect(stack.watch(0, investor.user_id, &before.id).await).await;

    stack.nats_server.as_mut().expect("own server").stop();
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
    stack
        .nats_server
        .as_mut()
        .expect("own server")
        .resume()
        .await;

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
    let all = stack.all_terminal(Duration::from_secs(60)).await;
    assert!(
        all.iter()
            .all(|i| i.allocation_status == AllocationStatus::Completed)
    );
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn database_unreachable_during_allocation_retries_then_succeeds() {
    // A budget the outage does not exhaust (the next test spends it).
    let stack = stack_with(Options {
        backoff: vec![ms(300)],
        max_attempts: 100,
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
    // A few seconds without a database: attempts fail and come back after their backoff.
    let outage = tokio::time::Instant::now() + Duration::from_secs(3);
    testkit::eventually(Duration::from_secs(10), "the outage to last", || async {
        (tokio::time::Instant::now() >= outage).then_some(())
    })
    .await;
    stack.test_db.set_reachable(true, None).await;

    let all = stack.all_terminal(Duration::from_secs(60)).await;
    assert!(
        all.iter()
            .all(|i| i.allocation_status == AllocationStatus::Completed),
        "{all:#?}"
    );
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn sigterm_under_load_drains_within_the_grace_period_and_loses_nothing() {
    let mut stack = stack_with(Options {
        replicas: 0,
        ack_wait: secs(3),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("120000.00", "1.00", &[5000]).await;
    let mut process = stack.spawn_process().await;

    let creating = join_all((0..100).map(|i| stack.create(&investor, (i % 3) as i64 + 1)));
    let (created, status) = tokio::join!(creating, async {
        tokio::task::yield_now().await;
        process.signal("TERM");
        process.wait(Duration::from_secs(15)).await
    });
    assert!(status.success(), "clean exit: {status:?}");

    stack.add_replica(true).await;
    let all = stack.all_terminal(Duration::from_secs(60)).await;
    assert_eq!(all.len(), created.len());
    assert!(
        all.iter()
            .all(|i| i.allocation_status == AllocationStatus::Completed)
    );
    check_invariants(&stack.db).await;
}

/// The unit of work itself, called while PostgreSQL refuses connections: attempts that cannot
/// be recorded are counted by NATS's delivery count (nothing is remembered in the process), so
/// they spend the budget as soon as a failure can be written.
#[tokio::test]
async fn database_unreachable_spends_the_retry_budget_by_delivery_count_and_inventory_is_untouched()
{
    use allocation_svc::worker::{Allocator, Job, Verdict};

    let stack = stack_with(Options {
        replicas: 0,
        max_attempts: 3,
        ..Options::default()
    })
    .await;
    let investor = stack.investor("120000.00", "1.00", &[100]).await;
    let created = stack.create(&investor, 3).await;
    let config = stack.replica_config(true);
    let mut options = sea_orm::ConnectOptions::new(stack.test_db.url.clone());
    options
        .acquire_timeout(Duration::from_millis(500))
        .sqlx_logging(false);
    let pool = sea_orm::Database::connect(options).await.expect("pool");
    let topology = service_kit::messaging::Topology::from_args(&config.common.nats);
    let allocator = Allocator::new(pool, stack.nats.clone(), topology, config.allocator.clone());
    let delivery = |delivered| Job {
        investment_id: created.id.parse().expect("uuid"),
        delivered,
    };

    // Deliveries 1 to 3 while the database is unreachable: each comes back later.
    stack.test_db.set_reachable(false, None).await;
    for delivered in 1..=3 {
        let verdicts = allocator
            .run_batch(DealId(investor.deal.id), &[delivery(delivered)])
            .await;
        assert!(
            matches!(verdicts[..], [Verdict::Retry(_)]),
            "delivery {delivered}: {verdicts:?}"
        );
    }
    stack.test_db.set_reachable(true, None).await;
    assert_eq!(
        stack.investment(&created.id).await.allocation_attempts,
        0,
        "nothing could be recorded"
    );

    // Delivery 4, the database back but the pool's deal locked: that failure is recorded,
    // counting every delivery, and the spent budget fails the investment.
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let verdicts = allocator
        .run_batch(DealId(investor.deal.id), &[delivery(4)])
        .await;
    drop(lock);

    assert_eq!(verdicts, [Verdict::Ack]);
    let failed = stack.investment(&created.id).await;
    assert_eq!(
        failed.allocation_status,
        AllocationStatus::Failed,
        "{failed:?}"
    );
    assert_eq!(failed.allocation_attempts, 4);
    let error = failed.allocation_error.clone().unwrap_or_default();
    assert!(
        error.starts_with("permanent failure after 4 attempts: ") && error.contains("lock"),
        "{error}"
    );
    let batch = BulkPurchase::find_by_id(investor.batches[0].id)
        .one(&stack.db)
        .await
        .expect("q")
        .expect("batch");
    assert_eq!(batch.units_remaining, 100, "inventory untouched");
    check_invariants(&stack.db).await;
}
