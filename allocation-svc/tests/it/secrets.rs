//! The real binary never prints a password or the JWT secret: not in `--help`, not when it
//! cannot start.

use testkit::{
    db::TestDb,
    secrets::{self, assert_hidden},
};

const BIN: &str = env!("CARGO_BIN_EXE_allocation-svc");

#[tokio::test]
async fn help_lists_the_settings_without_their_secret_values() {
    let help = secrets::help(BIN).await;
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

#[tokio::test]
async fn a_failed_start_prints_no_password() {
    let unreachable_db = secrets::start(BIN, &[]).await;
    assert!(!unreachable_db.status.success());
    assert!(
        unreachable_db.output.contains("connecting to PostgreSQL"),
        "{}",
        unreachable_db.output
    );
    assert_hidden("a start with PostgreSQL unreachable", &unreachable_db);

    let db = TestDb::create().await.expect("database");
    let url = secrets::with_password(&db.url);
    let unreachable_nats = secrets::start(BIN, &[("DATABASE_URL", &url)]).await;
    assert!(!unreachable_nats.status.success());
    assert!(
        unreachable_nats.output.contains("connecting to NATS"),
        "{}",
        unreachable_nats.output
    );
    assert_hidden("a start with NATS unreachable", &unreachable_nats);
}
