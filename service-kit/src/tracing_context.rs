//! W3C trace context across process boundaries (README, Operations): taken from incoming gRPC
//! metadata, written into and read from NATS message headers, so one trace follows an
//! investment from its create through its allocation.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The context a caller sent in HTTP (gRPC metadata) headers, empty if none.
pub fn from_http(headers: &http::HeaderMap) -> Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)))
}

/// The context a NATS message carries in its headers, empty if none.
pub fn from_nats(headers: Option<&async_nats::HeaderMap>) -> Context {
    struct Headers<'a>(&'a async_nats::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(async_nats::HeaderValue::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_ref()).collect()
        }
    }
    match headers {
        Some(headers) => {
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)))
        }
        None => Context::new(),
    }
}

/// Writes the current span's context (`traceparent`) into NATS message headers.
pub fn inject_current(headers: &mut async_nats::HeaderMap) {
    struct Headers<'a>(&'a mut async_nats::HeaderMap);
    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key, value.as_str());
        }
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Headers(headers));
    });
}

/// The trace id of `span`, for log lines.
pub fn trace_id(span: &tracing::Span) -> String {
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().span_context().trace_id().to_string()
}
