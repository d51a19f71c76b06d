//! Settings both services read the same way, as clap argument groups that each service
//! flattens into its own `Config`. Every setting is an environment variable (and a flag), so
//! `--help` lists them all with their defaults.

use std::{path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, Parser, ValueEnum};
use jsonwebtoken::Algorithm;

pub use crate::secret::{Secret, SecretUrl};

/// Parses durations such as `250ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// PostgreSQL settings.
#[derive(Clone, Debug, Args)]
pub struct DbArgs {
    /// PostgreSQL URL of the invest database. Its value is never printed (`--help` hides it,
    /// logs and errors show it with `***` for the password).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/invest"
    )]
    pub database_url: SecretUrl,
    /// Most connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,
    /// How long to wait for a pooled connection before answering UNAVAILABLE.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub database_acquire_timeout: Duration,
}

/// NATS JetStream settings (docs/messaging.md).
#[derive(Clone, Debug, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma separated; credentials in them are never printed.
    #[arg(
        long,
        env = "NATS_URL",
        hide_env_values = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: SecretUrl,
    /// Name of the allocation stream.
    #[arg(long, env = "NATS_STREAM", default_value = "ALLOCATIONS")]
    pub nats_stream: String,
    /// First subject token: requests go to `<prefix>.requests.<deal_id>`, status events to
    /// `<prefix>.status.<user_id>.<investment_id>`.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "allocations")]
    pub nats_subject_prefix: String,
    /// Stream replicas (3 on a production cluster).
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1)]
    pub nats_stream_replicas: usize,
    /// Window in which the server drops a request published twice with the same id.
    #[arg(long, env = "NATS_DUPLICATE_WINDOW", default_value = "2m", value_parser = parse_duration)]
    pub nats_duplicate_window: Duration,
    /// Deadline for a JetStream API call or publish acknowledgement.
    #[arg(long, env = "NATS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub nats_timeout: Duration,
    /// How long a request publish is retried (no responders or no acknowledgement, as during
    /// a stream leader election) before it is left to the sweeper. With NATS_TIMEOUT it must
    /// end inside NATS_DUPLICATE_WINDOW.
    #[arg(long, env = "NATS_PUBLISH_RETRY", default_value = "10s", value_parser = parse_duration)]
    pub nats_publish_retry: Duration,
    /// CA certificate(s) (PEM) the NATS server's certificate must chain to. Set: TLS is
    /// required, and only this CA is trusted.
    #[arg(long, env = "NATS_TLS_CA_FILE")]
    pub nats_tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a server that verifies clients (`verify: true`); needs
    /// NATS_TLS_KEY_FILE. Set: TLS is required.
    #[arg(long, env = "NATS_TLS_CERT_FILE", requires = "nats_tls_key_file")]
    pub nats_tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of NATS_TLS_CERT_FILE.
    #[arg(long, env = "NATS_TLS_KEY_FILE", requires = "nats_tls_cert_file")]
    pub nats_tls_key_file: Option<PathBuf>,
    /// NATS credentials file (`.creds`: user JWT and nkey seed), for servers with
    /// decentralized auth. Not with NATS_USER.
    #[arg(long, env = "NATS_CREDS_FILE", conflicts_with = "nats_user")]
    pub nats_creds_file: Option<PathBuf>,
    /// User name for a server with `authorization { user, password }`; needs NATS_PASSWORD.
    #[arg(long, env = "NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,
    /// Password of NATS_USER (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<Secret>,
}

impl NatsArgs {
    /// Refuses settings under which a retried publish could outlive the duplicate window: the
    /// last try (NATS_PUBLISH_RETRY, then up to NATS_TIMEOUT for its acknowledgement) would
    /// be stored a second time if an earlier one was stored after all.
    pub fn check(&self) -> Result<(), String> {
        let last_ack = self.nats_publish_retry + self.nats_timeout;
        if last_ack >= self.nats_duplicate_window {
            return Err(format!(
                "NATS_PUBLISH_RETRY ({}) plus NATS_TIMEOUT ({}) must be less than \
                 NATS_DUPLICATE_WINDOW ({})",
                humantime::format_duration(self.nats_publish_retry),
                humantime::format_duration(self.nats_timeout),
                humantime::format_duration(self.nats_duplicate_window),
            ));
        }
        Ok(())
    }
}

/// Token verification settings (README, Security). Exactly one key source is set:
/// JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE.
#[derive(Clone, Debug, Args)]
pub struct AuthArgs {
    /// HS256 shared secret (at least 32 bytes): one of the three key sources, for tests and
    /// simple set-ups; an asymmetric key is better.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// PEM public key for asymmetric tokens (RS*, PS*, ES*, EdDSA, as JWT_ALGORITHM says): one
    /// of the three key sources.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of tokens signed with the key in JWT_PUBLIC_KEY_FILE (a token naming another
    /// one is refused).
    #[arg(long, env = "JWT_ALGORITHM", default_value = "RS256", value_parser = parse_algorithm)]
    pub jwt_algorithm: Algorithm,
    /// JWKS file (`{"keys": [...]}`, e.g. an identity provider's, fetched by the deployment): one
    /// of the three key sources. A token's `kid` picks the key, whose type (or `alg`) fixes the
    /// algorithm; the file is read again within a second of a change, so keys rotate without a
    /// restart.
    #[arg(long, env = "JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// When set, tokens must carry this issuer (`iss`).
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// When set, tokens must name this audience in `aud` (a string or an array). When unset, a
    /// token carrying an `aud` is refused: it was meant for someone else.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on a token's `exp` and `nbf` (whole seconds, at most 5 minutes).
    #[arg(long, env = "JWT_LEEWAY", default_value = "30s", value_parser = parse_leeway)]
    pub jwt_leeway: Duration,
}

