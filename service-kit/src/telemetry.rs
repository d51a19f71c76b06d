//! Structured logging with `tracing`, and OpenTelemetry traces: set up once per process.
//!
//! Spans always get W3C trace and span ids (log lines carry the trace id, NATS messages carry
//! the context); they are exported over OTLP (gRPC) only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, TelemetryArgs};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` does not parse.
    #[error("invalid log filter")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// A subscriber was already installed.
    #[error("logging already initialised")]
    Init(#[from] tracing_subscriber::util::TryInitError),
    /// The OTLP exporter cannot be built from the `OTEL_EXPORTER_OTLP_*` settings.
    #[error("OTLP exporter: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The tracer provider of the process; [`Telemetry::shutdown`] flushes what is not exported yet.
#[must_use = "keep it until the process ends, then call shutdown"]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports the spans still buffered.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not finish");
        }
    }
}

/// A tracer provider for `service`: exporting to `exporter` if given, else only assigning ids.
/// Installs it and the W3C trace-context propagator as the process's globals.
pub fn tracer_provider(
    service: &'static str,
    exporter: Option<impl opentelemetry_sdk::trace::SpanExporter + 'static>,
) -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let provider = match exporter {
        Some(exporter) => builder.with_batch_exporter(exporter),
        None => builder,
    }
    .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    provider
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn otel_layer<S>(
    provider: &SdkTracerProvider,
    service: &'static str,
) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(service))
}

/// Installs the global subscriber for `service`: JSON lines or text, filtered by `RUST_LOG`,
/// with OpenTelemetry spans (exported if `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
pub fn init(args: &TelemetryArgs, service: &'static str) -> Result<Telemetry, TelemetryError> {
    let exporter = match std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(_) => Some(SpanExporter::builder().with_tonic().build()?),
        None => None,
    };
    let provider = tracer_provider(service, exporter);
    // sea-orm logs its connect options, URL and password included, at debug: never show them.
    let filter = EnvFilter::builder()
        .parse(&args.log_filter)?
        .add_directive("sea_orm=info".parse()?);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer(&provider, service));
    match args.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    // The request span (with the trace id) and those inside it.
                    .with_span_list(true),
            )
            .try_init()?,
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(std::io::stdout().is_terminal()))
            .try_init()?,
    }
    Ok(Telemetry { provider })
}
