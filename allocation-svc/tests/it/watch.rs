//! Watching: ownership, every replica sees every change, WatchAllocations, clients leaving.

use std::{collections::HashMap, time::Duration};

use api::v1::{self as pb, AllocationStatus::*};
use futures::StreamExt;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn a_watcher_on_one_replica_sees_an_allocation_made_by_another() {
    let mut stack = stack().await;
    let watcher = stack.add_replica(false).await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;

    let created = stack.create(&investor, 3).await;
    let updates = collect(stack.watch(watcher, investor.user_id, &created.id).await).await;

    let tail: Vec<_> = steps(&updates)
        .into_iter()
        .skip_while(|s| s.0 == Pending)
        .collect();
    assert_eq!(tail, [(Processing, 2, 0), (Completed, 3, 0)], "{updates:?}");
}

#[tokio::test]
async fn someone_elses_or_unknown_investment_is_not_found_and_bad_ids_invalid() {
    let stack = stack().await;
    let alice = stack.investor("12000.00", "1.00", &[100]).await;
    let created = stack.create(&alice, 1).await;
    let mut bob = stack
        .allocations(0, Some(testkit::token(Uuid::new_v4())))
        .await;

    for id in [created.id.clone(), Uuid::new_v4().to_string()] {
        let status = bob
            .watch_allocation(pb::WatchAllocationRequest { investment_id: id })
            .await
            .expect_err("not Bob's");
        assert_eq!(status.code(), Code::NotFound);
    }
    let status = bob
        .watch_allocation(pb::WatchAllocationRequest {
            investment_id: "x".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = stack
        .allocations(0, None)
        .await
        .watch_allocation(pb::WatchAllocationRequest {
            investment_id: created.id,
        })
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn watch_allocations_streams_every_change_of_the_callers_investments_only() {
    let stack = stack().await;
    let alice = stack.investor("12000.00", "1.00", &[100]).await;
    let bob = stack.investor("12000.00", "1.00", &[100]).await;
    let mut stream = stack.watch_all(0, alice.user_id).await;

    let a1 = stack.create(&alice, 1).await;
    let a2 = stack.create(&alice, 2).await;
    stack.create(&bob, 3).await;

    let mut seen: HashMap<String, Vec<(pb::AllocationStatus, i64)>> = HashMap::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = stream.next().await {
            let update = item.expect("item").update.expect("update");
            seen.entry(update.investment_id.clone())
                .or_default()
                .push((update.allocation_status(), update.version));
            let done = |id: &String| {
                seen.get(id)
                    .is_some_and(|s| s.last().is_some_and(|l| l.0 == Completed))
            };
            if done(&a1.id) && done(&a2.id) {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("did not see both complete: {seen:?}"));

    assert_eq!(seen.len(), 2, "only Alice's investments: {seen:?}");
    for id in [&a1.id, &a2.id] {
        assert_eq!(
            seen[id],
            [(Pending, 1), (Processing, 2), (Completed, 3)],
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_client_that_goes_away_ends_its_producer_and_a_slow_one_still_sees_everything() {
    // The allocator waits for the deal lock the test holds, instead of timing out.
    let stack = stack_with(Options {
        lock_timeout: secs(30),
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[1000]).await;
    let config = stack.replica_config(false);
    let topology = allocation_bus::Topology::from_args(&config.common.nats);
    let shutdown = tokio_util::sync::CancellationToken::new();
    // Inboxes of 2 updates: any watcher that does not keep up lags at once.
    let args = allocation_svc::config::WatchArgs {
        watch_buffer: 2,
        ..config.watch.clone()
    };
    let hub = allocation_svc::watch::Hub::start(
        &stack.nats,
        stack.db.clone(),
        &topology,
        &args,
        shutdown.clone(),
    )
    .await
    .expect("hub");
    let limit = allocation_svc::watch_limit::WatchLimit::new(10);
    let watchers = allocation_svc::watch::Watchers {
        db: stack.db.clone(),
        hub: hub.clone(),
        limit: limit.clone(),
        shutdown,
        metrics: Default::default(),
    };

    let lock = hold(&stack, &investor, Hold::Deal).await;
    let slow_one = stack.create(&investor, 1).await;
    let mut slow = watchers
        .watch_one(investor.user_id, slow_one.id.parse().expect("uuid"))
        .await
        .expect("watch");
    let gone_one = stack.create(&investor, 1).await;
    let gone = watchers
        .watch_one(investor.user_id, gone_one.id.parse().expect("uuid"))
        .await
        .expect("watch");
    assert_eq!(hub.watchers(), 2);
    drop(gone);
    testkit::eventually(
        Duration::from_secs(5),
        "the producer of the client that left to end",
        // Its watch slot comes back with it.
        || async { (hub.watchers() == 1 && limit.open(investor.user_id) == 1).then_some(()) },
    )
    .await;
    lock.rollback().await.expect("release");
    // Plenty of traffic while the slow client reads nothing.
    for _ in 0..20 {
        stack.create(&investor, 1).await;
    }
    stack.all_terminal(Duration::from_secs(30)).await;

    let mut versions = Vec::new();
    while let Some(item) = slow.next().await {
        versions.push(item.expect("item").update.expect("update").version);
    }
    assert_eq!(
        versions.last(),
        Some(&3),
        "ends at the terminal state: {versions:?}"
    );
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap: {versions:?}"
    );
    testkit::eventually(Duration::from_secs(5), "both producers to end", || async {
        (hub.watchers() == 0 && limit.open(investor.user_id) == 0).then_some(())
    })
    .await;
}
