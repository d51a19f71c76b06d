//! The JetStream side: the durable pull consumer shared by every replica, and the loop that
//! pulls requests and hands them to the lanes.

use std::time::Duration;

use allocation_bus::Topology;
use api::v1::AllocationRequest;
use async_nats::jetstream::{
    self, AckKind,
    consumer::{
        AckPolicy, PullConsumer,
        pull::{self, MessagesErrorKind},
    },
};
use entity::prelude::{DealId, InvestmentId};
use futures::StreamExt;
use prost::Message as _;
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
        // As many as the stream: the consumer's state survives the loss of a node with it.
        num_replicas: topology.replicas,
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

/// Where requests come from: the stream and durable consumer this replica ensures at start-up
/// and again whenever pulling shows them missing (a NATS server that lost its store, an
/// operator who deleted them), so no restart is ever needed.
#[derive(Clone)]
pub struct Source {
    /// JetStream context.
    pub js: jetstream::Context,
    /// Stream and subjects.
    pub topology: Topology,
    /// Consumer settings.
    pub args: AllocatorArgs,
}

impl Source {
    /// Ensures the stream, then the consumer.
    pub async fn ensure(&self) -> Result<PullConsumer, async_nats::Error> {
        allocation_bus::ensure_stream(&self.js, &self.topology).await?;
        ensure_consumer(&self.js, &self.topology, &self.args).await
    }

    /// [`Source::ensure`] with backoff until it succeeds; `None` once `shutdown` is cancelled.
    async fn ensure_until(&self, shutdown: &CancellationToken) -> Option<PullConsumer> {
        let mut delay = MIN_RETRY_DELAY;
        loop {
            match self.ensure().await {
                Ok(consumer) => {
                    tracing::info!(consumer = %self.args.consumer_name, "stream and consumer ensured");
                    return Some(consumer);
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?delay, "cannot ensure stream and consumer; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }
}

const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Idle heartbeat asked of the server; two missed in a row mean the pull is dead (parked on a
/// server that died, or on a consumer leader that lost its leadership), so a new pull starts
/// within seconds.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Pulls requests until `shutdown`, then drains the lanes.
///
/// A pull that cannot start, a deleted consumer, two missed heartbeats in a row or any other
/// pull error make it ensure the stream and consumer again (with backoff) and pull anew; a
/// single missed heartbeat (a short hiccup) does not.
pub async fn run(
    source: Source,
    consumer: PullConsumer,
    mut dispatcher: Dispatcher,
    fetch_batch: usize,
    shutdown: CancellationToken,
) {
    let mut consumer = Some(consumer);
    'pull: while !shutdown.is_cancelled() {
        let current = match consumer.take() {
            Some(c) => c,
            None => match source.ensure_until(&shutdown).await {
                Some(c) => c,
                None => break 'pull,
            },
        };
        let messages = current
            .stream()
            .max_messages_per_batch(fetch_batch)
            .heartbeat(HEARTBEAT)
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull requests; ensuring stream and consumer");
                tokio::select! {
                    () = shutdown.cancelled() => break 'pull,
                    () = tokio::time::sleep(MIN_RETRY_DELAY) => {}
                }
                continue 'pull;
            }
        };
        let mut missed_heartbeats = 0;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break 'pull,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    missed_heartbeats = 0;
                    route(&mut dispatcher, message).await;
                }
                Some(Err(e)) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                    missed_heartbeats += 1;
                    tracing::warn!(error = %e, missed_heartbeats, "pull stream error");
                    if missed_heartbeats >= 2 {
                        continue 'pull;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pull stream error; ensuring stream and consumer");
                    continue 'pull;
                }
                None => {
                    consumer = Some(current);
                    continue 'pull;
                }
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
        .and_then(|token| Uuid::try_parse(token).ok())
        .map(DealId);
    let investment_id = AllocationRequest::decode(message.payload.clone())
        .ok()
        .and_then(|r| Uuid::try_parse(&r.investment_id).ok())
        .map(InvestmentId);
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
            trace: service_kit::tracing_context::from_nats(message.headers.as_ref()),
            message,
            job,
            received: Instant::now(),
        },
    );
}
