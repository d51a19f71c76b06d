//! The JetStream side: the durable pull consumer shared by every replica, and the loop that
//! pulls requests and hands them to the lanes.

use std::time::Duration;

use api::v1::AllocationRequest;
use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, PullConsumer, pull},
};
use futures::StreamExt;
use prost::Message as _;
use service_kit::messaging::Topology;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::AllocatorArgs,
    lanes::{Delivery, Dispatcher},
    worker::Job,
};

/// Creates the durable consumer, or updates it to the configured settings: idempotent, safe
/// for every replica at every start.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    topology: &Topology,
    args: &AllocatorArgs,
) -> Result<PullConsumer, async_nats::Error> {
    let stream = js.get_stream(&topology.stream).await?;
    let config = pull::Config {
        durable_name: Some(args.consumer_name.clone()),
        description: Some("allocation-svc: allocates investments".into()),
        filter_subject: topology.request_filter(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: args.ack_wait,
        // Attempts are counted in the database; NATS never gives up on a request by itself.
        max_deliver: -1,
        max_ack_pending: args.max_ack_pending,
        ..Default::default()
    };
    match stream
        .get_consumer::<pull::Config>(&args.consumer_name)
        .await
    {
        Ok(_) => Ok(stream.update_consumer(config).await?),
        Err(_) => Ok(stream.create_consumer(config).await?),
    }
}

/// Pulls requests until `shutdown`, surviving heartbeat misses and reconnects, then drains
/// the lanes.
pub async fn run(
    consumer: PullConsumer,
    mut dispatcher: Dispatcher,
    fetch_batch: usize,
    shutdown: CancellationToken,
) {
    let mut retry_delay = Duration::from_millis(100);
    'pull: while !shutdown.is_cancelled() {
        let messages = consumer
            .stream()
            .max_messages_per_batch(fetch_batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => {
                retry_delay = Duration::from_millis(100);
                m
            }
            Err(e) => {
                tracing::warn!(error = %e, ?retry_delay, "cannot pull requests; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break 'pull,
                    () = tokio::time::sleep(retry_delay) => {}
                }
                retry_delay = (retry_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break 'pull,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => route(&mut dispatcher, message).await,
                // Missing heartbeats and the like: the stream goes on.
                Some(Err(e)) => tracing::warn!(error = %e, "pull stream error"),
                None => continue 'pull,
            }
        }
    }
    dispatcher.drain().await;
}

/// Parses a request and dispatches it to its pool's lane; garbage is terminated, never
/// retried and never blocks a lane.
async fn route(dispatcher: &mut Dispatcher, message: jetstream::Message) {
    let deal_id = message
        .subject
        .rsplit('.')
        .next()
        .and_then(|token| Uuid::try_parse(token).ok());
    let investment_id = AllocationRequest::decode(message.payload.clone())
        .ok()
        .and_then(|r| Uuid::try_parse(&r.investment_id).ok());
    let (Some(deal_id), Some(investment_id)) = (deal_id, investment_id) else {
        tracing::warn!(subject = %message.subject, bytes = message.payload.len(), "malformed allocation request terminated");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
    let job = Job {
        investment_id,
        delivered,
    };
    dispatcher.dispatch(
        deal_id,
        Delivery {
            message,
            job,
            received: Instant::now(),
        },
    );
}
