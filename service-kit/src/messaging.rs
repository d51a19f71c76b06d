//! NATS JetStream wiring shared by both services (docs/messaging.md): the connection, the
//! allocation stream's settings (ensured at start-up by [`crate::stream`]), subject names, and
//! publishing an allocation request with the investment id as `Nats-Msg-Id`, retried through
//! a stream leader election.

use std::time::Duration;

use tokio::time::Instant;

use api::v1::{AllocationRequest, AllocationStatusEvent};
use async_nats::connection::State;
use async_nats::jetstream::{
    self,
    context::{PublishError, PublishErrorKind},
    stream::{self, RetentionPolicy, StorageType},
};
use entity::prelude::*;
use prost::Message as _;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};

pub use crate::metrics::PublishPath;
pub use crate::stream::ensure_stream;
use crate::{
    config::NatsArgs,
    metrics::{Publish, PublishFailure},
    secret::UrlCredentials,
};

/// Where allocation traffic lives: the stream and its subjects.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Stream name, `ALLOCATIONS` by default.
    pub stream: String,
    /// First subject token, `allocations` by default.
    pub prefix: String,
    /// Stream replicas.
    pub replicas: usize,
    /// Server-side de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// How long a publish is retried (no responders, no acknowledgement) before it is left to
    /// the sweeper; inside `duplicate_window` ([`NatsArgs::check`]).
    pub publish_retry: Duration,
}

impl Topology {
    /// From the shared NATS settings.
    pub fn from_args(args: &NatsArgs) -> Self {
        Self {
            stream: args.nats_stream.clone(),
            prefix: args.nats_subject_prefix.clone(),
            replicas: args.nats_stream_replicas,
            duplicate_window: args.nats_duplicate_window,
            publish_retry: args.nats_publish_retry,
        }
    }

    /// `<prefix>.requests.<deal_id>`: the deal is the allocation pool.
    pub fn request_subject(&self, deal_id: DealId) -> String {
        format!("{}.requests.{deal_id}", self.prefix)
    }

    /// `<prefix>.requests.*`: every request, for the stream and its consumer.
    pub fn request_filter(&self) -> String {
        format!("{}.requests.*", self.prefix)
    }

    /// `<prefix>.status.<user_id>.<investment_id>`.
    pub fn status_subject(&self, user_id: UserId, investment_id: InvestmentId) -> String {
        format!("{}.status.{user_id}.{investment_id}", self.prefix)
    }

    /// The stream's configuration: work-queue retention (a request is gone once acked),
    /// file storage, de-duplication by message id.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.request_filter()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

/// Why [`connect`] gave no client.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS or credentials setting is unusable (it names the setting and the file).
    #[error(transparent)]
    Settings(#[from] crate::nats_options::SettingsError),
    /// An entry of NATS_URL is not a server address (shown without its credentials).
    #[error("NATS_URL: {url:?} is not a NATS server address")]
    Url {
        /// The entry, credentials removed.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server is unreachable or refused the connection (TLS, authentication).
    #[error(transparent)]
    Connect(#[from] async_nats::ConnectError),
}

/// The comma-separated list of NATS_URL as server addresses (async-nats takes one string as
/// one address). The list only seeds the client: it learns the cluster's other members from
/// the servers.
fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, ConnectError> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse().map_err(|source| ConnectError::Url {
                url: url.to_owned(),
                source,
            })
        })
        .collect()
}

/// Connects to NATS, over TLS and with credentials when the settings ask for them
/// ([`crate::nats_options`]); the client reconnects by itself for as long as the process lives.
///
/// Credentials in NATS_URL are handed to the client as options and the URLs it gets hold
/// none: it logs server addresses, and they must not carry a password.
pub async fn connect(args: &NatsArgs, name: &str) -> Result<async_nats::Client, ConnectError> {
    let (urls, credentials) = args.nats_url.split_credentials();
    let options = crate::nats_options::options(args)?
        .name(name)
        .connection_timeout(args.nats_timeout)
        .max_reconnects(None);
    let options = match credentials {
        Some(UrlCredentials::UserPassword { user, password }) => {
            options.user_and_password(user, password)
        }
        Some(UrlCredentials::Token(token)) => options.token(token),
        None => options,
    };
    Ok(options.connect(server_addrs(&urls)?).await?)
}

