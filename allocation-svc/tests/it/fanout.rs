//! Watching at scale (invariant 6): many watchers on a replica that does not allocate, each
//! seeing every change of what it watches, in order, without gaps, to the terminal state —
//! across a NATS reconnect, and without the replica reading the database per watcher.

use std::{collections::HashMap, time::Duration};

use api::v1::{self as pb, AllocationStatus::*};
use futures::{StreamExt, future::join_all};
use tonic::Streaming;
use uuid::Uuid;

use crate::support::*;

/// Users investing in one shared deal, whose row the test holds so that nothing is allocated
/// until it lets go.
struct Crowd {
    users: Vec<Investor>,
    investments: Vec<(Uuid, String)>,
}

async fn crowd(stack: &Stack, users: usize) -> Crowd {
    let pool = stack.investor("1200000.00", "1.00", &[1_000_000]).await;
    let mut investors = Vec::new();
    for _ in 0..users {
        let mut investor = stack.investor("1200000.00", "1.00", &[]).await;
        investor.deal = pool.deal.clone();
        investors.push(investor);
    }
    Crowd {
        users: investors,
        investments: Vec::new(),
    }
}

impl Crowd {
    /// `per_user` investments of one share for each user, a few users at a time.
    async fn invest(&mut self, stack: &Stack, per_user: usize) {
        let creates = self.users.iter().flat_map(|investor| {
            (0..per_user)
                .map(move |_| async move { (investor.user_id, stack.create(investor, 1).await.id) })
        });
        let created: Vec<_> = futures::stream::iter(creates)
            .buffer_unordered(16)
            .collect()
            .await;
        self.investments.extend(created);
    }
}

/// Every update of a WatchAllocation stream to its end.
async fn one(
    mut stream: Streaming<pb::WatchAllocationResponse>,
) -> Vec<(pb::AllocationStatus, i64)> {
    let mut seen = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(item) => seen.extend(item.update.map(|u| (u.allocation_status(), u.version))),
            Err(e) => panic!("watch failed after {seen:?}: {e:?}"),
        }
    }
    seen
}

/// Updates of a WatchAllocations stream until each of `count` investments is terminal.
async fn all(
    mut stream: Streaming<pb::WatchAllocationsResponse>,
    count: usize,
) -> HashMap<String, Vec<(pb::AllocationStatus, i64)>> {
    let mut seen: HashMap<String, Vec<_>> = HashMap::new();
    let terminal = |seen: &HashMap<String, Vec<(pb::AllocationStatus, i64)>>| {
        seen.len() == count
            && seen
                .values()
                .all(|s| s.last().is_some_and(|(st, _)| *st == Completed))
    };
    while !terminal(&seen) {
        let Some(Ok(item)) = stream.next().await else {
            break;
        };
        if let Some(u) = item.update {
            seen.entry(u.investment_id.clone())
                .or_default()
                .push((u.allocation_status(), u.version));
        }
    }
    seen
}

