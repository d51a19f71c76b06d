//! Lanes at the library level: an idle lane ends and frees its resources; the next request
//! of its pool starts a new lane that still allocates in order.

use std::time::Duration;

use allocation_bus::Topology;
use allocation_svc::{
    consumer,
    lanes::{Delivery, Dispatcher, LaneArgs},
    worker::Job,
};
use async_nats::jetstream;
use entity::prelude::DealId;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn an_idle_lane_ends_and_a_new_one_takes_over_its_pool() {
    let stack = stack_with(Options {
        replicas: 0,
        ..Options::default()
    })
    .await;
    let config = stack.replica_config(true);
    let topology = Topology::from_args(&config.common.nats);
    let js = jetstream::new(stack.nats.clone());
    let pull = consumer::ensure_consumer(&js, &topology, &config.allocator)
        .await
        .expect("consumer");
    let allocator = stack.allocator_on(stack.test_db.connect().await);
    let args = LaneArgs {
        micro_batch: 4,
        idle: Duration::from_millis(100),
        ack_wait: Duration::from_secs(10),
    };
    let shutdown = CancellationToken::new();
    let mut dispatcher = Dispatcher::new(allocator, 2, args, shutdown.clone());
    let investor = stack.investor("12000.00", "1.00", &[100]).await;

    for round in 0..2 {
        let created = stack.create(&investor, 1).await;
        let mut messages = pull
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .expect("fetch");
        let message = messages.next().await.expect("a request").expect("message");
        let job = Job {
            investment_id: created.id.parse().expect("uuid"),
            delivered: 1,
        };
        dispatcher.dispatch(
            DealId(investor.deal.id),
            Delivery {
                message,
                job,
                received: tokio::time::Instant::now(),
                trace: opentelemetry::Context::new(),
            },
        );
        assert_eq!(
            dispatcher.live_lanes(),
            1,
            "round {round}: one lane for the pool"
        );
        testkit::eventually(
            Duration::from_secs(10),
            "the lane to go idle and end",
            || async { (dispatcher.live_lanes() == 0).then_some(()) },
        )
        .await;
        let row = stack.investment(&created.id).await;
        assert_eq!(
            row.allocation_status,
            entity::prelude::AllocationStatus::Completed,
            "round {round}"
        );
    }
    shutdown.cancel();
    dispatcher.drain().await;
    check_invariants(&stack.db).await;
}
