//! Live allocation status for clients (WatchAllocation, WatchAllocations), fanned out by key.
//!
//! The truth is the `allocation_events` log, written in the transaction of every status change.
//! Each status event on NATS carries the complete update (status, version, attempt, error,
//! allocations), so on the normal path nothing touches the database:
//!
//! - one NATS subscription per replica feeds one dispatcher, which finds the event's watchers in
//!   a [`Registry`] keyed by investment (WatchAllocation) and by user (WatchAllocations) and puts
//!   the update in their bounded inboxes;
//! - the dispatcher reads the log once **for all the replica's watchers** when it sees a version
//!   jump on a watched investment, after a NATS reconnect, and every `WATCH_RESYNC` as a safety
//!   net (events NATS dropped), and dispatches what it finds like any event;
//! - a watcher reads the database when its stream opens (the snapshot) and only on its own gap:
//!   its inbox overflowed because its client reads slowly, or it joined between two versions
//!   of an investment the dispatcher had not seen yet.
//!
//! Watchers drop what they already sent (by version), so an update that arrives twice (from
//! NATS and from a resync) is sent once, in order, and memory per watcher is bounded by its
//! inbox (`WATCH_BUFFER`) and its client channel.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use api::v1 as pb;
use async_nats::{Client, connection::State};
use chrono::{DateTime, Utc};
use entity::prelude::*;
use futures::StreamExt;
use ledger::events;
use prost::Message as _;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use service_kit::messaging::Topology;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use crate::{Error, config::WatchArgs, metrics::OpenStream, watch_limit::WatchLimit};

/// Unfinished investments a WatchAllocations snapshot reads per statement; it reads them all,
/// page after page.
pub const SNAPSHOT_PAGE: u64 = 500;

/// How far before its last look the log is read again. An event is stamped when its
/// transaction writes it but becomes visible only at commit, so a change committed just after a
/// look can carry a time before it; transactions here last well under a second (`LOCK_TIMEOUT`
/// bounds the waits), and five seconds covers them with room to spare.
const COMMIT_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// How often the dispatcher looks at the NATS connection, to resync right after a reconnect.
const CONNECTION_POLL: Duration = Duration::from_millis(250);

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

/// A watcher's inbox, bounded: when it is full the update is dropped and the watcher marked
/// lagging, to repair from the log.
struct Inbox {
    tx: mpsc::Sender<Update>,
    lagged: Arc<AtomicBool>,
}

/// The replica's watchers by key.
#[derive(Default)]
struct Registry {
    next: u64,
    watchers: HashMap<Key, HashMap<u64, Inbox>>,
}

impl Registry {
    fn add(&mut self, key: Key, inbox: Inbox) -> u64 {
        self.next += 1;
        self.watchers
            .entry(key)
            .or_default()
            .insert(self.next, inbox);
        self.next
    }

    fn remove(&mut self, key: Key, id: u64) {
        if let Entry::Occupied(mut entry) = self.watchers.entry(key) {
            entry.get_mut().remove(&id);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    /// Whether anyone here watches this investment of this user.
    fn watched(&self, user: Uuid, investment: Uuid) -> bool {
        self.watchers.contains_key(&Key::Investment(investment))
            || self.watchers.contains_key(&Key::User(user))
    }

    /// Hands `update` to the investment's watchers and its user's.
    fn deliver(&self, user: Uuid, investment: Uuid, update: &Update) {
        let keys = [Key::Investment(investment), Key::User(user)];
        for inbox in keys
            .iter()
            .filter_map(|key| self.watchers.get(key))
            .flat_map(HashMap::values)
        {
            if inbox.tx.try_send(Arc::clone(update)).is_err() {
                inbox.lagged.store(true, Ordering::Relaxed);
            }
        }
    }

    fn len(&self) -> usize {
        self.watchers.values().map(HashMap::len).sum()
    }
}

/// A shared registry; a poisoned lock (a panic while holding it) still holds a usable map.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Registry>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A watcher's place in the registry, left when dropped (the stream ended).
struct Registration {
    registry: Shared,
    key: Key,
    id: u64,
    updates: mpsc::Receiver<Update>,
    lagged: Arc<AtomicBool>,
}

impl Registration {
    /// Whether updates were dropped since the last call.
    fn lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::Relaxed)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (key, id) = (self.key, self.id);
        self.registry.with(|r| r.remove(key, id));
    }
}

/// Fans this replica's status events out to its watchers.
#[derive(Clone)]
pub struct Hub {
    registry: Shared,
    inbox: usize,
}

