//! Why an allocation failed, as a value (issue 22): the live watch stream, the event log that
//! watchers repair from (read directly, and by a replica that hears no status event),
//! GetInvestment and ListInvestments all carry the same `AllocationFailure`, set only on the
//! FAILED state; an admin retry clears it.

use std::time::Duration;

use api::v1::{self as pb, AllocationFailure, AllocationStatus::*};
use entity::prelude::InvestmentId;
use futures::StreamExt;
use tonic::Streaming;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn insufficient_inventory_is_a_reason_on_every_read_and_a_retry_clears_it() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[4]).await;
    let mut live = stack.watch_all(0, investor.user_id).await;

    let created = stack.create(&investor, 5).await;

    let seen = until_terminal(&mut live, &created.id).await;
    shown_everywhere(&stack, &investor, &created.id, &seen).await;
    let failure = AllocationFailure::InsufficientInventory;
    assert_eq!(seen.last().expect("failed").failure(), failure, "{seen:?}");

    stack.batches(investor.deal.id, &[10]).await;
    retried_and_cleared(&stack, &investor, &created.id, &mut live).await;
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn attempts_exhausted_is_a_reason_on_every_read_and_a_retry_clears_it() {
    let (stack, investor, lock) = exhausting_attempts().await;
    let mut live = stack.watch_all(0, investor.user_id).await;

    let created = stack.create(&investor, 5).await;

    let seen = until_terminal(&mut live, &created.id).await;
    lock.rollback().await.expect("release");
    shown_everywhere(&stack, &investor, &created.id, &seen).await;
    let failure = AllocationFailure::AttemptsExhausted;
    assert_eq!(seen.last().expect("failed").failure(), failure, "{seen:?}");
    assert!(
        seen.iter()
            .any(|u| u.allocation_status() == Pending && !u.error.is_empty()),
        "a failed attempt that is retried has an error but no failure reason: {seen:?}"
    );

    retried_and_cleared(&stack, &investor, &created.id, &mut live).await;
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn a_watcher_served_from_the_event_log_alone_is_told_the_same_reason() {
    let mut stack = stack_with(Options {
        // A private server: the deaf replica's own names stay in it.
        own_nats_server: true,
        // The allocator waits for the deal lock the test holds, instead of timing out.
        lock_timeout: secs(30),
        ..Options::default()
    })
    .await;
    let deaf = deaf_replica(&mut stack).await;
    let investor = stack.investor("12000.00", "1.00", &[4]).await;
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let created = stack.create(&investor, 5).await;
    // Opened while allocation cannot start: its first update is PENDING, and the rest can only
    // come from the replica's reads of the log.
    let watch = stack.watch(deaf, investor.user_id, &created.id).await;
    lock.rollback().await.expect("release");

    let updates = collect(watch).await;
    assert_eq!(
        steps(&updates),
        [(Pending, 1, 0), (Processing, 2, 0), (Failed, 3, 0)],
        "{updates:?}"
    );
    let failure = updates.last().expect("failed").failure();
    assert_eq!(failure, AllocationFailure::InsufficientInventory);
    assert!(
        updates[..2]
            .iter()
            .all(|u| u.failure() == AllocationFailure::Unspecified),
        "{updates:?}"
    );
}

/// A watch-only replica that hears no status event (its NATS names are its own): it knows
/// of changes only from its periodic reads of the event log.
async fn deaf_replica(stack: &mut Stack) -> usize {
    let mut config = stack.replica_config(false);
    config.common.nats.nats_stream.push_str("_DEAF");
    config.common.nats.nats_subject_prefix.push_str("_deaf");
    let pools = stack.open_pools(&config).await;
    stack.add_replica_as(config, pools).await
}

/// The updates of `id` that `live` sends up to its next terminal one (with a deadline).
async fn until_terminal(
    live: &mut Streaming<pb::WatchAllocationsResponse>,
    id: &str,
) -> Vec<pb::AllocationUpdate> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = live.next().await {
            let update = item.expect("stream item").update.expect("update");
            if update.investment_id != id {
                continue;
            }
            let done = !matches!(update.allocation_status(), Pending | Processing);
            seen.push(update);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no terminal update; got {seen:?}"));
    seen
}

/// The reason in `seen`'s last (failed) update is the one GetInvestment, ListInvestments and
/// the event log give, and no state but FAILED has one, live or logged.
async fn shown_everywhere(
    stack: &Stack,
    investor: &Investor,
    id: &str,
    seen: &[pb::AllocationUpdate],
) {
    let last = seen.last().expect("an update");
    assert_eq!(last.allocation_status(), Failed, "{seen:?}");
    let failure = last.failure();
    assert_ne!(failure, AllocationFailure::Unspecified, "{last:?}");
    let earlier = &seen[..seen.len() - 1];
    assert!(
        earlier
            .iter()
            .all(|u| u.failure() == AllocationFailure::Unspecified),
        "{seen:?}"
    );

    // What a watcher that missed events is sent: the log, as the watch code reads it.
    let uuid = Uuid::parse_str(id).expect("uuid");
    let logged = ledger::events::after(&stack.db, InvestmentId(uuid), 0)
        .await
        .expect("log");
    let replayed: Vec<_> = logged
        .iter()
        .map(|e| wire::update(e, Vec::new()).failure())
        .collect();
    let mut expected = vec![AllocationFailure::Unspecified; replayed.len() - 1];
    expected.push(failure);
    assert_eq!(replayed, expected, "{logged:?}");

    let got = stack.get_investment(investor.user_id, id).await;
    assert_eq!(got.allocation_failure(), failure);
    assert_eq!(got.allocation_error, last.error);
    let listed = stack
        .investments(investor.user_id)
        .await
        .list_investments(pb::ListInvestmentsRequest {
            allocation_status: Failed.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .investments;
    let reasons: Vec<_> = listed
        .iter()
        .map(|i| (i.id.as_str(), i.allocation_failure()))
        .collect();
    assert_eq!(reasons, [(id, failure)]);
}

/// An admin retry clears the reason with the error, on the row and on the stream (the log
/// follows the row: a CHECK on each);
/// the retried allocation then completes.
async fn retried_and_cleared(
    stack: &Stack,
    investor: &Investor,
    id: &str,
    live: &mut Streaming<pb::WatchAllocationsResponse>,
) {
    let retried = stack.retry(id).await;
    assert_eq!(retried.allocation_status(), Pending);
    assert_eq!(retried.allocation_failure(), AllocationFailure::Unspecified);
    assert_eq!(retried.allocation_error, "");

    let seen = until_terminal(live, id).await;
    assert_eq!(seen.last().expect("done").allocation_status(), Completed);
    assert!(
        seen.iter()
            .all(|u| u.failure() == AllocationFailure::Unspecified),
        "{seen:?}"
    );
    let got = stack.get_investment(investor.user_id, id).await;
    assert_eq!(got.allocation_failure(), AllocationFailure::Unspecified);
    let stored = stack.investment(id).await;
    assert_eq!(stored.allocation_failure, None);
}
