//! The replica's one reader of status events: a NATS subscription, the log read for what it
//! missed (version jumps, reconnects, every `WATCH_RESYNC`), and delivery to the registry.

use std::{collections::HashMap, sync::Arc, time::Duration};

use allocation_bus::Topology;
use api::v1 as pb;
use async_nats::{Client, connection::State};
use chrono::{DateTime, Utc};
use entity::prelude::*;
use futures::StreamExt;
use ledger::events;
use prost::Message as _;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    COMMIT_OVERLAP, Key,
    registry::{Registration, Shared},
    updates,
    versions::{Step, step},
};
use crate::config::WatchArgs;

/// How often the reader looks at the NATS connection, to resync right after a reconnect.
const CONNECTION_POLL: Duration = Duration::from_millis(250);

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
        let reader = Reader {
            db,
            registry: hub.registry.clone(),
            versions: HashMap::new(),
            watermark: None,
            resync: args.watch_resync,
        };
        tokio::spawn(reader.run(subscription, nats.clone(), shutdown));
        Ok(hub)
    }

    /// Watchers registered on this replica: each open watch stream is one.
    pub fn watchers(&self) -> usize {
        self.registry.with(|r| r.len())
    }

    pub(super) fn register(&self, key: Key) -> Registration {
        self.registry.register(key, self.inbox)
    }
}

/// The replica's single reader of status events.
struct Reader {
    db: DatabaseConnection,
    registry: Shared,
    /// Last version dispatched per watched investment, with its owner.
    versions: HashMap<Uuid, (Uuid, i64)>,
    /// The database time of the last resync; `None` while nobody watches.
    watermark: Option<DateTime<Utc>>,
    resync: Duration,
}

impl Reader {
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
        let last = |hub: &Self| hub.versions.get(&investment).map(|&(_, last)| last);
        // An investment first seen here goes to its watchers as it is: each has its own start.
        if let Some(known) = last(self) {
            match step(Some(known), update.version) {
                Step::Seen => return,
                Step::Gap { after } => self.fill(user, investment, after).await,
                Step::Next => {}
            }
        }
        if step(last(self), update.version) == Step::Seen {
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
