//! `investctl`: operator and developer commands.
//!
//! - `migrate`: creates the database if missing and applies every migration.
//! - `seed`: loads the demo data (idempotent; fixed ids so the README's commands work).
//! - `keygen`: makes an Ed25519 key pair for tokens (private PEM, public PEM, `jwks.json`).
//! - `token`: mints a bearer token for local use, with that private key or an HS256 secret.
//! - `dev-certs`: a development CA and certificates for TLS on this machine.
//! - `audit`: checks invariants 1, 2, 3, 5, 6, 7, 8 and 9 (docs/invariants.md) over a live database.
//! - `health`: one `grpc.health.v1` check (container probes), over TLS and mutual TLS too.

mod dev_certs;
mod health;
mod keygen;

use std::{fs, path::PathBuf, time::Duration};

use anyhow::Context as _;
use chrono::{Duration as Days, Utc};
use clap::{Parser, Subcommand};
use entity::prelude::*;
use fixtures::Fixtures;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DbBackend, EntityTrait, Statement};
use service_kit::{
    auth::{Audience, Grant, Signer},
    config::{Secret, SecretUrl, parse_duration},
};
use uuid::{Uuid, uuid};

#[derive(Debug, Parser)]
#[command(
    name = "investctl",
    version,
    about = "Operator and developer commands for the invest services."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if it does not exist, then apply every pending migration.
    Migrate {
        /// PostgreSQL URL of the invest database (never printed).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretUrl,
    },
    /// Load the demo data: a demo user with active and paused subscriptions, paid and unpaid
    /// payments, open and closed deals and their inventory. Safe to run twice.
    Seed {
        /// PostgreSQL URL of the invest database (never printed).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretUrl,
    },
    /// Check invariants 1 (units conserved), 2 (completed = exactly allocated, nothing else holds
    /// units), 3 (nothing stranded), 5 (never over-reserved), 6 (gapless event logs), 7 (events
    /// belong to their investment's user), 8 (one available balance) and 9 (allocations from
    /// the deal's own batches, FIFO, valued exactly) over the whole database in one snapshot;
    /// prints each violation, exits 1 if any.
    Audit {
        /// PostgreSQL URL of the invest database (never printed).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretUrl,
        /// An investment still pending or processing with no status change for this long is
        /// reported as stranded (the sweeper re-publishes after SWEEP_STUCK_AGE, 15m).
        #[arg(long, env = "AUDIT_STUCK_AFTER", default_value = "30m", value_parser = humantime::parse_duration)]
        stuck_after: Duration,
    },
    /// Make an Ed25519 key pair for tokens in DIR: `private.pem` (for `token --key-file`, kept
    /// private), `public.pem` (for JWT_PUBLIC_KEY_FILE with JWT_ALGORITHM=EdDSA) and
    /// `jwks.json` (for JWT_JWKS_FILE; its `kid` is the key's RFC 7638 thumbprint). Refuses to
    /// overwrite an existing private key.
    Keygen {
        /// Directory to write the three files in (created if missing).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print a bearer token for local use, signed with a private key (`--key-file`, with its
    /// `kid` in the header) or with the HS256 JWT_SECRET.
    Token {
        /// The user id the token names (`sub`).
        #[arg(long, default_value_t = DEMO_USER)]
        user: Uuid,
        /// Add the `admin` role.
        #[arg(long)]
        admin: bool,
        /// How long the token is valid.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// PEM private key to sign with (e.g. `private.pem` from `keygen`); the algorithm follows
        /// from the key (EdDSA, ES256, RS256) unless --algorithm says otherwise.
        #[arg(long, env = "JWT_PRIVATE_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// Algorithm for --key-file (e.g. ES384, PS256) when not the key's default.
        #[arg(long, value_parser = parse_algorithm)]
        algorithm: Option<jsonwebtoken::Algorithm>,
        /// Key id for the header in place of the key's thumbprint.
        #[arg(long)]
        kid: Option<String>,
        /// The services' HS256 secret, when signing without --key-file.
        #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<Secret>,
        /// Issuer (`iss`), as the services' JWT_ISSUER expects.
        #[arg(long, env = "JWT_ISSUER")]
        issuer: Option<String>,
        /// Audience (`aud`), as the services' JWT_AUDIENCE expects; repeat it for an array.
        #[arg(long, env = "JWT_AUDIENCE")]
        audience: Vec<String>,
    },
    /// Make a development CA with server certificates for localhost/127.0.0.1/::1 and a client
    /// certificate (ca.pem, server.pem, server-key.pem, client.pem, client-key.pem), once: an
    /// existing ca.pem in DIR is kept. Not for production certificates.
    DevCerts {
        /// Where to write them.
        #[arg(long, default_value = ".dev/tls")]
        dir: PathBuf,
    },
    /// Ask a service's gRPC port for its health (`grpc.health.v1.Health/Check`): exit 0 when
    /// SERVING, else 1 with the reason. `--service ""` is liveness, the service's name readiness.
    Health(health::Args),
}

