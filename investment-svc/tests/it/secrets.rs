//! The real binary never prints a password or the JWT secret: not in `--help`, not when it
//! cannot start.

use testkit::{
    db::TestDb,
    secrets::{self, assert_hidden},
};

const BIN: &str = env!("CARGO_BIN_EXE_investment-svc");

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

    for bad in [
        format!(
            "postgres://invest:{}@127.0.0.1:port/invest",
            secrets::DB_PASSWORD
        ),
        format!(
            "postgress://invest:{}@127.0.0.1/invest",
            secrets::DB_PASSWORD
        ),
    ] {
        let run = secrets::start(BIN, &[("DATABASE_URL", &bad)]).await;
        assert!(!run.status.success());
        assert!(
            run.output.contains("is not a PostgreSQL URL"),
            "{}",
            run.output
        );
        assert_hidden("a start with a malformed DATABASE_URL", &run);
    }

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

#[tokio::test]
async fn several_key_sources_stop_the_binary_naming_them() {
    let jwks = testkit::keys::KeyFile::jwks(&[&testkit::keys::key_pair()]);
    let path = jwks.path().display().to_string();
    let run = secrets::start(BIN, &[("JWT_JWKS_FILE", &path)]).await;
    assert!(!run.status.success());
    assert!(
        run.output
            .contains("set only one JWT key source, found JWT_SECRET and JWT_JWKS_FILE"),
        "{}",
        run.output
    );
    assert!(
        !run.output.contains("connecting to PostgreSQL"),
        "settings are checked before connecting:\n{}",
        run.output
    );
    assert_hidden("a start with two key sources", &run);
}
