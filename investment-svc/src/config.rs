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
    /// ISO 4217 code of the currency every amount is in (the data model has none), told to
    /// clients with the balances.
    #[arg(long, env = "CURRENCY", default_value = "USD", value_parser = parse_currency)]
    pub currency: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sweeper: SweeperArgs,
}

/// Three capital letters, as ISO 4217 codes are.
fn parse_currency(value: &str) -> Result<String, String> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not an ISO 4217 code (three capital letters, e.g. USD)"
        ))
    }
}

/// The sweeper re-publishes investments whose request may never have reached NATS.
#[derive(Clone, Debug, Args)]
pub struct SweeperArgs {
    /// How often the sweeper looks for stranded `pending` investments.
    #[arg(long, env = "SWEEP_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// A `pending` investment whose request the stream never acknowledged is re-published
    /// once it is this old.
    #[arg(long, env = "SWEEP_MIN_AGE", default_value = "60s", value_parser = parse_duration)]
    pub sweep_min_age: Duration,
    /// A request the stream did acknowledge is re-published only after this (it may just be
    /// queued behind a backlog; only a NATS server that lost its store strands it).
    #[arg(long, env = "SWEEP_STUCK_AGE", default_value = "15m", value_parser = parse_duration)]
    pub sweep_stuck_age: Duration,
    /// Most investments re-published per pass.
    #[arg(long, env = "SWEEP_BATCH", default_value_t = 500)]
    pub sweep_batch: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_currency_is_three_capital_letters() {
        assert_eq!(parse_currency("EUR"), Ok("EUR".to_owned()));
        for bad in ["eur", "EURO", "E1R", ""] {
            assert!(parse_currency(bad).is_err(), "{bad:?} accepted");
        }
    }
}