fn parse_algorithm(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    s.parse()
        .map_err(|_| format!("unknown JWT algorithm `{s}`"))
}

/// The demo user of `seed`.
const DEMO_USER: Uuid = uuid!("11111111-1111-4111-8111-111111111111");
const PLAN: Uuid = uuid!("b0000000-0000-4000-8000-000000000001");
const PLAN_NO_DURATION: Uuid = uuid!("b0000000-0000-4000-8000-000000000002");
const ACTIVE_SUBSCRIPTION: Uuid = uuid!("a0000000-0000-4000-8000-000000000001");
const PAUSED_SUBSCRIPTION: Uuid = uuid!("a0000000-0000-4000-8000-000000000002");
const OPEN_DEAL: Uuid = uuid!("d0000000-0000-4000-8000-000000000001");
const CLOSED_DEAL: Uuid = uuid!("d0000000-0000-4000-8000-000000000002");
const SCARCE_DEAL: Uuid = uuid!("d0000000-0000-4000-8000-000000000003");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    if let Command::Migrate { database_url }
    | Command::Seed { database_url }
    | Command::Audit { database_url, .. } = &command
    {
        service_kit::db::check_url(database_url)?;
    }
    match command {
        Command::Migrate { database_url } => migrate(database_url.expose()).await,
        Command::Seed { database_url } => seed(database_url.expose()).await,
        Command::Audit {
            database_url,
            stuck_after,
        } => audit(database_url.expose(), stuck_after).await,
        Command::Keygen { dir } => keygen::keygen(&dir),
        Command::Token {
            user,
            admin,
            ttl,
            key_file,
            algorithm,
            kid,
            jwt_secret,
            issuer,
            audience,
        } => {
            let signer = match (key_file, jwt_secret) {
                (Some(_), Some(_)) => anyhow::bail!(
                    "set one of --key-file (JWT_PRIVATE_KEY_FILE) or JWT_SECRET, not both"
                ),
                (Some(path), None) => {
                    let pem =
                        fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    let signer = Signer::from_pem(&pem, algorithm)
                        .with_context(|| format!("using {} as a private key", path.display()))?;
                    match kid {
                        Some(kid) => signer.with_kid(Some(kid)),
                        None => signer,
                    }
                }
                (None, Some(secret)) => Signer::hs256(secret.expose().as_bytes()),
                (None, None) => anyhow::bail!(
                    "no signing key: pass --key-file (or JWT_PRIVATE_KEY_FILE), or set JWT_SECRET"
                ),
            };
            let mut grant = Grant::new(user, ttl);
            if admin {
                grant.roles = vec![service_kit::auth::ADMIN_ROLE.to_owned()];
            }
            grant.issuer = issuer;
            grant.audience = match <[String; 1]>::try_from(audience) {
                Ok([one]) => Some(Audience::One(one)),
                Err(many) if many.is_empty() => None,
                Err(many) => Some(Audience::Many(many)),
            };
            println!("{}", signer.sign(&grant)?);
            Ok(())
        }
        Command::DevCerts { dir } => dev_certs::make(&dir),
        Command::Health(args) => health::run(args).await,
    }
}

async fn migrate(url: &str) -> anyhow::Result<()> {
    create_database_if_missing(url).await?;
    let db = Database::connect(url)
        .await
        .context("connecting to DATABASE_URL")?;
    let pending = Migrator::get_pending_migrations(&db).await?;
    Migrator::up(&db, None)
        .await
        .context("applying migrations")?;
    eprintln!("applied {} migration(s); schema is current", pending.len());
    Ok(())
}

/// Connects to the server's `postgres` database and creates the target one if absent.
async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let (admin_url, name) =
        postgres_database_url(url).context("DATABASE_URL has no database name")?;
    let admin = Database::connect(admin_url)
        .await
        .context("connecting to the server's postgres database")?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        let quoted = name.replace('"', "\"\"");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{quoted}\""))
            .await?;
        eprintln!("created database {name}");
    }
    Ok(())
}

