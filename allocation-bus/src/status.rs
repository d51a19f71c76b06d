//! Status events on core NATS: the event log in PostgreSQL is the record; an event only wakes
//! watchers up, on every replica.

use api::v1::AllocationStatusEvent;
use entity::prelude::*;
use prost::Message as _;

use crate::Topology;

/// Publishes a status event on `<prefix>.status.<user_id>.<investment_id>`, with the current
/// trace context in its headers.
async fn publish_status(
    client: &async_nats::Client,
    topology: &Topology,
    user_id: UserId,
    investment_id: InvestmentId,
    event: &AllocationStatusEvent,
) -> Result<(), async_nats::PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    service_kit::tracing_context::inject_current(&mut headers);
    client
        .publish_with_headers(
            topology.status_subject(user_id, investment_id),
            headers,
            event.encode_to_vec().into(),
        )
        .await
}

/// Publishes a status event, logging rather than failing if NATS does not take it: a lost
/// event only delays watchers until they read the event log.
pub async fn announce_status(
    client: &async_nats::Client,
    topology: &Topology,
    user_id: UserId,
    investment_id: InvestmentId,
    event: &AllocationStatusEvent,
) {
    if let Err(e) = publish_status(client, topology, user_id, investment_id, event).await {
        tracing::warn!(%investment_id, error = %e, "status event not published; watchers read the event log");
    }
}
