//! One accepted connection as the HTTP server reads it: plain TCP or TLS, closed by us when it
//! has made no complete request by its handshake deadline, when it is evicted from the
//! handshake slots, when it has been idle too long, or past its maximum age and grace.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls_pki_types::CertificateDer;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::OwnedSemaphorePermit,
    time::{Instant, Sleep},
};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::transport::server::Connected;

use super::state::{AddressSlot, ConnState};

/// What a request learns of its connection (tonic puts it in the request's extensions).
#[derive(Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    /// The client's certificate chain, under mutual TLS.
    pub peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    pub(crate) state: Arc<ConnState>,
}

pub(super) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Deadlines a connection lives under, besides its requests.
pub(super) struct Deadlines {
    pub(super) handshake: Instant,
    pub(super) idle: Option<Duration>,
    /// Past this the connection is cut, whatever it is doing (age + grace + a margin).
    pub(super) cut: Option<Instant>,
}

/// Until the first request: the handshake deadline, and the eviction of this connection.
type Handshaking = (Pin<Box<Sleep>>, Pin<Box<WaitForCancellationFutureOwned>>);

/// An accepted connection; holds its server slot and its address slot until it closes.
pub struct Connection {
    io: Io,
    info: ConnInfo,
    handshake: Option<Handshaking>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    cut: Option<Pin<Box<Sleep>>>,
    _slots: (OwnedSemaphorePermit, AddressSlot),
}

impl Connection {
    pub(super) fn new(
        io: Io,
        state: Arc<ConnState>,
        evicted: WaitForCancellationFutureOwned,
        deadlines: Deadlines,
        slots: (OwnedSemaphorePermit, AddressSlot),
    ) -> Self {
        let (remote, peer_certs) = match &io {
            Io::Plain(tcp) => (tcp.peer_addr().ok(), None),
            Io::Tls(tls) => {
                let (tcp, session) = tls.get_ref();
                let certs = session
                    .peer_certificates()
                    .map(|certs| Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect()));
                (tcp.peer_addr().ok(), certs)
            }
        };
        let idle = deadlines
            .idle
            .map(|idle| (idle, Box::pin(tokio::time::sleep(idle))));
        Self {
            io,
            info: ConnInfo {
                remote,
                peer_certs,
                state,
            },
            handshake: Some((
                Box::pin(tokio::time::sleep_until(deadlines.handshake)),
                Box::pin(evicted),
            )),
            idle,
            cut: deadlines
                .cut
                .map(|at| Box::pin(tokio::time::sleep_until(at))),
            _slots: slots,
        }
    }

    /// Why the connection must close now, if it must; registers wake-ups for the deadlines.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        if let Some((deadline, evicted)) = self.handshake.as_mut() {
            if self.info.state.has_requested() {
                self.handshake = None;
            } else if evicted.as_mut().poll(cx).is_ready() {
                return Some("closed to make room for a new connection still in its handshake");
            } else if deadline.as_mut().poll(cx).is_ready() {
                return Some("no complete request within the handshake timeout");
            }
        }
        if let Some(cut) = self.cut.as_mut()
            && cut.as_mut().poll(cx).is_ready()
        {
            return Some("past the maximum connection age and its grace");
        }
        if let Some((idle, sleep)) = self.idle.as_mut() {
            while sleep.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                match self.info.state.idle_since() {
                    Some(since) if since + *idle <= now => {
                        return Some("idle for longer than the idle timeout");
                    }
                    Some(since) => sleep.as_mut().reset(since + *idle),
                    None => sleep.as_mut().reset(now + *idle),
                }
            }
        }
        None
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = match &mut this.io {
            Io::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        };
        if polled.is_pending()
            && let Some(why) = this.expired(cx)
        {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(tcp) => tcp.is_write_vectored(),
            Io::Tls(tls) => tls.is_write_vectored(),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}
