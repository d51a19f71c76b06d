//! WatchAllocation: one investment's current state, then every change, ending after the
//! terminal state.

use api::v1 as pb;
use entity::prelude::*;
use futures::StreamExt as _;
use ledger::events;
use tonic::Status;
use uuid::Uuid;

use super::{
    Key, UpdateStream, Watchers, is_terminal,
    registry::Registration,
    updates,
    versions::{Step, step},
};
use crate::{Error, metrics::Alive, watch_limit::Slot};

impl Watchers {
    /// WatchAllocation of `investment_id`: `NOT_FOUND` (before any stream) if it is not the
    /// caller's.
    pub async fn watch_one(
        &self,
        user_id: Uuid,
        investment_id: Uuid,
    ) -> Result<UpdateStream<pb::WatchAllocationResponse>, Error> {
        let slot = self.limit.take(user_id)?;
        // Register before reading, so no change slips between the read and the first update.
        let registration = self.hub.register(Key::Investment(investment_id));
        let row = investment::find_owned(UserId(user_id), InvestmentId(investment_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("investment"))?;
        let watch = One {
            watchers: self.clone(),
            registration,
            id: row.id,
            last: row.status_version,
            state: State::Snapshot(Box::new(row)),
            pending: Vec::new().into_iter(),
            _held: (self.metrics.open_stream("WatchAllocation"), slot),
        };
        Ok(futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        })
        .boxed())
    }
}

/// Where a WatchAllocation stream is.
enum State {
    /// Its first message is the investment as read when the stream opened.
    Snapshot(Box<investment::Model>),
    /// Sending changes.
    Live,
    /// Ended.
    Done,
}

/// A WatchAllocation stream's state.
struct One {
    watchers: Watchers,
    registration: Registration,
    id: Uuid,
    /// The version last sent.
    last: i64,
    state: State,
    /// Updates read from the log and not sent yet, in version order.
    pending: std::vec::IntoIter<pb::AllocationUpdate>,
    /// Counted as open, and one of the user's streams, until dropped.
    _held: (Alive, Slot),
}

impl One {
    /// The stream's next message; `None` at its end.
    async fn next(&mut self) -> Option<Result<pb::WatchAllocationResponse, Status>> {
        let wrap = |update| pb::WatchAllocationResponse {
            update: Some(update),
        };
        loop {
            match std::mem::replace(&mut self.state, State::Live) {
                State::Done => {
                    self.state = State::Done;
                    return None;
                }
                State::Snapshot(row) => {
                    self.state = State::Done;
                    let first = Box::pin(updates(&self.watchers.db, vec![events::event_of(&row)]));
                    return match first.await {
                        Ok(first) => {
                            let first = first.into_iter().next()?;
                            if !row.allocation_status.is_terminal() {
                                self.state = State::Live;
                            }
                            Some(Ok(wrap(first)))
                        }
                        Err(e) => Some(Err(Error::from(e).into())),
                    };
                }
                State::Live => {}
            }
            for update in self.pending.by_ref() {
                if step(Some(self.last), update.version) == Step::Seen {
                    continue;
                }
                self.last = update.version;
                if is_terminal(update.allocation_status()) {
                    self.state = State::Done;
                }
                return Some(Ok(wrap(update)));
            }
            // Nothing left to send: no buffer kept while waiting.
            self.pending = Vec::new().into_iter();
            let update = match self.watchers.next(&mut self.registration).await {
                Ok(update) => update,
                Err(stop) => {
                    self.state = State::Done;
                    return stop.status().map(Err);
                }
            };
            let (id, last) = (self.id, self.last);
            match (self.registration.lagged(), step(Some(last), update.version)) {
                (true, _) | (false, Step::Gap { .. }) => {
                    match Box::pin(self.watchers.logged_after(id, last, None)).await {
                        Ok(fresh) => self.pending = fresh.into_iter(),
                        Err(e) => {
                            tracing::warn!(investment_id = %id, error = %e, "watcher cannot read the event log; waiting for the next update");
                        }
                    }
                }
                (false, Step::Next) => {
                    self.pending = vec![pb::AllocationUpdate::clone(&update)].into_iter();
                }
                (false, Step::Seen) => {}
            }
        }
    }
}
