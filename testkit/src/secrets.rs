//! Checks that a binary never prints the secrets in its settings: its `--help` and its
//! start-up failures, run with passwords in DATABASE_URL and NATS_URL and a JWT_SECRET set.

use std::time::Duration;

use crate::process::{Finished, run_to_end};

/// The password put in DATABASE_URL.
pub const DB_PASSWORD: &str = "db-pw-5c1d7e0a";
/// The password put in NATS_URL.
pub const NATS_PASSWORD: &str = "nats-pw-93b2f6aa";
/// The JWT_SECRET (long enough to be accepted).
pub const SECRET: &str = "jwt-secret-0f4e8d2b7a6c5e4d3c2b1a09f8e7d6c5";

const DEADLINE: Duration = Duration::from_secs(30);

/// Panics if any secret appears in what the process printed.
pub fn assert_hidden(what: &str, run: &Finished) {
    for secret in [DB_PASSWORD, NATS_PASSWORD, SECRET] {
        assert!(
            !run.output.contains(secret),
            "{what} printed a secret:\n{}",
            run.output
        );
    }
}

/// A PostgreSQL URL with [`DB_PASSWORD`] that nothing listens on.
pub fn unreachable_database_url() -> String {
    format!("postgres://invest:{DB_PASSWORD}@127.0.0.1:1/invest")
}

/// A NATS URL with [`NATS_PASSWORD`] that nothing listens on.
pub fn unreachable_nats_url() -> String {
    format!("nats://invest:{NATS_PASSWORD}@127.0.0.1:1")
}

/// `url` (the test server's, which trusts local connections) with [`DB_PASSWORD`] added, so
/// the connection still succeeds and a later failure can be looked at.
pub fn with_password(url: &str) -> String {
    url.replacen("://postgres@", &format!("://postgres:{DB_PASSWORD}@"), 1)
}

/// `bin --help` with every secret in the environment: the settings are listed, no value.
pub async fn help(bin: &str) -> Finished {
    let (db, nats) = (unreachable_database_url(), unreachable_nats_url());
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("NATS_URL", nats.as_str()),
        ("JWT_SECRET", SECRET),
    ];
    run_to_end(bin, &["--help"], &env, DEADLINE).await
}

/// `bin` started with `env` (and the three secrets unless `env` sets them), run to its end.
pub async fn start(bin: &str, env: &[(&str, &str)]) -> Finished {
    let (db, nats) = (unreachable_database_url(), unreachable_nats_url());
    let mut all: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", db.as_str()),
        ("NATS_URL", nats.as_str()),
        ("JWT_SECRET", SECRET),
        ("DATABASE_ACQUIRE_TIMEOUT", "1s"),
        ("NATS_TIMEOUT", "1s"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("RUST_LOG", "debug"),
    ];
    all.retain(|(name, _)| !env.iter().any(|(n, _)| n == name));
    all.extend_from_slice(env);
    run_to_end(bin, &[], &all, DEADLINE).await
}

/// Both services' check: `--help` of `bin` lists the secret settings but none of their values.
pub async fn check_help(bin: &str) {
    let help = help(bin).await;
    assert!(help.status.success(), "{}", help.output);
    for setting in [
        "DATABASE_URL",
        "NATS_URL",
        "JWT_SECRET",
        "JWT_PUBLIC_KEY_FILE",
        "JWT_JWKS_FILE",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_LEEWAY",
    ] {
        assert!(help.output.contains(setting), "{setting} not in --help");
    }
    assert_hidden("--help", &help);
}

/// Both services' check: `bin` failing to start (PostgreSQL, then NATS unreachable) prints no
/// secret.
pub async fn check_failed_starts(bin: &str) {
    let unreachable_db = start(bin, &[]).await;
    assert!(!unreachable_db.status.success());
    assert!(
        unreachable_db.output.contains("connecting to PostgreSQL"),
        "{}",
        unreachable_db.output
    );
    assert_hidden("a start with PostgreSQL unreachable", &unreachable_db);

    let db = crate::db::TestDb::create().await.expect("database");
    let url = with_password(&db.url);
    let unreachable_nats = start(bin, &[("DATABASE_URL", &url)]).await;
    assert!(!unreachable_nats.status.success());
    assert!(
        unreachable_nats.output.contains("connecting to NATS"),
        "{}",
        unreachable_nats.output
    );
    assert_hidden("a start with NATS unreachable", &unreachable_nats);
}
