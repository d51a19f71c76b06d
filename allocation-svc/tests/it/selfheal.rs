//! The NATS topology heals itself: a consumer or stream that disappears (a server that lost
//! its store, an operator's mistake) strands no investment, and no service is restarted.

use std::time::Duration;

use async_nats::jetstream;

use crate::support::*;

/// A pair whose sweeper treats a published but unfinished request as lost after 2 s.
fn healing() -> Options {
    Options {
        sweeper: (ms(200), secs(1)),
        sweep_stuck_age: secs(2),
        ..Default::default()
    }
}

/// A healing pair (with `options`), an investor with units for every test, and JetStream.
async fn healing_stack(options: Options) -> (Stack, Investor, jetstream::Context) {
    let stack = stack_with(options).await;
    let investor = stack.investor("100000.00", "1.00", &[10_000]).await;
    let js = jetstream::new(stack.nats.clone());
    (stack, investor, js)
}

/// Deletes the allocator's durable consumer, as an operator could: once the allocator has
/// made it (it does so in its own task at start-up, so the first tries may find none).
async fn delete_consumer(stack: &Stack, js: &jetstream::Context) {
    let stream = js.get_stream(&stack.names.stream).await.expect("stream");
    testkit::eventually(
        Duration::from_secs(20),
        "the consumer to delete",
        || async { stream.delete_consumer("allocator").await.ok() },
    )
    .await;
}

/// Every investment terminal within the sweeper's stuck age plus a few seconds.
const HEALED: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_deleted_consumer_is_recreated_and_the_queued_requests_allocated() {
    let (stack, investor, js) = healing_stack(healing()).await;
    // Given a running pair whose consumer was deleted, and requests queued meanwhile
    delete_consumer(&stack, &js).await;
    for _ in 0..20 {
        stack.create(&investor, 3).await;
    }
    // Then the allocator ensures its consumer again and allocates all of them
    assert_eq!(stack.all_completed(HEALED).await.len(), 20);
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn a_deleted_stream_is_recreated_and_the_lost_requests_republished() {
    // One request in flight at a time, held up by the test's lock on the deal: the rest wait
    // in the stream, as a backlog does.
    let (stack, investor, js) = healing_stack(Options {
        max_ack_pending: 1,
        lock_timeout: secs(30),
        ..healing()
    })
    .await;
    let lock = hold(&stack, &investor, Hold::Deal).await;
    for _ in 0..20 {
        stack.create(&investor, 3).await;
    }
    let mut stream = js.get_stream(&stack.names.stream).await.expect("stream");
    let queued = stream.info().await.expect("info").state.messages;
    assert_eq!(queued, 20, "the backlog is in the stream");

    // When the stream is deleted with its backlog, and the lock released
    js.delete_stream(&stack.names.stream)
        .await
        .expect("stream deleted");
    drop(lock);

    // Then the allocator ensures stream and consumer again, the sweeper re-publishes the lost
    // requests, and every investment is allocated: no service restarted
    assert_eq!(stack.all_completed(HEALED).await.len(), 20);
    check_invariants(&stack.db).await;
}