/// The longest `JWT_LEEWAY`: more would keep expired tokens alive noticeably longer.
pub const MAX_JWT_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// Parses `JWT_LEEWAY`, refusing more than [`MAX_JWT_LEEWAY`].
pub fn parse_leeway(s: &str) -> Result<Duration, String> {
    let leeway = parse_duration(s).map_err(|e| e.to_string())?;
    if leeway > MAX_JWT_LEEWAY {
        return Err("JWT_LEEWAY is at most 5m".to_owned());
    }
    Ok(leeway)
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(s).map_err(|_| format!("unknown JWT algorithm `{s}`"))
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Logging, metrics and tracing settings.
#[derive(Clone, Debug, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Log filter, `tracing` EnvFilter syntax (e.g. `info,investment_svc=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Address of the Prometheus endpoint (`GET /metrics`), e.g. `127.0.0.1:9464`; unset: no
    /// endpoint.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How often sampled metrics (pool, queue depth, consumer state) are refreshed.
    #[arg(long, env = "METRICS_SAMPLE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub metrics_sample_interval: Duration,
}

/// Every setting both services share, flattened into each service's `Config`.
#[derive(Clone, Debug, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub server: ServerArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub db: DbArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub nats: NatsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub telemetry: TelemetryArgs,
}

/// gRPC server settings that do not depend on the service: shutdown, browsers, and the limits
/// on what one client can make the server hold.
#[derive(Clone, Debug, Args)]
pub struct ServerArgs {
    /// After SIGTERM/SIGINT, how long open calls and streams may take before they are cut.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Browser origins allowed to call over grpc-web (CORS), comma separated; empty for none.
    /// A wildcard is refused.
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:5173,http://localhost:5173"
    )]
    pub cors_allowed_origins: Vec<String>,
    /// How often readiness checks PostgreSQL and NATS (health for the service's own name).
    #[arg(long, env = "READINESS_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub readiness_interval: Duration,
    /// Open client connections; at the cap new connections wait to be accepted until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection (calls and open watches).
    #[arg(long, env = "HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 keepalive ping interval.
    #[arg(long, env = "HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// A connection whose keepalive ping is not answered within this is closed.
    #[arg(long, env = "HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// A connection that has not completed its first request (TLS handshake, HTTP/2 preface and
    /// the request's headers) this long after it was accepted is closed.
    #[arg(long, env = "CONNECTION_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connection_handshake_timeout: Duration,
    /// Connections still in their handshake at once; when full, a new one closes the oldest of
    /// the address holding the most, so sockets that never speak cannot keep out clients that do.
    #[arg(long, env = "MAX_HANDSHAKING_CONNECTIONS", default_value_t = 256)]
    pub max_handshaking_connections: usize,
    /// Open connections from one client address; more are closed at once. 0 turns the cap off
    /// (callers behind one load balancer or NAT share an address).
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,
    /// A connection with no call in progress for this long is closed (0s: never). An open
    /// watch stream is a call in progress.
    #[arg(long, env = "CONNECTION_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub connection_idle_timeout: Duration,
    /// A connection this old is asked to go away (HTTP/2 GOAWAY), so load balancers can
    /// rebalance long-lived clients; unset: connections never age.
    #[arg(long, env = "MAX_CONNECTION_AGE", value_parser = parse_duration)]
    pub max_connection_age: Option<Duration>,
    /// After MAX_CONNECTION_AGE, how long calls may go on; then streams still open end with
    /// UNAVAILABLE (clients resume on a new connection) and the connection is closed.
    #[arg(long, env = "MAX_CONNECTION_AGE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub max_connection_age_grace: Duration,
    /// Requests handled at once by this process (all connections); more are refused at once
    /// with RESOURCE_EXHAUSTED. A watch counts only until its stream has started.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub tls: TlsArgs,
}

/// TLS on the gRPC port (gRPC and grpc-web alike); off unless TLS_CERT_FILE is set.
#[derive(Clone, Debug, Args)]
pub struct TlsArgs {
    /// Server certificate chain (PEM); with TLS_KEY_FILE turns TLS on for this port.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of TLS_CERT_FILE (PEM).
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// CA of the client certificates that callers must present (mutual TLS; every caller then
    /// needs one, so leave it unset on a port that browsers call).
    #[arg(long, env = "TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// How often the TLS files are checked for changes (a rotated certificate is used for new
    /// connections without a restart).
    #[arg(long, env = "TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
}

impl TlsArgs {
    /// The files to serve with, if TLS is on.
    pub fn files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert_file.clone()?,
            key: self.tls_key_file.clone()?,
            client_ca: self.tls_client_ca_file.clone(),
        })
    }
}

impl Default for ServerArgs {
    /// The documented defaults (and any of their environment variables that are set).
    fn default() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            server: ServerArgs,
        }
        Only::parse_from(["server"]).server
    }
}
