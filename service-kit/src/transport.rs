//! What one client can make a server hold, bounded: connections (how many, and those that never
//! speak), concurrent requests, message sizes, and browsers from other origins (grpc-web with CORS).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderName, HeaderValue, Method, Response};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::OwnedSemaphorePermit,
    time::Sleep,
};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Why the browser settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    /// `*` would let any web page call the API with a user's token.
    #[error("CORS_ALLOWED_ORIGINS must list origins; a wildcard is refused")]
    Wildcard,
    /// Not a valid header value.
    #[error("CORS_ALLOWED_ORIGINS has an invalid origin: {0:?}")]
    Invalid(String),
}

/// CORS for grpc-web callers from `origins` (exact matches, never a wildcard): the preflight is
/// answered, and scripts may read the gRPC status, message and details.
pub fn cors(origins: &[String]) -> Result<CorsLayer, CorsError> {
    let origins = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| match o {
            "*" => Err(CorsError::Wildcard),
            o => HeaderValue::from_str(o).map_err(|_| CorsError::Invalid(o.to_owned())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let header = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("authorization"),
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("traceparent"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(600)))
}

/// tonic's codec answers an over-size message with `OUT_OF_RANGE`; the conventional code for a
/// request too large is `RESOURCE_EXHAUSTED`. Our handlers never answer `OUT_OF_RANGE`
/// themselves, so every one in a response head is the codec's limit.
pub fn size_limit_status<B>(mut response: Response<B>) -> Response<B> {
    let out_of_range = HeaderValue::from_static("11");
    if response.headers().get("grpc-status") == Some(&out_of_range) {
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

/// An accepted TCP connection that holds one of the server's connection slots until it closes,
/// and must send its first bytes within a deadline or is closed: a client cannot hold
/// connections open by connecting and saying nothing.
pub struct Connection {
    stream: TcpStream,
    deadline: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Wraps an accepted connection holding `slot`.
    pub fn new(stream: TcpStream, handshake_timeout: Duration, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            deadline: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            _slot: slot,
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            // It spoke: no deadline from now on (HTTP/2 keepalive watches it).
            self.deadline = None;
            return polled;
        }
        if polled.is_pending()
            && let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no request within the handshake timeout",
            )));
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_origin_is_refused() {
        assert!(matches!(cors(&["*".into()]), Err(CorsError::Wildcard)));
        assert!(cors(&["http://127.0.0.1:5173".into(), String::new()]).is_ok());
    }
}