impl Hub {
    /// Subscribes to every status event and dispatches them until `shutdown`, reading the log
    /// for missed ones as the module documentation says.
    pub async fn start(
        nats: &Client,
        db: DatabaseConnection,
        topology: &Topology,
        args: &WatchArgs,
        shutdown: CancellationToken,
    ) -> Result<Hub, async_nats::SubscribeError> {
        let subscription = nats
            .subscribe(format!("{}.status.>", topology.prefix))
            .await?;
        let hub = Hub {
            registry: Shared::default(),
            inbox: args.watch_buffer.max(1),
        };
        let dispatcher = Dispatcher {
            db,
            registry: hub.registry.clone(),
            versions: HashMap::new(),
            watermark: None,
            resync: args.watch_resync,
        };
        tokio::spawn(dispatcher.run(subscription, nats.clone(), shutdown));
        Ok(hub)
    }

    /// Watchers registered on this replica: each open watch stream is one.
    pub fn watchers(&self) -> usize {
        self.registry.with(|r| r.len())
    }

    fn register(&self, key: Key) -> Registration {
        let (tx, updates) = mpsc::channel(self.inbox);
        let lagged = Arc::new(AtomicBool::new(false));
        let inbox = Inbox {
            tx,
            lagged: Arc::clone(&lagged),
        };
        let id = self.registry.with(|r| r.add(key, inbox));
        Registration {
            registry: self.registry.clone(),
            key,
            id,
            updates,
            lagged,
        }
    }
}

/// The replica's single reader of status events.
struct Dispatcher {
    db: DatabaseConnection,
    registry: Shared,
    /// Last version dispatched per watched investment, with its owner.
    versions: HashMap<Uuid, (Uuid, i64)>,
    /// The database time of the last resync; `None` while nobody watches.
    watermark: Option<DateTime<Utc>>,
    resync: Duration,
}

impl Dispatcher {
    async fn run(
        mut self,
        mut subscription: async_nats::Subscriber,
        nats: Client,
        shutdown: CancellationToken,
    ) {
        let mut resync = tokio::time::interval(self.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(CONNECTION_POLL);
        let mut connected = true;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                message = subscription.next() => match message {
                    Some(message) => self.on_event(message).await,
                    None => break,
                },
                _ = resync.tick() => self.resync().await,
                _ = poll.tick() => {
                    let now = nats.connection_state() == State::Connected;
                    if now && !connected {
                        // Events published while we were away are in the log only.
                        self.resync().await;
                    }
                    connected = now;
                }
            }
        }
    }

    async fn on_event(&mut self, message: async_nats::Message) {
        let Ok(event) = pb::AllocationStatusEvent::decode(message.payload) else {
            tracing::debug!("undecodable status event ignored");
            return;
        };
        let (Ok(user), Some(update)) = (Uuid::try_parse(&event.user_id), event.update) else {
            return;
        };
        self.dispatch(user, update).await;
    }

    /// Hands an update to its watchers, in order: a version already dispatched is dropped, and
    /// a jump is filled from the log first (one read for every watcher of the investment).
    async fn dispatch(&mut self, user: Uuid, update: pb::AllocationUpdate) {
        let Ok(investment) = Uuid::try_parse(&update.investment_id) else {
            return;
        };
        if !self.registry.with(|r| r.watched(user, investment)) {
            return;
        }
        if let Some(&(_, last)) = self.versions.get(&investment) {
            if update.version <= last {
                return;
            }
            if update.version > last + 1 {
                self.fill(user, investment, last).await;
            }
        }
        if self
            .versions
            .get(&investment)
            .is_some_and(|&(_, last)| update.version <= last)
        {
            return;
        }
        self.deliver(user, investment, update);
    }

    fn deliver(&mut self, user: Uuid, investment: Uuid, update: pb::AllocationUpdate) {
        self.versions.insert(investment, (user, update.version));
        let update = Arc::new(update);
        self.registry.with(|r| r.deliver(user, investment, &update));
    }

    /// Dispatches the logged changes of `investment` after `last`.
    async fn fill(&mut self, user: Uuid, investment: Uuid, last: i64) {
        let logged = match events::after(&self.db, InvestmentId(investment), last).await {
            Ok(logged) => logged,
            Err(e) => {
                tracing::warn!(%investment, error = %e, "cannot fill a gap from the event log");
                return;
            }
        };
        match updates(&self.db, logged).await {
            Ok(updates) => {
                for update in updates {
                    self.deliver(user, investment, update);
                }
            }
            Err(e) => {
                tracing::warn!(%investment, error = %e, "cannot fill a gap from the event log")
            }
        }
    }

    /// Reads the log for what the watched keys may have missed since the last resync, once for
    /// all watchers; nothing at all while nobody watches.
    async fn resync(&mut self) {
        let watched: Vec<(Uuid, Uuid)> = self
            .versions
            .iter()
            .map(|(investment, (user, _))| (*user, *investment))
            .collect();
        // Forget investments nobody watches any more.
        let gone: Vec<Uuid> = self.registry.with(|r| {
            watched
                .iter()
                .filter(|(user, investment)| !r.watched(*user, *investment))
                .map(|(_, investment)| *investment)
                .collect()
        });
        for investment in gone {
            self.versions.remove(&investment);
        }
        if self.registry.with(|r| r.len()) == 0 {
            self.watermark = None;
            return;
        }
        let looked_at = match events::now(&self.db).await {
            Ok(now) => now,
            Err(e) => {
                tracing::debug!(error = %e, "watch resync skipped: database unavailable");
                return;
            }
        };
        // A first watcher registered within the last interval.
        let since = self
            .watermark
            .unwrap_or(looked_at - chrono::TimeDelta::from_std(self.resync).unwrap_or_default())
            - COMMIT_OVERLAP;
        let logged = match events::since(&self.db, since).await {
            Ok(logged) => logged,
            Err(e) => {
                tracing::debug!(error = %e, "watch resync failed; next time");
                return;
            }
        };
        let logged: Vec<_> = self.registry.with(|r| {
            logged
                .into_iter()
                .filter(|e| r.watched(e.user_id, e.investment_id))
                .collect()
        });
        let owners: Vec<Uuid> = logged.iter().map(|e| e.user_id).collect();
        match updates(&self.db, logged).await {
            Ok(updates) => {
                for (user, update) in owners.into_iter().zip(updates) {
                    self.dispatch(user, update).await;
                }
                self.watermark = Some(looked_at);
            }
            Err(e) => tracing::debug!(error = %e, "watch resync failed; next time"),
        }
    }
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
}

