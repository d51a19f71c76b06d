//! allocation-svc: parse the configuration, set up logging and tracing, run until SIGTERM/SIGINT.

use allocation_svc::{App, Config};
use clap::Parser;
use service_kit::{server, telemetry};

/// jemalloc with background purging rather than glibc's malloc: it gives the OS back the pages
/// that closed watch streams held (glibc kept all of them), at the same RSS and CPU while they
/// are open (BENCHMARKS.md, "100,000 watchers").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init(&config.common.telemetry, "allocation-svc")?;
    let shutdown = server::shutdown_on_signal();
    let app = App::build(config).await.inspect_err(|e| {
        tracing::error!(error = format!("{e:#}"), "allocation-svc failed to start");
    })?;
    let stopped = app.run_until_stopped(shutdown).await;
    telemetry.shutdown();
    stopped
}
