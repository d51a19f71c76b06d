//! The per-user cap on open watch streams (`WATCH_MAX_PER_USER`): WatchAllocation and
//! WatchAllocations count together, per user; a slot comes back when its stream ends or its
//! client goes away.

use std::time::Duration;

use api::v1 as pb;
use futures::StreamExt;
use tonic::{Code, Status, Streaming};
use uuid::Uuid;

use crate::support::*;

const CAP: usize = 2;

async fn watch_all(
    stack: &Stack,
    user: Uuid,
) -> Result<Streaming<pb::WatchAllocationsResponse>, Status> {
    stack
        .allocations(0, Some(testkit::token(user)))
        .await
        .watch_allocations(pb::WatchAllocationsRequest {})
        .await
        .map(tonic::Response::into_inner)
}

async fn watch_one(
    stack: &Stack,
    user: Uuid,
    investment_id: &str,
) -> Result<Streaming<pb::WatchAllocationResponse>, Status> {
    stack
        .allocations(0, Some(testkit::token(user)))
        .await
        .watch_allocation(pb::WatchAllocationRequest {
            investment_id: investment_id.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn assert_capped<T>(opened: Result<T, Status>) {
    let Err(status) = opened else {
        panic!("a stream over the cap was opened");
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("at most {CAP} per user")),
        "{status:?}"
    );
}

/// Opens WatchAllocations for `user` once a slot is free (a refusal holds none).
async fn watch_all_when_free(stack: &Stack, user: Uuid) -> Streaming<pb::WatchAllocationsResponse> {
    testkit::eventually(Duration::from_secs(10), "a slot to come back", || async {
        watch_all(stack, user).await.ok()
    })
    .await
}

#[tokio::test]
async fn the_stream_over_the_cap_is_refused_other_users_are_not_and_slots_come_back() {
    let stack = stack_with(Options {
        extra_args: vec![format!("--watch-max-per-user={CAP}")],
        ..Options::default()
    })
    .await;
    let alice = stack.investor("12000.00", "1.00", &[100]).await;
    let finished = stack.create(&alice, 1).await;
    stack.all_terminal(Duration::from_secs(30)).await;
    let user = alice.user_id;

    // At the cap, both RPCs are refused; someone else is not.
    let first = watch_all(&stack, user).await.expect("first");
    let second = watch_all(&stack, user).await.expect("second");
    assert_capped(watch_all(&stack, user).await);
    assert_capped(watch_one(&stack, user, &finished.id).await);
    let bob = watch_all(&stack, Uuid::new_v4())
        .await
        .expect("another user is not capped");

    // A client that goes away gives its slot back.
    drop(second);
    let third = watch_all_when_free(&stack, user).await;
    assert_capped(watch_all(&stack, user).await);

    // A stream that ends gives its slot back, its client still holding it.
    drop(first);
    let mut ended = testkit::eventually(Duration::from_secs(10), "a slot", || async {
        watch_one(&stack, user, &finished.id).await.ok()
    })
    .await;
    let mut updates = 0;
    while let Some(item) = ended.next().await {
        item.expect("an update");
        updates += 1;
    }
    assert_eq!(updates, 1, "a finished investment: its state, then the end");
    let fourth = watch_all_when_free(&stack, user).await;
    assert_capped(watch_all(&stack, user).await);
    // A refused RPC, NOT_FOUND, holds no slot either.
    drop(fourth);
    let unknown = testkit::eventually(Duration::from_secs(10), "a slot", || async {
        match watch_one(&stack, user, &Uuid::new_v4().to_string()).await {
            Err(status) if status.code() == Code::NotFound => Some(status),
            _ => None,
        }
    })
    .await;
    assert_eq!(unknown.code(), Code::NotFound);
    let _fifth = watch_all(&stack, user)
        .await
        .expect("NOT_FOUND held no slot");
    drop((third, ended, bob));
}
