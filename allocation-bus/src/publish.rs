//! Publishing one allocation request and waiting for the stream's acknowledgement, through a
//! stream leader election.

use std::time::Duration;

use api::v1::AllocationRequest;
use async_nats::jetstream::{
    self,
    context::{PublishError, PublishErrorKind},
};
use entity::prelude::*;
use prost::Message as _;
use tokio::time::Instant;

use crate::{Topology, ensure_stream};

/// `Nats-Msg-Id` of the request re-published by an admin retry: the investment id alone would
/// be dropped as a duplicate of the first request within the duplicate window.
pub fn retry_msg_id(investment_id: InvestmentId, status_version: i64) -> String {
    format!("{investment_id}.retry.{status_version}")
}

/// Publishes `request` to its deal's subject and waits for the stream's acknowledgement.
///
/// `msg_id` becomes `Nats-Msg-Id`: the investment id, so a request published twice within the
/// duplicate window is stored once (an admin retry uses a fresh one, see [`retry_msg_id`]).
/// While a stream leader is elected a publish gets no responders or no acknowledgement; such a
/// publish is sent again, with the same id and with backoff, until `publish_retry` has passed
/// (inside the duplicate window, so a try that was stored after all is not stored twice). A
/// stream that is really missing (a NATS server that lost its store) is created again between
/// tries.
pub async fn publish_request(
    js: &jetstream::Context,
    topology: &Topology,
    request: &AllocationRequest,
    msg_id: &str,
    deal_id: DealId,
) -> Result<jetstream::publish::PublishAck, PublishError> {
    let subject = topology.request_subject(deal_id);
    let payload = request.encode_to_vec();
    // The trace of the create (or retry) continues in allocation-svc.
    let mut headers = async_nats::HeaderMap::new();
    service_kit::tracing_context::inject_current(&mut headers);
    let send = || async {
        js.send_publish(
            subject.clone(),
            jetstream::message::PublishMessage::build()
                .payload(payload.clone().into())
                .headers(headers.clone())
                .message_id(msg_id),
        )
        .await?
        .await
    };
    let give_up = Instant::now() + topology.publish_retry;
    let mut delay = PUBLISH_RETRY_MIN;
    loop {
        let error = match send().await {
            Ok(ack) => return Ok(ack),
            Err(e) if retryable(&e) => e,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        if now >= give_up {
            return Err(error);
        }
        tracing::debug!(%msg_id, error = %error, ?delay, "publish not acknowledged; retrying");
        tokio::time::sleep(delay.min(give_up - now)).await;
        delay = (delay * 2).min(PUBLISH_RETRY_MAX);
        if error.kind() == PublishErrorKind::StreamNotFound
            && let Err(e) = ensure_stream(js, topology).await
        {
            tracing::debug!(stream = %topology.stream, error = %e, "stream not ensured; retrying");
        }
        // No try starts after the deadline: the last acknowledgement is due within
        // `publish_retry + NATS_TIMEOUT`, inside the duplicate window.
        if Instant::now() >= give_up {
            return Err(error);
        }
    }
}

/// First and longest pause between tries of a publish.
const PUBLISH_RETRY_MIN: Duration = Duration::from_millis(50);
const PUBLISH_RETRY_MAX: Duration = Duration::from_secs(1);

/// What an election (or a node going away) looks like to a publisher: no stream answered (the
/// client reports no responders as `StreamNotFound`), no acknowledgement in time, or the reply
/// subscription lost with the connection.
fn retryable(error: &PublishError) -> bool {
    matches!(
        error.kind(),
        PublishErrorKind::StreamNotFound
            | PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
    )
}
