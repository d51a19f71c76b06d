//! Live allocation status for clients (WatchAllocation, WatchAllocations), fanned out by key.
//!
//! The truth is the `allocation_events` log, written in the transaction of every status change.
//! Each status event on NATS carries the complete update (status, version, attempt, error,
//! allocations), so on the normal path nothing touches the database:
//!
//! - one NATS subscription per replica feeds one reader ([`hub`]), which finds the event's
//!   watchers in a registry ([`registry`]) keyed by investment (WatchAllocation) and by user
//!   (WatchAllocations) and puts the update in their bounded inboxes;
//! - the reader reads the log once **for all the replica's watchers** when it sees a version
//!   jump on a watched investment, after a NATS reconnect, and every `WATCH_RESYNC` as a safety
//!   net (events NATS dropped), and dispatches what it finds like any event;
//! - a watcher reads the database when its stream opens (the snapshot) and only on its own gap:
//!   its inbox overflowed because its client reads slowly, or it joined between two versions
//!   of an investment the reader had not seen yet.
//!
//! A watcher is its response stream ([`one`], [`all`]): no task and no channel of its own. The
//! HTTP/2 stream polls it when it can send, it waits on its inbox in between, and it ends when
//! the stream is dropped (the client went away) or at shutdown. Its database reads are boxed,
//! so that an idle watcher holds only its state, not the space of a query it is not running.
//!
//! Watchers drop what they already sent (by version), so an update that arrives twice (from
//! NATS and from a resync) is sent once, in order, and memory per watcher is bounded by its
//! inbox (`WATCH_BUFFER`) and the updates of one log read.

mod all;
mod hub;
mod one;
mod registry;
mod versions;

use std::{collections::HashMap, sync::Arc};

use api::v1 as pb;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use futures::stream::BoxStream;
use ledger::events;
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

pub use hub::Hub;

use crate::watch_limit::WatchLimit;
use registry::Registration;

/// Unfinished investments a WatchAllocations snapshot reads per statement; it reads them all,
/// page after page.
pub const SNAPSHOT_PAGE: u64 = 500;

/// How far before its last look the log is read again. An event is stamped when its
/// transaction writes it but becomes visible only at commit, so a change committed just after a
/// look can carry a time before it; transactions here last well under a second (`LOCK_TIMEOUT`
/// bounds the waits), and five seconds covers them with room to spare.
const COMMIT_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// An update as watchers share it.
type Update = Arc<pb::AllocationUpdate>;

/// What a watcher listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// One investment (WatchAllocation).
    Investment(Uuid),
    /// Every investment of a user (WatchAllocations).
    User(Uuid),
}

/// Updates for logged `events`, with the allocations of the completed ones (one statement).
async fn updates(
    db: &DatabaseConnection,
    events: Vec<allocation_event::Model>,
) -> Result<Vec<pb::AllocationUpdate>, DbErr> {
    let completed = events
        .iter()
        .filter(|e| e.allocation_status == AllocationStatus::Completed)
        .map(|e| InvestmentId(e.investment_id))
        .collect::<Vec<_>>();
    let mut allocations = if completed.is_empty() {
        HashMap::new()
    } else {
        wire::allocations(events::allocations(db, completed).await?)
    };
    Ok(events
        .iter()
        .map(|e| {
            let pieces = if e.allocation_status == AllocationStatus::Completed {
                allocations.remove(&e.investment_id).unwrap_or_default()
            } else {
                Vec::new()
            };
            wire::update(e, pieces)
        })
        .collect())
}

/// What a watcher needs; cheap to clone.
#[derive(Clone)]
pub struct Watchers {
    /// Where the event log is.
    pub db: DatabaseConnection,
    /// Where updates come from.
    pub hub: Hub,
    /// Open streams per user, capped.
    pub limit: WatchLimit,
    /// Ends every stream when the server stops.
    pub shutdown: CancellationToken,
    /// Where open streams are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The stream type both RPCs return.
pub type UpdateStream<T> = BoxStream<'static, Result<T, Status>>;

/// Why a watcher stops waiting.
enum Stop {
    /// The server is stopping: the client is told to watch again.
    Shutdown,
    /// The inbox is gone (its registry entry with it): the stream just ends.
    Closed,
}

impl Stop {
    /// What the client is told last, if anything.
    fn status(self) -> Option<Status> {
        match self {
            Stop::Shutdown => Some(Status::unavailable("server shutting down; watch again")),
            Stop::Closed => None,
        }
    }
}

impl Watchers {
    /// Waits for the next update for this watcher, or for the server to stop.
    async fn next(&self, registration: &mut Registration) -> Result<Update, Stop> {
        tokio::select! {
            () = self.shutdown.cancelled() => Err(Stop::Shutdown),
            update = registration.recv() => update.ok_or(Stop::Closed),
        }
    }

    /// The logged changes of `investment` after `version`, from `since` on if given.
    async fn logged_after(
        &self,
        investment: Uuid,
        version: i64,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<pb::AllocationUpdate>, DbErr> {
        let logged = events::after(&self.db, InvestmentId(investment), version).await?;
        let logged = logged
            .into_iter()
            .filter(|e| since.is_none_or(|since| e.created_at >= since))
            .collect();
        updates(&self.db, logged).await
    }
}

/// A terminal status ends a watch: `AllocationStatus::is_terminal`, the one rule.
fn is_terminal(status: pb::AllocationStatus) -> bool {
    wire::allocation_status_filter(status.into())
        .ok()
        .flatten()
        .is_some_and(AllocationStatus::is_terminal)
}
