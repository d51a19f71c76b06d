//! `investctl health`: one `grpc.health.v1.Health/Check` call, for container probes and
//! operators. Exit 0 when the answer is `SERVING`; otherwise exit 1 with a one-line reason on
//! stderr (not serving, unknown service, unreachable, TLS refused, timed out).
//!
//! TLS is the services' own: `--ca-file` (the server's CA), `--cert-file`/`--key-file` when
//! the port requires client certificates (TLS_CLIENT_CA_FILE), `--server-name` when the
//! address dialled (`127.0.0.1` in a pod) is not a name in the server's certificate. There
//! are no built-in system roots: a TLS check always names its CA.

use std::{fs, path::PathBuf, time::Duration};

use anyhow::Context as _;
use service_kit::config::parse_duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// What to check and how to reach it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gRPC port: `host:port` (TLS when --ca-file is given, else plaintext),
    /// `http://host:port` or `https://host:port`.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// The service to ask about: "" (the default) is liveness; the service's own name
    /// (`invest.v1.InvestmentService`, `invest.v1.AllocationService`) is readiness.
    #[arg(long, default_value = "")]
    service: String,
    /// PEM CA the server's certificate must chain to (turns TLS on).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// PEM client certificate, for a port that requires one (mutual TLS); with --key-file.
    #[arg(long, requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key; with --cert-file.
    #[arg(long, requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Name to verify the server's certificate against, when not the host of --addr.
    #[arg(long)]
    server_name: Option<String>,
    /// Deadline for connecting and answering together.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Checks once; exits 1 with the reason unless the answer is `SERVING`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    service_kit::tls::install_crypto_provider();
    let what = format!("{} service {:?}", args.addr, args.service);
    let outcome = tokio::time::timeout(args.timeout, check(&args))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {:?}", args.timeout)));
    match outcome {
        Ok(ServingStatus::Serving) => {
            println!("{what}: SERVING");
            Ok(())
        }
        Ok(status) => fail(&format!("{what}: {}", status.as_str_name())),
        // `{:#}`: the whole cause chain on one line.
        Err(e) => fail(&format!("{what}: {e:#}")),
    }
}

fn fail(reason: &str) -> ! {
    eprintln!("{reason}");
    std::process::exit(1)
}

/// The status the server reports for `args.service`.
async fn check(args: &Args) -> anyhow::Result<ServingStatus> {
    let endpoint = endpoint(args)?.connect_timeout(args.timeout);
    let channel = endpoint.connect().await.context("unreachable")?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|status| {
            anyhow::anyhow!(
                "Check failed: {:?}: {}",
                status.code(),
                status.message().trim()
            )
        })?;
    let status = answer.into_inner().status;
    ServingStatus::try_from(status).with_context(|| format!("unknown serving status {status}"))
}

/// The endpoint for `--addr`, with the TLS settings when TLS is on.
fn endpoint(args: &Args) -> anyhow::Result<Endpoint> {
    let (tls, authority) = match args.addr.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        Some((scheme, _)) => anyhow::bail!("--addr: unknown scheme {scheme:?} (http or https)"),
        None => (args.ca_file.is_some(), args.addr.as_str()),
    };
    let scheme = if tls { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
        .with_context(|| format!("--addr {:?} is not host:port or a URL", args.addr))?;
    if !tls {
        anyhow::ensure!(
            args.ca_file.is_none() && args.cert_file.is_none(),
            "--addr {} is plaintext (http://) but TLS files were given",
            args.addr
        );
        return Ok(endpoint);
    }
    let ca_file = args
        .ca_file
        .as_ref()
        .context("https needs --ca-file (the server's CA; no system roots are built in)")?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        fs::read(ca_file).with_context(|| format!("reading --ca-file {}", ca_file.display()))?,
    ));
    if let (Some(cert), Some(key)) = (&args.cert_file, &args.key_file) {
        let read =
            |path: &PathBuf| fs::read(path).with_context(|| format!("reading {}", path.display()));
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(name) = &args.server_name {
        config = config.domain_name(name.clone());
    }
    endpoint.tls_config(config).context("TLS settings refused")
}