/// A JetStream context whose API calls and publish acks time out after `timeout`.
pub fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client)
}

/// `Nats-Msg-Id` of the request re-published by an admin retry: the investment id alone would
/// be dropped as a duplicate of the first request within the duplicate window.
pub fn retry_msg_id(investment_id: InvestmentId, status_version: i64) -> String {
    format!("{investment_id}.retry.{status_version}")
}

/// Publishes a status event on `<prefix>.status.<user_id>.<investment_id>` (core NATS: the
/// event log in PostgreSQL is the record; this only wakes watchers up, on every replica), with
/// the current trace context in its headers.
async fn publish_status(
    client: &async_nats::Client,
    topology: &Topology,
    user_id: UserId,
    investment_id: InvestmentId,
    event: &AllocationStatusEvent,
) -> Result<(), async_nats::PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    crate::tracing_context::inject_current(&mut headers);
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
    crate::tracing_context::inject_current(&mut headers);
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

/// An allocation request to publish after its investment's transaction committed (made from
/// the committed row by the `wire` crate).
#[derive(Clone, Debug)]
pub struct Committed {
    /// The investment.
    pub investment_id: InvestmentId,
    /// Its deal: the subject's pool.
    pub deal_id: DealId,
    /// Its `Nats-Msg-Id`: the investment id, or [`retry_msg_id`] for an admin retry.
    pub msg_id: String,
    /// The message.
    pub request: AllocationRequest,
}

/// Why [`publish_committed`] left requests to the sweeper.
#[derive(Debug, thiserror::Error)]
pub enum Unpublished {
    /// The client knows the connection is down: nothing was tried, nobody waited.
    #[error("NATS is not connected")]
    Disconnected,
    /// The stream did not acknowledge in time, or refused.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The one after-commit path of allocation requests (create, sweeper, admin retry).
///
/// Publishes `requests` in order and waits for each acknowledgement. On the first failure,
/// and at once while the connection is known to be down, it clears `last_published_at` of
/// every request not acknowledged, so the sweeper re-publishes them after `SWEEP_MIN_AGE`
/// instead of `SWEEP_STUCK_AGE`. Returns how many were acknowledged, and why it stopped.
pub async fn publish_committed(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    topology: &Topology,
    path: PublishPath,
    requests: &[Committed],
) -> (usize, Option<Unpublished>) {
    let mut published = 0;
    let mut failure = None;
    if js.client().connection_state() != State::Connected {
        failure = Some(Unpublished::Disconnected);
    } else {
        for request in requests {
            let sent = publish_request(
                js,
                topology,
                &request.request,
                &request.msg_id,
                request.deal_id,
            );
            match sent.await {
                Ok(_) => published += 1,
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
    }
    let metrics = &*crate::metrics::COMMON;
    let path = path.label();
    metrics
        .published
        .get_or_create(&Publish { path })
        .inc_by(published as u64);
    if let Some(failure) = &failure {
        let reason = match failure {
            Unpublished::Disconnected => "disconnected",
            Unpublished::Publish(_) => "error",
        };
        metrics
            .publish_failures
            .get_or_create(&PublishFailure { path, reason })
            .inc_by((requests.len() - published) as u64);
        let ids = requests[published..].iter().map(|r| r.investment_id.uuid());
        let cleared = Investment::update_many()
            .col_expr(
                investment::Column::LastPublishedAt,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .filter(investment::Column::Id.is_in(ids))
            .exec(db)
            .await;
        // Best effort: if this fails too, SWEEP_STUCK_AGE still covers them.
        if let Err(e) = cleared {
            tracing::warn!(error = %e, "unpublished requests not recorded for the sweeper");
        }
    }
    (published, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_nats_url_is_a_list_of_servers() {
        let addrs = server_addrs("nats://a:4222, nats://b:4223,,tls://c:4224").expect("list");
        let hosts: Vec<_> = addrs
            .iter()
            .map(|a| (a.host().to_owned(), a.port()))
            .collect();
        assert_eq!(
            hosts,
            [("a".into(), 4222), ("b".into(), 4223), ("c".into(), 4224)]
        );
        assert!(matches!(
            server_addrs("nats://a:4222,nats://b:notaport"),
            Err(ConnectError::Url { url, .. }) if url == "nats://b:notaport"
        ));
    }
}
