//! WatchAllocations: every unfinished investment of the caller as it is now (all of them, read
//! page by page), then every change of any of the caller's investments, until the client goes
//! away.

use std::collections::HashMap;

use api::v1 as pb;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use futures::StreamExt as _;
use ledger::events;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryTrait};
use service_kit::page::{self, Cursor, Direction};
use tonic::Status;
use uuid::Uuid;

use super::{
    COMMIT_OVERLAP, Key, SNAPSHOT_PAGE, UpdateStream, Watchers,
    registry::Registration,
    updates,
    versions::{Step, step},
};
use crate::{Error, metrics::Alive, watch_limit::Slot};

impl Watchers {
    /// WatchAllocations of `user_id`.
    pub async fn watch_all(
        &self,
        user_id: Uuid,
    ) -> Result<UpdateStream<pb::WatchAllocationsResponse>, Error> {
        let slot = self.limit.take(user_id)?;
        let registration = self.hub.register(Key::User(user_id));
        let started = events::now(&self.db).await?;
        let watch = All {
            watchers: self.clone(),
            registration,
            user_id,
            started,
            snapshot: Some(None),
            done: false,
            sent: Sent::default(),
            pending: Vec::new().into_iter(),
            _held: (self.metrics.open_stream("WatchAllocations"), slot),
        };
        Ok(futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        })
        .boxed())
    }

    /// One page of the user's unfinished investments, oldest first, after `after`, and where
    /// the next page starts (`None` after the last page).
    async fn unfinished_page(
        &self,
        user_id: Uuid,
        after: Option<Cursor>,
    ) -> Result<(Vec<investment::Model>, Option<Cursor>), DbErr> {
        use investment::Column;
        let mut query = Investment::find()
            .filter(Column::UserId.eq(user_id))
            .filter(
                Column::AllocationStatus
                    .is_in([AllocationStatus::Pending, AllocationStatus::Processing]),
            );
        let key = (
            (investment::Entity, Column::CreatedAt),
            (investment::Entity, Column::Id),
        );
        let size = SNAPSHOT_PAGE;
        page::seek(
            QueryTrait::query(&mut query),
            key,
            Direction::OldestFirst,
            after,
            size,
        );
        let mut rows = query.all(&self.db).await?;
        let next = page::split(&mut rows, size, |row| Cursor {
            created_at: row.created_at,
            id: row.id,
        });
        Ok((rows, next))
    }

    /// The updates of the snapshot page after `after`, and where the next page starts (`None`
    /// after the last page).
    async fn snapshot_page(
        &self,
        user_id: Uuid,
        after: Option<Cursor>,
    ) -> Result<(Vec<pb::AllocationUpdate>, Option<Option<Cursor>>), DbErr> {
        let (page, next) = self.unfinished_page(user_id, after).await?;
        let first = updates(&self.db, page.iter().map(events::event_of).collect()).await?;
        Ok((first, next.map(Some)))
    }
}

/// A WatchAllocations stream's state.
struct All {
    watchers: Watchers,
    registration: Registration,
    user_id: Uuid,
    /// When the stream opened, by the database's clock.
    started: DateTime<Utc>,
    /// Where the next snapshot page starts, while the snapshot is being read.
    snapshot: Option<Option<Cursor>>,
    done: bool,
    sent: Sent,
    /// Updates read and not sent yet.
    pending: std::vec::IntoIter<pb::AllocationUpdate>,
    /// Counted as open, and one of the user's streams, until dropped.
    _held: (Alive, Slot),
}

impl All {
    /// The stream's next message; `None` at its end.
    async fn next(&mut self) -> Option<Result<pb::WatchAllocationsResponse, Status>> {
        loop {
            if self.done {
                return None;
            }
            for update in self.pending.by_ref() {
                if self.sent.fresh(&update) {
                    return Some(Ok(pb::WatchAllocationsResponse {
                        update: Some(update),
                    }));
                }
            }
            // Nothing left to send: no buffer kept while waiting.
            self.pending = Vec::new().into_iter();
            if let Some(after) = self.snapshot {
                match Box::pin(self.watchers.snapshot_page(self.user_id, after)).await {
                    Ok((first, next)) => {
                        self.pending = first.into_iter();
                        self.snapshot = next;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(Error::from(e).into()));
                    }
                }
                continue;
            }
            let update = match self.watchers.next(&mut self.registration).await {
                Ok(update) => update,
                Err(stop) => {
                    self.done = true;
                    return stop.status().map(Err);
                }
            };
            match Box::pin(self.fresh(&update)).await {
                Ok(fresh) => self.pending = fresh.into_iter(),
                Err(e) => {
                    tracing::warn!(user_id = %self.user_id, error = %e, "watcher cannot read the event log; waiting for the next update");
                }
            }
        }
    }

    /// What to send for `update`: it alone when it is the next version of its investment, the
    /// log's changes when some are missing.
    async fn fresh(
        &self,
        update: &pb::AllocationUpdate,
    ) -> Result<Vec<pb::AllocationUpdate>, DbErr> {
        let since = self.started - COMMIT_OVERLAP;
        if self.registration.lagged() {
            // Updates were dropped: everything of the user's since the newest one sent.
            let from = self.sent.newest.unwrap_or(self.started) - COMMIT_OVERLAP;
            let logged = events::of_user_since(&self.watchers.db, self.user_id, from).await?;
            return updates(&self.watchers.db, logged).await;
        }
        let Ok(id) = Uuid::try_parse(&update.investment_id) else {
            return Ok(Vec::new());
        };
        let last = self.sent.last.get(&id).copied();
        match step(last, update.version) {
            Step::Seen => Ok(Vec::new()),
            Step::Next => Ok(vec![update.clone()]),
            // First heard of at a later version: its changes since this watch began (a FAILED
            // one retried, or a create whose first event NATS lost).
            Step::Gap { after } => {
                let since = last.is_none().then_some(since);
                self.watchers.logged_after(id, after, since).await
            }
        }
    }
}

/// What a WatchAllocations stream has sent: the last version per investment, and the time of
/// the newest change.
#[derive(Default)]
struct Sent {
    last: HashMap<Uuid, i64>,
    newest: Option<DateTime<Utc>>,
}

impl Sent {
    /// Whether `update` is still to send (newer than what its investment's stream has seen);
    /// if so it counts as sent.
    fn fresh(&mut self, update: &pb::AllocationUpdate) -> bool {
        let Ok(id) = Uuid::try_parse(&update.investment_id) else {
            return false;
        };
        let last = self.last.entry(id).or_default();
        if step(Some(*last), update.version) == Step::Seen {
            return false;
        }
        *last = update.version;
        let at = update
            .updated_at
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)));
        self.newest = self.newest.max(at);
        true
    }
}
