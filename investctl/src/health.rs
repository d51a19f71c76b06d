//! `investctl health`: one `grpc.health.v1.Health/Check` call, for container probes and
//! operators. Exit 0 when the answer is `SERVING`; otherwise exit 1 with a one-line reason on
//! stderr (not serving, unknown service, unreachable, TLS refused, timed out).
//!
//! TLS is the services' own: `--ca-file` (the server's CA), `--cert-file`/`--key-file` when
//! the port requires client certificates (TLS_CLIENT_CA_FILE), `--server-name` when the
//! address dialled (`127.0.0.1` in a pod) is not a name in the server's certificate. There
//! are no built-in system roots: a TLS check always names its CA.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use service_kit::config::parse_duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// What to check and how to reach it. Every option can come from the environment too, so a
/// container's HEALTHCHECK (exec form, no shell) is just `investctl health`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gRPC port: `host:port` (TLS when --ca-file is given, else plaintext),
    /// `http://host:port` or `https://host:port`. Default: the port of LISTEN_ADDR on loopback
    /// (the container's own service), else 127.0.0.1:50051.
    #[arg(long, env = "HEALTH_ADDR")]
    addr: Option<String>,
    /// The service's listen address, whose port is checked when --addr is not given.
    #[arg(long, env = "LISTEN_ADDR")]
    listen_addr: Option<SocketAddr>,
    /// The service to ask about: "" (the default) is liveness; the service's own name
    /// (`invest.v1.InvestmentService`, `invest.v1.AllocationService`) is readiness.
    #[arg(long, env = "HEALTH_SERVICE", default_value = "")]
    service: String,
    /// PEM CA the server's certificate must chain to (turns TLS on).
    #[arg(long, env = "HEALTH_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// PEM client certificate, for a port that requires one (mutual TLS); with --key-file.
    #[arg(long, env = "HEALTH_CERT_FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key; with --cert-file.
    #[arg(long, env = "HEALTH_KEY_FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// Name to verify the server's certificate against, when not the host of --addr (e.g. the
    /// Service's DNS name when the probe dials 127.0.0.1).
    #[arg(long, env = "HEALTH_SERVER_NAME")]
    server_name: Option<String>,
    /// Deadline for connecting and answering together.
    #[arg(long, env = "HEALTH_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    timeout: Duration,
}

impl Args {
    /// --addr, else loopback at LISTEN_ADDR's port, else the investment port.
    fn addr(&self) -> String {
        match (&self.addr, self.listen_addr) {
            (Some(addr), _) => addr.clone(),
            (None, Some(listen)) => {
                let ip = match listen.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                SocketAddr::new(ip, listen.port()).to_string()
            }
            (None, None) => "127.0.0.1:50051".to_owned(),
        }
    }
}

/// Checks once; exits 1 with the reason unless the answer is `SERVING`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    service_kit::tls::install_crypto_provider();
    let addr = args.addr();
    let what = format!("{addr} service {:?}", args.service);
    let outcome = tokio::time::timeout(args.timeout, check(&args, &addr))
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
async fn check(args: &Args, addr: &str) -> anyhow::Result<ServingStatus> {
    // No deadline of its own: `run`'s covers connecting and the call, so a timeout always
    // reads the same.
    let channel = endpoint(args, addr)?
        .connect()
        .await
        .context("unreachable")?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("Check failed: {}", call_failure(args, &status)))?;
    let status = answer.into_inner().status;
    ServingStatus::try_from(status).with_context(|| format!("unknown serving status {status}"))
}

/// Why the call failed, on one line: the code, the message, what the transport said, and a
/// hint when a TLS port may have refused a caller with no client certificate (with TLS 1.3 the
/// refusal comes after the handshake, as a failed call).
fn call_failure(args: &Args, status: &tonic::Status) -> String {
    let mut reason = format!("{:?}: {}", status.code(), status.message().trim());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let transport = matches!(
        status.code(),
        tonic::Code::Cancelled | tonic::Code::Unavailable | tonic::Code::Unknown
    );
    if transport && args.ca_file.is_some() && args.cert_file.is_none() {
        reason.push_str(
            " (if the port requires client certificates, TLS_CLIENT_CA_FILE: pass --cert-file and --key-file)",
        );
    }
    reason
}

/// The endpoint for `addr`, with the TLS settings when TLS is on.
fn endpoint(args: &Args, addr: &str) -> anyhow::Result<Endpoint> {
    let (tls, authority) = match addr.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        Some((scheme, _)) => anyhow::bail!("--addr: unknown scheme {scheme:?} (http or https)"),
        None => (args.ca_file.is_some(), addr),
    };
    let scheme = if tls { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
        .with_context(|| format!("--addr {addr:?} is not host:port or a URL"))?;
    if !tls {
        anyhow::ensure!(
            args.ca_file.is_none() && args.cert_file.is_none(),
            "--addr {addr} is plaintext (http://) but TLS files were given"
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
