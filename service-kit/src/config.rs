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
    /// A connection that sends nothing for this long after it is opened is closed.
    #[arg(long, env = "CONNECTION_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connection_handshake_timeout: Duration,
    /// Requests handled at once by this process (all connections); more are refused at once
    /// with RESOURCE_EXHAUSTED. A watch counts only until its stream has started.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
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
