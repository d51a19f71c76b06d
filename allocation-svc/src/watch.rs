//! Live allocation status for clients (WatchAllocation, WatchAllocations).
//!
//! The truth is the `allocation_events` log, written in the transaction of every status
//! change; NATS status events only say "look again". One NATS subscription per replica feeds
//! a bounded broadcast [`Hub`]; each watcher is a spawned producer that re-reads the log when
//! woken (or every `WATCH_RESYNC` anyway), so it misses nothing whichever replica did the
//! allocation and whatever NATS dropped. A watcher that falls behind (slow client, lagging
//! broadcast) just reads the log later: memory stays bounded.

use std::collections::HashMap;

use api::v1 as pb;
use async_nats::Client;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use futures::StreamExt;
use ledger::events;
use prost::Message as _;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use service_kit::messaging::Topology;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use crate::metrics::OpenStream;
use crate::{Error, config::WatchArgs};

/// Most non-terminal investments a WatchAllocations stream starts with.
pub const INITIAL_LIMIT: u64 = 500;

/// How far before its last look a `WatchAllocations` stream reads the event log again. An event
/// is stamped when its transaction writes it but becomes visible only at commit, so a change
/// committed just after a look can carry a time before it; transactions here last well under
/// a second (`LOCK_TIMEOUT` bounds the waits), and five seconds covers them with room to spare.
const COMMIT_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// A status change somewhere: who, which investment, which version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Owner of the investment.
    pub user_id: Uuid,
    /// The investment.
    pub investment_id: Uuid,
    /// Its new `status_version`.
    pub version: i64,
}

/// Fans this replica's status events out to its watchers.
#[derive(Clone)]
pub struct Hub {
    notices: broadcast::Sender<Notice>,
}

impl Hub {
    /// Subscribes to every status event and relays them until `shutdown`.
    pub async fn start(
        nats: &Client,
        topology: &Topology,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> Result<Hub, async_nats::SubscribeError> {
        let mut subscription = nats
            .subscribe(format!("{}.status.>", topology.prefix))
            .await?;
        let (notices, _) = broadcast::channel(capacity.max(1));
        let sender = notices.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = subscription.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                let Ok(event) = pb::AllocationStatusEvent::decode(message.payload) else {
                    tracing::debug!(subject = %message.subject, "undecodable status event ignored");
                    continue;
                };
                let notice = event.update.and_then(|u| {
                    Some(Notice {
                        user_id: Uuid::try_parse(&event.user_id).ok()?,
                        investment_id: Uuid::try_parse(&u.investment_id).ok()?,
                        version: u.version,
                    })
                });
                if let Some(notice) = notice {
                    // No watcher listening is fine.
                    let _ = sender.send(notice);
                }
            }
        });
        Ok(Hub { notices })
    }

    /// Producers currently listening: each open watch stream holds one.
    pub fn watchers(&self) -> usize {
        self.notices.receiver_count()
    }

    /// A receiver of every notice from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}

/// What a watcher needs; cheap to clone.
#[derive(Clone)]
pub struct Watchers {
    /// Where the event log is.
    pub db: DatabaseConnection,
    /// Where notices come from.
    pub hub: Hub,
    /// Resync interval and buffers.
    pub args: WatchArgs,
    /// Ends every stream when the server stops.
    pub shutdown: CancellationToken,
}

/// The stream type both RPCs return.
pub type UpdateStream<T> = tokio_stream::wrappers::ReceiverStream<Result<T, Status>>;

/// What a producer learned when it tried to send.
enum Sent {
    Ok,
    ClientGone,
}

async fn send<T>(tx: &mpsc::Sender<Result<T, Status>>, item: T) -> Sent {
    match tx.send(Ok(item)).await {
        Ok(()) => Sent::Ok,
        Err(_) => Sent::ClientGone,
    }
}

/// Sends one WatchAllocation update.
async fn send_one(
    tx: &mpsc::Sender<Result<pb::WatchAllocationResponse, Status>>,
    update: pb::AllocationUpdate,
) -> Sent {
    let response = pb::WatchAllocationResponse {
        update: Some(update),
    };
    send(tx, response).await
}

