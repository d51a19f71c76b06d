//! Structured logging with `tracing`, set up once per process.

use std::io::IsTerminal;

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
}

/// Installs the global subscriber: JSON lines or text, filtered by `RUST_LOG`.
pub fn init(args: &TelemetryArgs) -> Result<(), TelemetryError> {
    // sea-orm logs its connect options, URL and password included, at debug: never show them.
    let filter = EnvFilter::builder()
        .parse(&args.log_filter)?
        .add_directive("sea_orm=info".parse()?);
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()?,
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(std::io::stdout().is_terminal()))
            .try_init()?,
    }
    Ok(())
}
