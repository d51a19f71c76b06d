//! investment-svc configuration: environment variables (or flags), listed by `--help`.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser};
use service_kit::config::{CommonArgs, parse_duration};

/// Everything investment-svc reads at start-up.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "investment-svc",
    version,
    about = "Accepts investments and reports subscription balances over gRPC."
)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sweeper: SweeperArgs,
}

/// The sweeper re-publishes investments whose request may never have reached NATS.
#[derive(Clone, Debug, Args)]
pub struct SweeperArgs {
    /// How often the sweeper looks for stranded `pending` investments.
    #[arg(long, env = "SWEEP_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// A `pending` investment is re-published once it (or its last re-publish) is this old.
    /// Keep it below NATS_DUPLICATE_WINDOW so that re-publishing a request that did reach the
    /// stream is dropped by the server as a duplicate.
    #[arg(long, env = "SWEEP_MIN_AGE", default_value = "60s", value_parser = parse_duration)]
    pub sweep_min_age: Duration,
    /// Most investments re-published per pass.
    #[arg(long, env = "SWEEP_BATCH", default_value_t = 500)]
    pub sweep_batch: u64,
}
