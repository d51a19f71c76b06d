//! What the accept loop, a connection's I/O and its requests share about that connection:
//! whether it has made a request yet (its handshake slot), how many requests are in progress
//! (idle or not), and when it opened (its age).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A poisoned lock only means another connection's task panicked; the counts are still right.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Connections that have not yet made a request, at most `cap`. When full, a new one closes
/// the oldest of the address holding the most, so sockets that never speak cannot keep out a
/// client that does, however many the flood (behind one load balancer: the oldest overall).
pub(super) struct Handshakes {
    cap: usize,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    next: u64,
    len: usize,
    by_address: HashMap<IpAddr, VecDeque<(u64, CancellationToken)>>,
}

impl Waiting {
    /// Closes the oldest connection of the address with the most (the oldest such address on
    /// a tie).
    fn evict_one(&mut self) {
        let crowded = self
            .by_address
            .iter()
            .filter_map(|(ip, queue)| Some((*ip, queue.len(), queue.front()?.0)))
            .max_by_key(|&(_, len, oldest)| (len, std::cmp::Reverse(oldest)))
            .map(|(ip, _, _)| ip);
        let Some(ip) = crowded else { return };
        if let Some(queue) = self.by_address.get_mut(&ip)
            && let Some((_, evicted)) = queue.pop_front()
        {
            evicted.cancel();
            self.len -= 1;
            if queue.is_empty() {
                self.by_address.remove(&ip);
            }
        }
    }
}

impl Handshakes {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            waiting: Mutex::new(Waiting::default()),
        })
    }

    /// A slot for a new connection from `ip`; its token is cancelled if it is evicted.
    pub(super) fn register(self: &Arc<Self>, ip: IpAddr) -> Handshake {
        let mut waiting = lock(&self.waiting);
        if waiting.len >= self.cap {
            waiting.evict_one();
        }
        let id = waiting.next;
        waiting.next += 1;
        waiting.len += 1;
        let evicted = CancellationToken::new();
        waiting
            .by_address
            .entry(ip)
            .or_default()
            .push_back((id, evicted.clone()));
        Handshake {
            id,
            ip,
            evicted,
            registry: Arc::clone(self),
        }
    }
}

/// A connection's place among those in their handshake; leaves it when dropped.
pub(super) struct Handshake {
    id: u64,
    ip: IpAddr,
    pub(super) evicted: CancellationToken,
    registry: Arc<Handshakes>,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut waiting = lock(&self.registry.waiting);
        let Some(queue) = waiting.by_address.get_mut(&self.ip) else {
            return;
        };
        let Some(at) = queue.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        queue.remove(at);
        if queue.is_empty() {
            waiting.by_address.remove(&self.ip);
        }
        waiting.len -= 1;
    }
}

/// Open connections per client address, each at most `cap` (0: no cap).
pub(super) struct PerAddress {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    pub(super) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        if self.cap == 0 {
            return Some(AddressSlot(None));
        }
        let mut counts = lock(&self.counts);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Some((ip, Arc::clone(self)))))
    }
}

/// One connection counted against its address until dropped.
pub(super) struct AddressSlot(Option<(IpAddr, Arc<PerAddress>)>);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((ip, registry)) = self.0.take() {
            let mut counts = lock(&registry.counts);
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// The life of one connection as its requests see it.
pub(crate) struct ConnState {
    handshake: Mutex<Option<Handshake>>,
    requested: AtomicBool,
    active: AtomicUsize,
    last_active: Mutex<Instant>,
    /// When open streams are ended (`MAX_CONNECTION_AGE` + grace), if connections age.
    streams_end_at: Option<Instant>,
}

impl ConnState {
    pub(super) fn new(handshake: Handshake, age: Option<(Duration, Duration)>) -> Self {
        let now = Instant::now();
        Self {
            handshake: Mutex::new(Some(handshake)),
            requested: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            last_active: Mutex::new(now),
            streams_end_at: age.map(|(age, grace)| now + age + grace),
        }
    }

    /// A complete request arrived: the handshake is over, its slot free for another.
    pub(crate) fn requested(&self) {
        if !self.requested.swap(true, Ordering::AcqRel) {
            lock(&self.handshake).take();
        }
    }

    pub(super) fn has_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Counts a request in progress until the guard is dropped (its response ended).
    pub(crate) fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        Active(Arc::clone(self))
    }

    /// Since when nothing is in progress, or `None` while a request is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        let last = *lock(&self.last_active);
        (self.active.load(Ordering::Acquire) == 0).then_some(last)
    }

    pub(crate) fn streams_end_at(&self) -> Option<Instant> {
        self.streams_end_at
    }
}

/// A request in progress on a connection.
pub(crate) struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        *lock(&self.0.last_active) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_handshake_set_evicts_the_oldest_of_the_most_crowded_address() {
        let ip = |last| IpAddr::from([127, 0, 0, last]);
        let handshakes = Handshakes::new(3);
        let client = handshakes.register(ip(1));
        let flood: Vec<_> = (0..2).map(|_| handshakes.register(ip(2))).collect();
        let more = handshakes.register(ip(2));
        assert!(
            flood[0].evicted.is_cancelled(),
            "the flood's oldest goes first"
        );
        assert!(!client.evicted.is_cancelled(), "the lone client stays");
        assert!(!flood[1].evicted.is_cancelled() && !more.evicted.is_cancelled());
        drop(flood);
        // One each: the oldest overall goes.
        let _b = handshakes.register(ip(3));
        let _c = handshakes.register(ip(4));
        assert!(client.evicted.is_cancelled());
        assert!(!more.evicted.is_cancelled());
    }

    #[test]
    fn the_per_address_cap_counts_each_address_and_frees_on_drop() {
        let ip = |last| IpAddr::from([127, 0, 0, last]);
        let caps = PerAddress::new(2);
        let a = caps.try_acquire(ip(2));
        let b = caps.try_acquire(ip(2));
        assert!(a.is_some() && b.is_some());
        assert!(caps.try_acquire(ip(2)).is_none());
        assert!(caps.try_acquire(ip(3)).is_some());
        drop(a);
        assert!(caps.try_acquire(ip(2)).is_some());
        let off = PerAddress::new(0);
        let many: Vec<_> = (0..10).map(|_| off.try_acquire(ip(2))).collect();
        assert!(many.iter().all(Option::is_some));
    }
}
