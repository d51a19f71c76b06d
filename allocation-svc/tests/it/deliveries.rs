//! Deliveries counted by the stack's durable consumer (redeliveries included): what a test
//! waits on when requests must have come back.

use std::time::Duration;

use crate::support::Stack;

/// How many times the stack's consumer has delivered requests (redeliveries included).
pub async fn deliveries(stack: &Stack) -> u64 {
    let js = async_nats::jetstream::new(stack.nats.clone());
    let Ok(stream) = js.get_stream(&stack.names.stream).await else {
        return 0;
    };
    let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
        stream.get_consumer("allocator").await;
    match consumer {
        Ok(mut consumer) => consumer
            .info()
            .await
            .map_or(0, |info| info.delivered.consumer_sequence),
        Err(_) => 0,
    }
}

/// Waits until the request was delivered at least `n` times.
pub async fn delivered_at_least(stack: &Stack, n: u64) {
    testkit::eventually(Duration::from_secs(30), "redeliveries", || async {
        (deliveries(stack).await >= n).then_some(())
    })
    .await;
}
