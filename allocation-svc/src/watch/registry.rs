//! The replica's watchers by key, each with its bounded inbox.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Key, Update};

/// A watcher's inbox, bounded: when it is full the update is dropped and the watcher marked
/// lagging, to repair from the log.
struct Inbox {
    tx: mpsc::Sender<Update>,
    lagged: Arc<AtomicBool>,
}

/// The replica's watchers by key.
#[derive(Default)]
pub(super) struct Registry {
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
    pub(super) fn watched(&self, user: Uuid, investment: Uuid) -> bool {
        self.watchers.contains_key(&Key::Investment(investment))
            || self.watchers.contains_key(&Key::User(user))
    }

    /// Hands `update` to the investment's watchers and its user's.
    pub(super) fn deliver(&self, user: Uuid, investment: Uuid, update: &Update) {
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

    pub(super) fn len(&self) -> usize {
        self.watchers.values().map(HashMap::len).sum()
    }
}

/// A shared registry; a poisoned lock (a panic while holding it) still holds a usable map.
#[derive(Clone, Default)]
pub(super) struct Shared(Arc<Mutex<Registry>>);

impl Shared {
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Registers a watcher of `key` with an inbox of `capacity` updates.
    pub(super) fn register(&self, key: Key, capacity: usize) -> Registration {
        let (tx, updates) = mpsc::channel(capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let inbox = Inbox {
            tx,
            lagged: Arc::clone(&lagged),
        };
        let id = self.with(|r| r.add(key, inbox));
        Registration {
            registry: self.clone(),
            key,
            id,
            updates,
            lagged,
        }
    }
}

/// A watcher's place in the registry, left when dropped (the stream ended).
pub(super) struct Registration {
    registry: Shared,
    key: Key,
    id: u64,
    updates: mpsc::Receiver<Update>,
    lagged: Arc<AtomicBool>,
}

impl Registration {
    /// Whether updates were dropped since the last call.
    pub(super) fn lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::Relaxed)
    }

    /// The next update in the inbox.
    pub(super) async fn recv(&mut self) -> Option<Update> {
        self.updates.recv().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (key, id) = (self.key, self.id);
        self.registry.with(|r| r.remove(key, id));
    }
}
