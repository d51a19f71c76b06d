//! A tower layer around every gRPC call: a span continuing the caller's W3C trace context
//! (`traceparent` metadata), and metrics counting calls by service, method and status code and
//! timing them to the end of their response (the status of a gRPC call is in its trailers, so
//! the body is watched to the end). Only the methods a port serves get labels of their own:
//! any other path a client sends is counted as `unknown`, so clients cannot grow the metrics.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prost::Message as _;
use tonic::Code;
use tower::{Layer, Service};
use tracing::{Instrument as _, instrument::Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::metrics::{Common, GrpcCall, GrpcMethod};

/// The label of every call to something a port does not serve.
const UNKNOWN: &str = "unknown";

/// The paths (`/package.Service/Method`) a port serves, from the descriptors it registers for
/// reflection.
#[derive(Debug, Default)]
pub struct Methods(HashSet<String>);

impl Methods {
    /// Every method of `services` described in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s; one that does not decode contributes nothing).
    pub fn of(services: &[&str], descriptor_sets: &[&[u8]]) -> Self {
        let mut paths = HashSet::new();
        for set in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let name = format!("{package}.{}", service.name.unwrap_or_default());
                    if !services.contains(&name.as_str()) {
                        continue;
                    }
                    for method in service.method {
                        paths.insert(format!("/{name}/{}", method.name.unwrap_or_default()));
                    }
                }
            }
        }
        Self(paths)
    }

    fn contains(&self, path: &str) -> bool {
        self.0.contains(path)
    }
}

/// What every call of a port needs: the methods it labels by name, and the App's families it
/// counts in.
#[derive(Debug)]
struct Port {
    methods: Methods,
    metrics: Common,
}

/// Adds [`Observe`] around a service.
#[derive(Clone, Debug)]
pub struct ObserveLayer {
    port: Arc<Port>,
}

impl ObserveLayer {
    /// Labels calls of `methods` by name, and any other as `unknown`, in the families of
    /// `metrics`.
    pub fn new(methods: Methods, metrics: Common) -> Self {
        Self {
            port: Arc::new(Port { methods, metrics }),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            port: Arc::clone(&self.port),
        }
    }
}

/// Counts and times the calls `inner` answers.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    port: Arc<Port>,
}

/// The labels of a call of `path`: its own if `methods` has it, `unknown` otherwise.
fn label(path: &str, methods: &Methods) -> GrpcMethod {
    let (service, method) = match path.trim_start_matches('/').split_once('/') {
        Some((service, method)) if methods.contains(path) => (service, method),
        _ => (UNKNOWN, UNKNOWN),
    };
    GrpcMethod {
        grpc_service: service.to_owned(),
        grpc_method: method.to_owned(),
    }
}

/// One call being answered.
struct Call {
    method: GrpcMethod,
    started: Instant,
    port: Arc<Port>,
}

impl Call {
    fn of(path: &str, port: &Arc<Port>) -> Call {
        Call {
            method: label(path, &port.methods),
            started: Instant::now(),
            port: Arc::clone(port),
        }
    }

    fn finish(self, code: Code) {
        let c = &self.port.metrics;
        c.grpc_seconds
            .get_or_create(&self.method)
            .observe(self.started.elapsed().as_secs_f64());
        c.grpc_handled
            .get_or_create(&GrpcCall {
                grpc_service: self.method.grpc_service,
                grpc_method: self.method.grpc_method,
                grpc_code: code_name(code).to_owned(),
            })
            .inc();
    }
}

/// The status in `headers`, if they carry one (trailers, or the head of a trailers-only answer).
fn status_in(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// The conventional upper-case name (`NOT_FOUND`), as Prometheus labels usually show it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl<S, B, RB> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Body,
{
    type Response = Response<ObservedBody<RB>>;
    type Error = S::Error;
    type Future = ObservedFuture<Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call::of(request.uri().path(), &self.port);
        let span = tracing::info_span!(
            "grpc",
            rpc.service = %call.method.grpc_service,
            rpc.method = %call.method.grpc_method,
            otel.kind = "server",
            trace_id = tracing::field::Empty,
        );
        // A caller without a trace context starts a new trace here.
        let _ = span.set_parent(crate::tracing_context::from_http(request.headers()));
        span.record(
            "trace_id",
            tracing::field::display(crate::tracing_context::trace_id(&span)),
        );
        ObservedFuture {
            inner: self.inner.call(request).instrument(span),
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of an observed call.
    pub struct ObservedFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, RB, E> Future for ObservedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ObservedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only answer (most errors) has its status in the head.
                let call = match (call, status_in(response.headers())) {
                    (Some(call), Some(code)) => {
                        call.finish(code);
                        None
                    }
                    (call, _) => call,
                };
                Ok(response.map(|inner| ObservedBody { inner, call }))
            }
            Err(e) => {
                // Below this layer only load shedding fails a call.
                if let Some(call) = call {
                    call.finish(Code::ResourceExhausted);
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body whose trailers say how the call ended.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its trailers: the client went away.
            if let Some(call) = this.project().call.take() {
                call.finish(Code::Cancelled);
            }
        }
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in)
                    && let Some(call) = this.call.take()
                {
                    call.finish(code);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Internal);
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish(Code::Unknown);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_get_labels_of_their_own() {
        let methods = Methods::of(
            &["grpc.health.v1.Health"],
            &[tonic_health::pb::FILE_DESCRIPTOR_SET, b"not a descriptor"],
        );
        let labelled = |path| label(path, &methods);
        assert_eq!(
            labelled("/grpc.health.v1.Health/Check").grpc_method,
            "Check"
        );
        for path in ["/grpc.health.v1.Health/Nope", "/x.Y/Check", "/", "no-slash"] {
            let m = labelled(path);
            assert_eq!(
                (m.grpc_service.as_str(), m.grpc_method.as_str()),
                (UNKNOWN, UNKNOWN)
            );
        }
    }
}