/// `url` naming the server's `postgres` database instead of its own (returned second), with
/// the same query: `sslmode=verify-full&sslrootcert=...` must hold for this connection too.
fn postgres_database_url(url: &str) -> Option<(String, &str)> {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let (base, name) = path.rsplit_once('/').filter(|(_, name)| !name.is_empty())?;
    let admin = match query {
        Some(query) => format!("{base}/postgres?{query}"),
        None => format!("{base}/postgres"),
    };
    Some((admin, name))
}

async fn audit(url: &str, stuck_after: Duration) -> anyhow::Result<()> {
    let db = Database::connect(url)
        .await
        .context("connecting to DATABASE_URL")?;
    let violations = ledger::audit::run(&db, stuck_after)
        .await
        .context("auditing")?;
    for v in &violations {
        println!("{v}");
    }
    if violations.is_empty() {
        println!("audit: invariants 1, 2, 3, 5, 6, 7, 8 and 9 hold");
        Ok(())
    } else {
        eprintln!("audit: {} violation(s)", violations.len());
        std::process::exit(1);
    }
}

async fn seed(url: &str) -> anyhow::Result<()> {
    let db = Database::connect(url)
        .await
        .context("connecting to DATABASE_URL")?;
    if Deal::find_by_id(OPEN_DEAL).one(&db).await?.is_some() {
        eprintln!("demo data already loaded");
        return Ok(());
    }
    let f = Fixtures::new(db);
    let now = Utc::now();
    f.plan_with_id(PLAN, "Growth 12", "500.00", Some(12))
        .await?;
    f.plan_with_id(
        PLAN_NO_DURATION,
        "Starter (12 months by default)",
        "100.00",
        None,
    )
    .await?;
    let active = f
        .subscription_with_id(
            ACTIVE_SUBSCRIPTION,
            DEMO_USER,
            PLAN,
            None,
            SubscriptionStatus::Active,
        )
        .await?;
    let paused = f
        .subscription_with_id(
            PAUSED_SUBSCRIPTION,
            DEMO_USER,
            PLAN_NO_DURATION,
            Some("150.00"),
            SubscriptionStatus::Paused,
        )
        .await?;
    for _ in 0..3 {
        f.payment(&active, "500.00", PaymentStatus::Paid).await?;
    }
    f.payment(&active, "500.00", PaymentStatus::Pending).await?;
    f.payment(&active, "500.00", PaymentStatus::Failed).await?;
    f.payment(&paused, "150.00", PaymentStatus::Paid).await?;

    f.deal_with_id(
        OPEN_DEAL,
        "Acme Robotics (pre-IPO)",
        "25.00",
        DealStatus::Open,
    )
    .await?;
    f.batch(OPEN_DEAL, 100, now - Days::days(30)).await?;
    f.batch(OPEN_DEAL, 400, now - Days::days(10)).await?;
    f.batch(OPEN_DEAL, 1000, now - Days::days(1)).await?;
    f.deal_with_id(
        CLOSED_DEAL,
        "Globex Energy (closed)",
        "40.00",
        DealStatus::Closed,
    )
    .await?;
    f.batch(CLOSED_DEAL, 500, now - Days::days(60)).await?;
    f.deal_with_id(
        SCARCE_DEAL,
        "Initech AI (little inventory)",
        "10.00",
        DealStatus::Open,
    )
    .await?;
    f.batch(SCARCE_DEAL, 5, now - Days::days(5)).await?;

    eprintln!("demo data loaded: user {DEMO_USER}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::postgres_database_url;

    #[test]
    fn the_postgres_database_url_keeps_the_tls_settings() {
        let url =
            "postgres://u@db.internal:5432/invest?sslmode=verify-full&sslrootcert=/etc/ca.pem";
        assert_eq!(
            postgres_database_url(url),
            Some((
                "postgres://u@db.internal:5432/postgres?sslmode=verify-full&sslrootcert=/etc/ca.pem"
                    .to_owned(),
                "invest"
            ))
        );
        assert_eq!(
            postgres_database_url("postgres://u@h/invest"),
            Some(("postgres://u@h/postgres".to_owned(), "invest"))
        );
        assert_eq!(postgres_database_url("postgres://u@h/"), None);
    }
}