/// The stream type both RPCs return.
pub type UpdateStream<T> = tokio_stream::wrappers::ReceiverStream<Result<T, Status>>;

/// The client is gone (or the server is stopping): the producer ends.
struct Stop;

/// A watch's outgoing side: the channel its gRPC stream reads.
struct Outbox<T> {
    tx: mpsc::Sender<Result<T, Status>>,
}

impl<T> Outbox<T> {
    async fn send(&self, item: T) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop)
    }

    async fn fail(&self, status: Status) {
        let _ = self.tx.send(Err(status)).await;
    }
}

impl Watchers {
    /// Waits for the next update for this watcher; stops when its client leaves or the server
    /// shuts down (then the client is told to watch again).
    async fn next<T>(
        &self,
        registration: &mut Registration,
        client: &Outbox<T>,
    ) -> Result<Update, Stop> {
        tokio::select! {
            () = self.shutdown.cancelled() => {
                client.fail(Status::unavailable("server shutting down; watch again")).await;
                Err(Stop)
            }
            () = client.tx.closed() => Err(Stop),
            update = registration.updates.recv() => update.ok_or(Stop),
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

    /// WatchAllocation: the investment's current state, then every change, ending after the
    /// terminal state. `NOT_FOUND` (before any stream) if it is not the caller's.
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
        let (tx, rx) = mpsc::channel(16);
        let open = OpenStream::new("WatchAllocation");
        let producer = self.clone().produce_one(row, registration, Outbox { tx });
        tokio::spawn(async move {
            let _ = producer.await;
            drop((open, slot));
        });
        Ok(UpdateStream::new(rx))
    }

    async fn produce_one(
        self,
        row: investment::Model,
        mut registration: Registration,
        client: Outbox<pb::WatchAllocationResponse>,
    ) -> Result<(), Stop> {
        let id = row.id;
        let send = |update: pb::AllocationUpdate| {
            client.send(pb::WatchAllocationResponse {
                update: Some(update),
            })
        };
        match updates(&self.db, vec![events::event_of(&row)]).await {
            Ok(mut first) if !first.is_empty() => send(first.remove(0)).await?,
            Ok(_) => return Ok(()),
            Err(e) => {
                client.fail(Error::from(e).into()).await;
                return Err(Stop);
            }
        }
        let mut last = row.status_version;
        let mut terminal = row.allocation_status.is_terminal();
        while !terminal {
            let update = self.next(&mut registration, &client).await?;
            let fresh = if registration.lagged() || update.version > last + 1 {
                match self.logged_after(id, last, None).await {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        tracing::warn!(investment_id = %id, error = %e, "watcher cannot read the event log; waiting for the next update");
                        continue;
                    }
                }
            } else if update.version == last + 1 {
                vec![pb::AllocationUpdate::clone(&update)]
            } else {
                continue;
            };
            for update in fresh {
                if update.version <= last {
                    continue;
                }
                last = update.version;
                terminal = is_terminal(update.allocation_status());
                send(update).await?;
                if terminal {
                    break;
                }
            }
        }
        Ok(())
    }

