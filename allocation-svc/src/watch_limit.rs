//! The per-user cap on open watch streams (`WATCH_MAX_PER_USER`): without it one token could
//! hold any number of streams, each with its inbox and its share of the watch pool.
//!
//! A [`Slot`] is taken before a stream opens and given back when it is dropped: with the
//! stream (it reached its end, the client went away, the server is stopping) or when the RPC
//! fails before any stream (`NOT_FOUND`). The count is this
//! replica's: each replica caps what it holds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use uuid::Uuid;

use crate::Error;

/// Open streams by user; cheap to clone.
#[derive(Clone)]
pub struct WatchLimit {
    max: usize,
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl WatchLimit {
    /// At most `max` streams per user (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// A slot for one more stream of `user`, or `RESOURCE_EXHAUSTED` at the cap.
    pub fn take(&self, user: Uuid) -> Result<Slot, Error> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user).or_default();
        if *count >= self.max {
            return Err(Error::TooManyWatches(self.max));
        }
        *count += 1;
        Ok(Slot {
            limit: self.clone(),
            user,
        })
    }

    /// Streams `user` holds open now.
    pub fn open(&self, user: Uuid) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&user).copied().unwrap_or(0)
    }
}

/// One open stream of a user, given back when dropped.
pub struct Slot {
    limit: WatchLimit,
    user: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_is_refused_until_a_slot_is_dropped_and_others_are_not() {
        let limit = WatchLimit::new(2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = limit.take(a).expect("first");
        let _second = limit.take(a).expect("second");
        assert!(matches!(limit.take(a), Err(Error::TooManyWatches(2))));
        let _other = limit.take(b).expect("another user");
        drop(first);
        assert_eq!(limit.open(a), 1);
        limit.take(a).expect("a slot came back");
    }
}