/// In order, no gap, ending at COMPLETED, from wherever the watch began.
fn complete(seen: &[(pb::AllocationStatus, i64)]) -> bool {
    seen.windows(2).all(|w| w[1].1 == w[0].1 + 1) && seen.last().is_some_and(|s| s.0 == Completed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_watchers_on_one_replica_see_every_change_across_a_nats_reconnect() {
    // Replica 0 allocates; the watchers are on replica 1, which does not.
    let mut stack = stack_with(Options {
        own_nats_server: true,
        lock_timeout: secs(60),
        ack_wait: secs(60),
        ..Options::default()
    })
    .await;
    let watching = stack.add_replica(false).await;
    let mut crowd = crowd(&stack, 50).await;
    let lock = hold(&stack, &crowd.users[0], Hold::Deal).await;
    crowd.invest(&stack, 4).await;

    // 4 WatchAllocation per investment and 4 WatchAllocations per user: 1,000 streams, each
    // user's 20 on a connection of its own.
    let mut singles = Vec::new();
    let mut users = Vec::new();
    for investor in &crowd.users {
        let channel = stack.replicas[watching].channel().await;
        let client = pb::allocation_service_client::AllocationServiceClient::with_interceptor(
            channel,
            testkit::Bearer(Some(testkit::token(investor.user_id))),
        );
        for (_, id) in crowd
            .investments
            .iter()
            .filter(|(u, _)| *u == investor.user_id)
        {
            for _ in 0..4 {
                let mut client = client.clone();
                let request = pb::WatchAllocationRequest {
                    investment_id: id.clone(),
                };
                singles.push(async move {
                    client
                        .watch_allocation(request)
                        .await
                        .expect("watch")
                        .into_inner()
                });
            }
        }
        for _ in 0..4 {
            let mut client = client.clone();
            users.push(async move {
                client
                    .watch_allocations(pb::WatchAllocationsRequest::default())
                    .await
                    .expect("watch all")
                    .into_inner()
            });
        }
    }
    // Opened 50 at a time: past MAX_CONCURRENT_REQUESTS calls in progress the server sheds load.
    let singles: Vec<_> = futures::stream::iter(singles).buffered(50).collect().await;
    let users: Vec<_> = futures::stream::iter(users).buffered(50).collect().await;
    assert_eq!(singles.len() + users.len(), 1000);

    // The allocator has pulled the requests and waits on the deal; then NATS goes away, the
    // allocation commits while it is gone (its status events are lost), and NATS comes back.
    stack.test_db.lock_waiter().await;
    stack.nats_server.as_mut().expect("own NATS").stop();
    testkit::eventually(
        Duration::from_secs(10),
        "the replicas to see NATS down",
        || {
            let state = stack.nats.connection_state();
            async move { (state != async_nats::connection::State::Connected).then_some(()) }
        },
    )
    .await;
    lock.rollback().await.expect("release the deal");
    stack.all_terminal(Duration::from_secs(30)).await;
    stack.nats_server.as_mut().expect("own NATS").resume().await;

    let deadline = Duration::from_secs(60);
    let singles = tokio::time::timeout(deadline, join_all(singles.into_iter().map(one)))
        .await
        .expect("every WatchAllocation ends");
    for seen in &singles {
        assert!(complete(seen), "{seen:?}");
    }
    let users = tokio::time::timeout(deadline, join_all(users.into_iter().map(|s| all(s, 4))))
        .await
        .expect("every WatchAllocations sees its investments finish");
    for seen in &users {
        assert_eq!(seen.len(), 4);
        for steps in seen.values() {
            assert!(complete(steps), "{steps:?}");
            assert_eq!(steps[0], (Pending, 1), "the snapshot first: {steps:?}");
        }
    }
    check_invariants(&stack.db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watchers_are_served_from_status_events_not_one_read_per_watcher() {
    let mut stack = stack_with(Options {
        lock_timeout: secs(60),
        ..Options::default()
    })
    .await;
    let (watching, statements) = stack.add_counted_replica(false).await;
    let mut crowd = crowd(&stack, 10).await;
    let lock = hold(&stack, &crowd.users[0], Hold::Deal).await;
    crowd.invest(&stack, 5).await;
    let mut streams = Vec::new();
    for (user, id) in &crowd.investments {
        for _ in 0..4 {
            streams.push(stack.watch(watching, *user, id).await);
        }
    }
    // 200 watchers, each with its snapshot read; from here on, count.
    let mut firsts = Vec::new();
    for stream in &mut streams {
        firsts.push(stream.next().await.expect("snapshot").expect("ok"));
    }
    let before = statements.get();
    lock.rollback().await.expect("release the deal");
    let seen = tokio::time::timeout(
        Duration::from_secs(30),
        join_all(streams.into_iter().map(one)),
    )
    .await
    .expect("every watch ends");
    let read = statements.get() - before;
    for steps in &seen {
        assert_eq!(steps.last().map(|s| s.0), Some(Completed), "{steps:?}");
    }
    // 200 watchers x 2 changes each: reading per watcher would be 400 statements or more. The
    // replica's own reads are its resyncs (a few statements per WATCH_RESYNC, 500 ms here).
    assert!(read < 60, "the watching replica sent {read} statements");
}

#[tokio::test]
async fn watch_allocations_starts_with_every_unfinished_investment_past_one_page() {
    let stack = stack().await;
    let mut crowd = crowd(&stack, 1).await;
    let lock = hold(&stack, &crowd.users[0], Hold::Deal).await;
    let count = allocation_svc::watch::SNAPSHOT_PAGE as usize + 20;
    crowd.invest(&stack, count).await;
    let investor = &crowd.users[0];
    let mut client = stack
        .allocations(0, Some(testkit::token(investor.user_id)))
        .await;
    let mut stream = client
        .watch_allocations(pb::WatchAllocationsRequest::default())
        .await
        .expect("watch all")
        .into_inner();
    let mut ids = std::collections::HashSet::new();
    while ids.len() < count {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the snapshot keeps coming")
            .expect("open")
            .expect("ok");
        ids.insert(item.update.expect("update").investment_id);
    }
    assert_eq!(ids.len(), count);
    drop(lock);
}
