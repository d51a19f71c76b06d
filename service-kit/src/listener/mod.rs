//! Accepting connections so that holding one costs a client something: a cap on open
//! connections, a cap per client address, a handshake deadline that holds until the first
//! complete request (TLS, HTTP/2 preface and headers), a bounded set of connections still in
//! their handshake (a new one closes the oldest of the address holding the most, so silent
//! sockets cannot fill the slots that working clients need), an idle timeout, and a maximum
//! age.
//!
//! The accept loop only accepts and counts; each connection's TLS handshake runs in a task of
//! its own, so a slow handshake never delays the next accept.

mod connection;
mod layer;
mod state;

use std::{io, sync::Arc, time::Duration};

use futures::Stream;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

pub use connection::{ConnInfo, Connection};
pub use layer::ConnectionLayer;

use self::{
    connection::{Deadlines, Io},
    state::{ConnState, Handshakes, PerAddress},
};
use crate::tls::Acceptor;

/// How long a connection may be cut after its streams were ended at age + grace.
const CUT_MARGIN: Duration = Duration::from_secs(1);

/// The bounds on connections (README: Security).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections; at the cap accepting pauses until one closes.
    pub max_connections: usize,
    /// Open connections from one client address (0: no cap).
    pub max_per_address: usize,
    /// Connections that have not made a complete request yet.
    pub max_handshaking: usize,
    /// From accept to the first complete request.
    pub handshake_timeout: Duration,
    /// Closed after this long with no request in progress.
    pub idle_timeout: Option<Duration>,
    /// Maximum age and the grace that follows it.
    pub max_age: Option<(Duration, Duration)>,
}

/// Accepts on `listener` until `shutdown` (or until the server stops reading), yielding
/// connections ready for HTTP: after their TLS handshake when `tls` is set.
pub fn incoming(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Acceptor>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Connection, io::Error>> {
    let (ready, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, limits, tls, ready, shutdown));
    futures::StreamExt::map(ReceiverStream::new(rx), Ok)
}

async fn accept_loop(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Acceptor>,
    ready: mpsc::Sender<Connection>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_per_address);
    let handshakes = Handshakes::new(limits.max_handshaking);
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => return,
            () = ready.closed() => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let (tcp, remote) = tokio::select! {
            () = shutdown.cancelled() => return,
            () = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: let it pass rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(address_slot) = per_address.try_acquire(remote.ip()) else {
            tracing::debug!(%remote, "connection refused: too many from this address");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let handshake = handshakes.register(remote.ip());
        let evicted = handshake.evicted.clone();
        let accepted_at = Instant::now();
        let deadlines = Deadlines {
            handshake: accepted_at + limits.handshake_timeout,
            idle: limits.idle_timeout,
            cut: limits
                .max_age
                .map(|(age, grace)| accepted_at + age + grace + CUT_MARGIN),
        };
        let state = Arc::new(ConnState::new(handshake, limits.max_age));
        let tls = tls.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let io = match tls {
                None => Io::Plain(tcp),
                Some(tls) => tokio::select! {
                    () = evicted.cancelled() => return,
                    () = tokio::time::sleep_until(deadlines.handshake) => return,
                    accepted = tls.accept(tcp) => match accepted {
                        Ok(stream) => Io::Tls(Box::new(stream)),
                        Err(e) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                    },
                },
            };
            let connection = Connection::new(
                io,
                state,
                evicted.cancelled_owned(),
                deadlines,
                (slot, address_slot),
            );
            // Err: the server stopped meanwhile; dropping the connection closes it.
            let _ = ready.send(connection).await;
        });
    }
}