    /// WatchAllocations: every unfinished investment of the caller as it is now (all of them,
    /// read page by page), then every change of any of the caller's investments, until the
    /// client goes away.
    pub async fn watch_all(
        &self,
        user_id: Uuid,
    ) -> Result<UpdateStream<pb::WatchAllocationsResponse>, Error> {
        let slot = self.limit.take(user_id)?;
        let registration = self.hub.register(Key::User(user_id));
        let started = events::now(&self.db).await?;
        let (tx, rx) = mpsc::channel(16);
        let stream = OpenStream::new("WatchAllocations");
        let producer = self
            .clone()
            .produce_all(user_id, started, registration, Outbox { tx });
        tokio::spawn(async move {
            let _ = producer.await;
            drop((stream, slot));
        });
        Ok(UpdateStream::new(rx))
    }

    /// One page of the user's unfinished investments, oldest first, after `after`.
    async fn unfinished_page(
        &self,
        user_id: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
    ) -> Result<Vec<investment::Model>, DbErr> {
        let mut query = Investment::find()
            .filter(investment::Column::UserId.eq(user_id))
            .filter(
                investment::Column::AllocationStatus
                    .is_in([AllocationStatus::Pending, AllocationStatus::Processing]),
            );
        if let Some((created_at, id)) = after {
            query = query.filter(
                Condition::any()
                    .add(investment::Column::CreatedAt.gt(created_at))
                    .add(
                        Condition::all()
                            .add(investment::Column::CreatedAt.eq(created_at))
                            .add(investment::Column::Id.gt(id)),
                    ),
            );
        }
        query
            .order_by_asc(investment::Column::CreatedAt)
            .order_by_asc(investment::Column::Id)
            .limit(SNAPSHOT_PAGE)
            .all(&self.db)
            .await
    }

    async fn produce_all(
        self,
        user_id: Uuid,
        started: DateTime<Utc>,
        mut registration: Registration,
        client: Outbox<pb::WatchAllocationsResponse>,
    ) -> Result<(), Stop> {
        let mut sent = Sent::default();
        let mut after = None;
        loop {
            let page = match self.unfinished_page(user_id, after).await {
                Ok(page) => page,
                Err(e) => {
                    client.fail(Error::from(e).into()).await;
                    return Err(Stop);
                }
            };
            after = page.last().map(|row| (row.created_at, row.id));
            let full = page.len() as u64 == SNAPSHOT_PAGE;
            match updates(&self.db, page.iter().map(events::event_of).collect()).await {
                Ok(first) => sent.send_all(&client, first).await?,
                Err(e) => {
                    client.fail(Error::from(e).into()).await;
                    return Err(Stop);
                }
            }
            if !full {
                break;
            }
        }
        let since = started - COMMIT_OVERLAP;
        loop {
            let update = self.next(&mut registration, &client).await?;
            let fresh = if registration.lagged() {
                // Updates were dropped: everything of the user's since the newest one sent.
                let from = sent.newest.unwrap_or(started) - COMMIT_OVERLAP;
                match events::of_user_since(&self.db, user_id, from).await {
                    Ok(logged) => updates(&self.db, logged).await,
                    Err(e) => Err(e),
                }
            } else {
                let Ok(id) = Uuid::try_parse(&update.investment_id) else {
                    continue;
                };
                match sent.last.get(&id) {
                    Some(&last) if update.version <= last => continue,
                    Some(&last) if update.version == last + 1 => {
                        Ok(vec![pb::AllocationUpdate::clone(&update)])
                    }
                    Some(&last) => self.logged_after(id, last, None).await,
                    None if update.version == 1 => Ok(vec![pb::AllocationUpdate::clone(&update)]),
                    // First heard of at a later version: its changes since this watch began
                    // (a FAILED one retried, or a create whose first event NATS lost).
                    None => self.logged_after(id, 0, Some(since)).await,
                }
            };
            match fresh {
                Ok(fresh) => sent.send_all(&client, fresh).await?,
                Err(e) => {
                    tracing::warn!(%user_id, error = %e, "watcher cannot read the event log; waiting for the next update");
                }
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
    /// Sends the updates not sent yet, in order per investment.
    async fn send_all(
        &mut self,
        client: &Outbox<pb::WatchAllocationsResponse>,
        updates: Vec<pb::AllocationUpdate>,
    ) -> Result<(), Stop> {
        for update in updates {
            let Ok(id) = Uuid::try_parse(&update.investment_id) else {
                continue;
            };
            let last = self.last.entry(id).or_default();
            if update.version <= *last {
                continue;
            }
            *last = update.version;
            let at = update.updated_at.as_ref().and_then(|t| {
                DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            });
            self.newest = self.newest.max(at);
            client
                .send(pb::WatchAllocationsResponse {
                    update: Some(update),
                })
                .await?;
        }
        Ok(())
    }
}

/// `COMPLETED` and `FAILED` end a watch.
fn is_terminal(status: pb::AllocationStatus) -> bool {
    matches!(
        status,
        pb::AllocationStatus::Completed | pb::AllocationStatus::Failed
    )
}
