//! The one after-commit path of allocation requests (create, sweeper, admin retry), and its
//! bookkeeping for the sweeper.

use api::v1::AllocationRequest;
use async_nats::{
    connection::State,
    jetstream::{self, context::PublishError},
};
use entity::prelude::*;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};

use crate::{
    PublishMetrics, PublishPath, Topology,
    metrics::{Publish, PublishFailure},
    publish_request,
};

/// An allocation request to publish after its investment's transaction committed (made from
/// the committed row by the `wire` crate).
#[derive(Clone, Debug)]
pub struct Committed {
    /// The investment.
    pub investment_id: InvestmentId,
    /// Its deal: the subject's pool.
    pub deal_id: DealId,
    /// Its `Nats-Msg-Id`: the investment id, or [`crate::retry_msg_id`] for an admin retry.
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
/// instead of `SWEEP_STUCK_AGE`. Counts both in `metrics`. Returns how many were acknowledged,
/// and why it stopped.
pub async fn publish_committed(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    topology: &Topology,
    metrics: &PublishMetrics,
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
            .failures
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