/// Sends WatchAllocations updates, remembering the last version sent per investment.
async fn send_tracked(
    tx: &mpsc::Sender<Result<pb::WatchAllocationsResponse, Status>>,
    last: &mut HashMap<Uuid, i64>,
    updates: Vec<pb::AllocationUpdate>,
) -> Sent {
    for update in updates {
        if let Ok(id) = Uuid::try_parse(&update.investment_id) {
            let seen = last.entry(id).or_default();
            *seen = (*seen).max(update.version);
        }
        let response = pb::WatchAllocationsResponse {
            update: Some(update),
        };
        if let Sent::ClientGone = send(tx, response).await {
            return Sent::ClientGone;
        }
    }
    Sent::Ok
}

/// Why a producer woke up.
enum Wake {
    Look,
    Skip,
    Stop,
}

impl Watchers {
    /// WatchAllocation: the investment's current state, then every change, ending after the
    /// terminal state. `NOT_FOUND` (before any stream) if it is not the caller's.
    pub async fn watch_one(
        &self,
        user_id: Uuid,
        investment_id: Uuid,
    ) -> Result<UpdateStream<pb::WatchAllocationResponse>, Error> {
        // Subscribe before reading, so no change slips between the read and the first notice.
        let notices = self.hub.subscribe();
        let row = investment::find_owned(UserId(user_id), InvestmentId(investment_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound("investment"))?;
        let (tx, rx) = mpsc::channel(16);
        let open = OpenStream::new("WatchAllocation");
        let producer = self.clone().produce_one(row, notices, tx);
        tokio::spawn(async move {
            producer.await;
            drop(open);
        });
        Ok(UpdateStream::new(rx))
    }

    async fn produce_one(
        self,
        row: investment::Model,
        mut notices: broadcast::Receiver<Notice>,
        tx: mpsc::Sender<Result<pb::WatchAllocationResponse, Status>>,
    ) {
        let id = row.id;
        let update = match self.with_allocations(vec![events::event_of(&row)]).await {
            Ok(mut updates) => updates.remove(0),
            Err(e) => {
                let _ = tx.send(Err(Error::from(e).into())).await;
                return;
            }
        };
        if let Sent::ClientGone = send_one(&tx, update).await {
            return;
        }
        let mut last = row.status_version;
        let mut terminal = row.allocation_status.is_terminal();
        let mut resync = tokio::time::interval(self.args.watch_resync);
        while !terminal {
            match self
                .wake(&mut notices, &mut resync, &tx, |n| {
                    n.investment_id == id && n.version > last
                })
                .await
            {
                Wake::Stop => return,
                Wake::Skip => continue,
                Wake::Look => {}
            }
            let fresh = match events::after(&self.db, InvestmentId(id), last).await {
                Ok(fresh) => fresh,
                Err(e) => {
                    tracing::warn!(investment_id = %id, error = %e, "watcher cannot read the event log; retrying");
                    continue;
                }
            };
            let Ok(updates) = self.with_allocations(fresh).await else {
                continue;
            };
            for update in updates {
                last = update.version;
                terminal = is_terminal(update.allocation_status());
                if let Sent::ClientGone = send_one(&tx, update).await {
                    return;
                }
                if terminal {
                    break;
                }
            }
        }
    }

    /// WatchAllocations: the caller's unfinished investments as they are now, then every
    /// change of any of the caller's investments, until the client goes away.
    pub async fn watch_all(
        &self,
        user_id: Uuid,
    ) -> Result<UpdateStream<pb::WatchAllocationsResponse>, Error> {
        let notices = self.hub.subscribe();
        let started: DateTime<Utc> = events::now(&self.db).await?;
        let open = Investment::find()
            .filter(investment::Column::UserId.eq(user_id))
            .filter(
                investment::Column::AllocationStatus
                    .is_in([AllocationStatus::Pending, AllocationStatus::Processing]),
            )
            .order_by_asc(investment::Column::CreatedAt)
            .limit(INITIAL_LIMIT)
            .all(&self.db)
            .await?;
        let (tx, rx) = mpsc::channel(16);
        let stream = OpenStream::new("WatchAllocations");
        let producer = self
            .clone()
            .produce_all(user_id, started, open, notices, tx);
        tokio::spawn(async move {
            producer.await;
            drop(stream);
        });
        Ok(UpdateStream::new(rx))
    }

    async fn produce_all(
        self,
        user_id: Uuid,
        started: DateTime<Utc>,
        open: Vec<investment::Model>,
        mut notices: broadcast::Receiver<Notice>,
        tx: mpsc::Sender<Result<pb::WatchAllocationsResponse, Status>>,
    ) {
        let mut last: HashMap<Uuid, i64> = HashMap::new();
        let first: Vec<_> = open.iter().map(events::event_of).collect();
        let Ok(updates) = self.with_allocations(first).await else {
            let _ = tx
                .send(Err(Status::unavailable("database unavailable, retry")))
                .await;
            return;
        };
        if let Sent::ClientGone = send_tracked(&tx, &mut last, updates).await {
            return;
        }
        // Events are read from a little before the last look; `last` drops what was already
        // sent.
        let mut since = started - COMMIT_OVERLAP;
        let mut resync = tokio::time::interval(self.args.watch_resync);
        loop {
            match self
                .wake(&mut notices, &mut resync, &tx, |n| n.user_id == user_id)
                .await
            {
                Wake::Stop => return,
                Wake::Skip => continue,
                Wake::Look => {}
            }
            let looked_at = match events::now(&self.db).await {
                Ok(now) => now,
                Err(_) => continue,
            };
            let Ok(fresh) = events::of_user_since(&self.db, user_id, since).await else {
                continue;
            };
            let fresh: Vec<_> = fresh
                .into_iter()
                .filter(|e| last.get(&e.investment_id).is_none_or(|&v| e.version > v))
                .collect();
            let Ok(updates) = self.with_allocations(fresh).await else {
                continue;
            };
            if let Sent::ClientGone = send_tracked(&tx, &mut last, updates).await {
                return;
            }
            since = looked_at - COMMIT_OVERLAP;
        }
    }

    /// Waits for a reason to look at the log: a matching notice, a lagging broadcast, or the
    /// resync tick. Stops when the client leaves or the server shuts down.
    async fn wake<T>(
        &self,
        notices: &mut broadcast::Receiver<Notice>,
        resync: &mut tokio::time::Interval,
        tx: &mpsc::Sender<Result<T, Status>>,
        relevant: impl Fn(&Notice) -> bool,
    ) -> Wake {
        tokio::select! {
            () = self.shutdown.cancelled() => {
                let _ = tx.send(Err(Status::unavailable("server shutting down; watch again"))).await;
                Wake::Stop
            }
            () = tx.closed() => Wake::Stop,
            _ = resync.tick() => Wake::Look,
            notice = notices.recv() => match notice {
                Ok(notice) if relevant(&notice) => Wake::Look,
                Ok(_) => Wake::Skip,
                // Fell behind: the log has what the broadcast dropped.
                Err(broadcast::error::RecvError::Lagged(_)) => Wake::Look,
                Err(broadcast::error::RecvError::Closed) => Wake::Stop,
            },
        }
    }

    /// Updates for `events`, with the allocations of the completed ones.
    async fn with_allocations(
        &self,
        events: Vec<allocation_event::Model>,
    ) -> Result<Vec<pb::AllocationUpdate>, DbErr> {
        let completed = events
            .iter()
            .filter(|e| e.allocation_status == AllocationStatus::Completed)
            .map(|e| InvestmentId(e.investment_id));
        let mut allocations = wire::allocations(events::allocations(&self.db, completed).await?);
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
}

/// `COMPLETED` and `FAILED` end a watch.
fn is_terminal(status: pb::AllocationStatus) -> bool {
    matches!(
        status,
        pb::AllocationStatus::Completed | pb::AllocationStatus::Failed
    )
}
