//! One trace follows an investment from its create (investment-svc) through NATS to its
//! allocation (allocation-svc). A test binary of its own: it installs the process-wide
//! subscriber, exporting spans to memory (an in-process collector).

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tracing_subscriber::prelude::*;

#[path = "it/support/mod.rs"]
// The whole support module, of which a target uses a part (its re-exports included).
#[allow(dead_code, unused_imports)]
mod support;

use support::*;

/// The value of `key` among a span's attributes.
fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_covers_the_create_and_its_allocation() {
    let exporter = InMemorySpanExporter::default();
    let provider = service_kit::telemetry::tracer_provider("test", Some(exporter.clone()));
    tracing_subscriber::registry()
        .with(service_kit::telemetry::otel_layer(&provider, "test"))
        .init();

    let stack = stack().await;
    let investor = stack.investor("1200.00", "10.00", &[100]).await;
    let investment = stack.create(&investor, 3).await;
    let updates = collect(stack.watch(0, investor.user_id, &investment.id).await).await;
    assert_eq!(
        updates.last().map(|u| u.allocation_status()),
        Some(api::v1::AllocationStatus::Completed)
    );

    let id = investment.id.clone();
    let (create, allocate, batch) =
        testkit::eventually(Duration::from_secs(10), "the spans exported", || {
            let (provider, exporter, id) = (provider.clone(), exporter.clone(), id.clone());
            async move {
                provider.force_flush().ok()?;
                let spans = exporter.get_finished_spans().ok()?;
                let find = |name: &str| {
                    spans
                        .iter()
                        .find(|s| {
                            s.name == name
                                && attribute(s, "investment_id").as_deref() == Some(id.as_str())
                        })
                        .cloned()
                };
                let allocate = find("allocate")?;
                let batch = spans
                    .iter()
                    .find(|s| {
                        s.name == "allocation"
                            && attribute(s, "investment_ids").is_some_and(|ids| ids.contains(&id))
                    })?
                    .clone();
                Some((find("create_investment")?, allocate, batch))
            }
        })
        .await;
    let trace = create.span_context.trace_id();
    assert_ne!(trace, TraceId::INVALID);
    assert_eq!(
        allocate.span_context.trace_id(),
        trace,
        "the allocation continues the create's trace"
    );
    assert_ne!(allocate.parent_span_id, SpanId::INVALID);
    assert!(
        batch
            .links
            .iter()
            .any(|link| link.span_context.trace_id() == trace),
        "the batch span links the request it carried: {:?}",
        batch.links
    );
}
