//! The allocation stream ensured at start-up (docs/messaging.md): created, updated to the
//! configured settings, and scaled to `NATS_STREAM_REPLICAS`.

use std::time::Duration;

use async_nats::jetstream::{self, context::CreateStreamError, stream};
use tokio::time::Instant;

use crate::Topology;

/// Creates the stream, or updates it to the configured settings: safe to run on every start
/// of every replica. A stream with another replica count is scaled to `NATS_STREAM_REPLICAS`
/// (the servers copy the data to the new peers), logged, and waited for: a consumer with as
/// many replicas cannot be placed before the stream's peers are.
pub async fn ensure_stream(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<stream::Info, CreateStreamError> {
    let before = match js.get_stream(&topology.stream).await {
        Ok(mut existing) => existing.info().await.ok().map(|i| i.config.num_replicas),
        Err(_) => None,
    };
    let info = js.create_or_update_stream(topology.stream_config()).await?;
    match before.filter(|&n| n != topology.replicas) {
        Some(before) => {
            tracing::warn!(
                stream = %topology.stream,
                from = before,
                to = topology.replicas,
                "stream scaling to NATS_STREAM_REPLICAS"
            );
            Ok(scaled(js, topology).await.unwrap_or(info))
        }
        None => Ok(info),
    }
}

/// How long [`ensure_stream`] waits for a scaled stream's peers to catch up.
const SCALE_WAIT: Duration = Duration::from_secs(30);
/// How often it looks.
const POLL: Duration = Duration::from_millis(50);

/// The stream's info once it has `replicas - 1` followers, all current; `None` if that takes
/// longer than [`SCALE_WAIT`] (logged: the caller goes on, and what needs the peers fails and
/// is retried on its own).
async fn scaled(js: &jetstream::Context, topology: &Topology) -> Option<stream::Info> {
    let give_up = Instant::now() + SCALE_WAIT;
    while Instant::now() < give_up {
        if let Ok(mut stream) = js.get_stream(&topology.stream).await
            && let Ok(info) = stream.info().await
        {
            let followers = info.cluster.as_ref().map_or(0, |c| {
                c.replicas
                    .iter()
                    .filter(|p| p.current && !p.offline)
                    .count()
            });
            if followers + 1 >= topology.replicas {
                tracing::info!(stream = %topology.stream, replicas = topology.replicas, "stream scaled");
                return Some(info.clone());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(stream = %topology.stream, "stream peers not caught up yet");
    None
}
