//! The PostgreSQL primary restarted under create load, on a private server of the test's own
//! (the shared one serves other tests): crashed (every process of it SIGKILLed) or shut down
//! fast while an allocation and a create are inside their transactions, then, once clients have been answered
//! `UNAVAILABLE`, started again on the same port and data directory. Nothing accepted is lost, nothing is allocated twice or stranded, the
//! audit is clean, and a client is only ever told to retry. What it prints (`--nocapture`) is
//! for docs/operations.md, never asserted.

use entity::prelude::*;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};
use testkit::{
    db::TestDb,
    pg_server::{PgServer, Stop},
    stack::Infra,
};
use tokio::time::Instant;
use tonic::Code;

use crate::{cluster::*, support::*};

/// Creates refused while the server is down before it is started again: every worker has
/// been told to retry a few times.
const REFUSALS: usize = 12;

async fn restart_under_create_load(how: Stop) {
    let mut server = PgServer::plaintext().await;
    let test_db = TestDb::create_on(&server.admin_url())
        .await
        .expect("a database on the private server");
    let mut infra = Infra::on_database(test_db, false).await.expect("NATS");
    // Shorter than the outage, so that waiting clients are answered rather than held.
    infra
        .extra_args
        .push("--database-acquire-timeout=1s".into());
    let stack = stack_on(
        infra,
        Options {
            // A create committed whose answer was cut is published by the sweeper.
            sweeper: (ms(300), secs(1)),
            // Allocations wait on the test's lock rather than fail on it.
            lock_timeout: secs(30),
            ..Options::default()
        },
    )
    .await;
    let (investors, clients, pairs) = load_on(&stack, 2, 4).await;
    let load = Load::start(&clients, &pairs);
    load.wait_for(20).await;

    // An allocation and a create surely inside their transactions when the server goes: one
    // investor's allocations wait on the test's lock of the deal, then its creates on its lock
    // of their subscription.
    let lock = hold(&stack, &investors[0], Hold::Deal).await;
    waiting(&stack, false, "an allocation to wait on the deal").await;
    lock.execute_unprepared(&format!(
        "SELECT 1 FROM subscriptions WHERE id = '{}' FOR NO KEY UPDATE",
        investors[0].subscription.id
    ))
    .await
    .expect("lock the subscription");
    waiting(&stack, true, "a create to wait on the subscription").await;
    let fault = Instant::now();
    server.stop(how);
    drop(lock);
    load.wait_for_refusals(REFUSALS).await;
    let down = fault.elapsed();
    server.start_again().await;
    let restarted = Instant::now();
    // The fault happened as meant: the server's log of its second start says how it ended.
    let (said, times) = match how {
        Stop::Crash => ("not properly shut down; automatic recovery in progress", 1),
        // Once after initdb, once after the test's shutdown.
        Stop::Fast => ("database system was shut down at", 2),
    };
    let log = server.log();
    assert_eq!(log.matches(said).count(), times, "{how:?}: log:\n{log}");
    load.wait_for(1).await;
    let first_ok = restarted.elapsed();
    load.wait_for(30).await;
    let report = load.stop().await;

    let what = format!("PostgreSQL {how:?} restart");
    let retry = [Code::Unavailable, Code::Aborted];
    assert!(
        report.refused.keys().all(|code| retry.contains(code)),
        "{what}: clients were told more than to retry: {:?}",
        report.refused
    );
    assert!(
        report.refused.get(&Code::Unavailable).copied().unwrap_or(0) > 0,
        "{what}: the outage was not seen"
    );
    check_outcome(&stack, &report, fault, &what).await;
    let failed = Investment::find()
        .all(&stack.db)
        .await
        .expect("investments")
        .into_iter()
        .filter(|i| i.allocation_status != AllocationStatus::Completed)
        .count();
    assert_eq!(failed, 0, "{what}: the outage failed allocations");
    eprintln!(
        "[pg restart] {what}: refused by code {:?}; down {down:?} (until {REFUSALS} refusals); \
         first create accepted {first_ok:?} after the server was ready again",
        report.refused
    );
    // The services stop before their server goes.
    drop(stack);
}

/// Waits until a session waits on a row lock in a create (`creates`) or in anything else (an
/// allocation: nothing else of the stack locks a deal).
async fn waiting(stack: &Stack, creates: bool, what: &str) {
    testkit::eventually(secs(20), what, || async {
        let row = stack
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                // The create's text begins with its rules' CTE; its INSERT lies past the 1 KiB
                // of a statement that pg_stat_activity keeps (track_activity_query_size).
                "SELECT count(*) FILTER (WHERE query LIKE 'WITH facts AS (%') AS creates, \
                        count(*) AS all FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .ok()??;
        let (n, all): (i64, i64) = (
            row.try_get("", "creates").ok()?,
            row.try_get("", "all").ok()?,
        );
        let found = if creates { n } else { all - n };
        (found > 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn postgres_crashed_under_create_load_and_restarted_loses_nothing() {
    within(secs(90), restart_under_create_load(Stop::Crash)).await;
}

#[tokio::test]
async fn postgres_shut_down_fast_under_create_load_and_restarted_loses_nothing() {
    within(secs(90), restart_under_create_load(Stop::Fast)).await;
}
