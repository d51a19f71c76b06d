//! Plans, not luck (issue 18): allocation-svc's statements keep their index access under the
//! generic plan PostgreSQL switches a prepared statement to after five executions: the
//! allocator's, the queue stats, the watchers' resync and gap reads. Statements are recorded
//! from the code itself, on thousands of rows per table.

use allocation_bus::Topology;
use allocation_svc::{
    admin, consumer,
    worker::{Job, Verdict},
};
use async_nats::jetstream;
use entity::prelude::*;
use ledger::events;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use testkit::plans::{self, Recorded};

use crate::support::*;

/// Checks every statement recorded since the last call on `checker` (which records nothing).
async fn check(checker: &DatabaseConnection, recorded: &Recorded, what: &str) {
    let statements = recorded.take();
    assert!(!statements.is_empty(), "{what}: nothing was sent");
    for statement in &statements {
        plans::assert_indexed(checker, what, statement, &[]).await;
    }
}

async fn seeded_stack() -> (Stack, DatabaseConnection, plans::Seeded) {
    let stack = stack_with(Options {
        replicas: 0,
        ..Options::default()
    })
    .await;
    let checker = stack.test_db.connect().await;
    let seeded = plans::seed(&checker).await;
    (stack, checker, seeded)
}

/// The allocator's statements (allocation-svc/src/worker/steps.rs): `units_remaining > 0` is written
/// as a constant, so the FIFO partial index serves the batches' lock.
#[tokio::test]
async fn the_allocator_keeps_its_indexes_under_a_generic_plan() {
    let (stack, checker, seeded) = seeded_stack().await;
    let (db, recorded) = stack.test_db.connect_recording().await;
    let allocator = stack.allocator_on(db);
    let deal: uuid::Uuid = checker
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT deal_id AS id FROM investments WHERE id = $1",
            [seeded.pending.into()],
        ))
        .await
        .expect("deal")
        .expect("a deal")
        .try_get("", "id")
        .expect("id");
    let job = Job {
        investment_id: InvestmentId(seeded.pending),
        delivered: 1,
    };
    let verdicts = allocator.run_batch(DealId(deal), &[job]).await;
    assert_eq!(verdicts, [Verdict::Ack]);
    check(&checker, &recorded, "allocation").await;
}

#[tokio::test]
async fn queue_stats_and_watch_reads_keep_their_indexes_under_a_generic_plan() {
    let (stack, checker, seeded) = seeded_stack().await;
    let (db, recorded) = stack.test_db.connect_recording().await;
    let config = stack.replica_config(true);
    let topology = Topology::from_args(&config.common.nats);
    let js = jetstream::new(stack.nats.clone());
    consumer::ensure_consumer(&js, &topology, &config.allocator)
        .await
        .expect("consumer");

    admin::queue_stats(&db, &js, &topology, &config.allocator)
        .await
        .expect("queue stats");
    // GetQueueStats counts every investment by status: a full read whatever the plan.
    let statements = recorded.take();
    for statement in &statements {
        plans::assert_indexed(&checker, "GetQueueStats", statement, &["investments"]).await;
    }
    admin::oldest_unfinished_seconds(&db)
        .await
        .expect("oldest unfinished");
    check(&checker, &recorded, "oldest unfinished (queue gauges)").await;

    // The watchers' reads of the event log: resync by time, a gap of one investment, a
    // user's snapshot, the allocations of completed ones.
    let now = events::now(&db).await.expect("now");
    recorded.take();
    events::since(&db, now - chrono::TimeDelta::seconds(5))
        .await
        .expect("since");
    check(&checker, &recorded, "watch resync").await;
    events::after(&db, InvestmentId(seeded.pending), 0)
        .await
        .expect("after");
    check(&checker, &recorded, "watch gap fill").await;
    events::of_user_since(&db, seeded.user, now - chrono::TimeDelta::seconds(5))
        .await
        .expect("of user since");
    check(&checker, &recorded, "watch snapshot").await;
    let completed = [InvestmentId(plans_completed(&checker).await)];
    events::allocations(&db, completed)
        .await
        .expect("allocations");
    check(&checker, &recorded, "allocations of completed investments").await;
}

/// A completed investment of the seeded data.
async fn plans_completed(db: &DatabaseConnection) -> uuid::Uuid {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT id FROM investments WHERE allocation_status = 'completed' LIMIT 1",
    ))
    .await
    .expect("completed")
    .expect("a completed investment")
    .try_get("", "id")
    .expect("id")
}
