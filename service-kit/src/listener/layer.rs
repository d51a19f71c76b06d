//! The request side of a connection's life: each request marks the connection's handshake as
//! done and counts as activity until its response ends; a response still streaming when the
//! connection's age and grace are over ends with `UNAVAILABLE`, so a client resumes on a new
//! connection instead of seeing it cut.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::{ConnInfo, state::Active};

/// Adds [`Tracked`] around a service. Place it inside the grpc-web layer, so that the
/// trailers it may write are translated for browsers too.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionLayer;

impl<S> Layer<S> for ConnectionLayer {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

/// Tells each request's connection that it is in use.
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Body,
{
    type Response = Response<TrackedBody<RB>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = request
            .extensions()
            .get::<ConnInfo>()
            .map(|info| std::sync::Arc::clone(&info.state));
        let (active, end_at) = match state {
            Some(state) => {
                state.requested();
                (Some(state.begin()), state.streams_end_at())
            }
            None => (None, None),
        };
        TrackedFuture {
            inner: self.inner.call(request),
            active,
            end: end_at.map(|at| Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of a tracked request.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        active: Option<Active>,
        end: Option<Pin<Box<Sleep>>>,
    }
}

impl<F, RB, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<TrackedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let active = this.active.take();
        let end = this.end.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            _active: active,
            end,
            ended: false,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its connection active until it ends, and ends itself with
    /// `UNAVAILABLE` at the connection's end of life.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _active: Option<Active>,
        end: Option<Pin<Box<Sleep>>>,
        ended: bool,
    }
}

/// The trailers of a stream ended because its connection reached its maximum age.
fn aged_out() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("14"));
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("connection reached its maximum age; reconnect to resume"),
    );
    trailers
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let polled = this.inner.poll_frame(cx);
        if polled.is_pending()
            && let Some(end) = this.end.as_mut()
            && end.as_mut().poll(cx).is_ready()
        {
            *this.ended = true;
            return Poll::Ready(Some(Ok(Frame::trailers(aged_out()))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
