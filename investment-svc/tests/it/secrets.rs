//! The real binary never prints a password or the JWT secret: not in `--help`, not when it
//! cannot start.

use testkit::secrets::{self, assert_hidden};

const BIN: &str = env!("CARGO_BIN_EXE_investment-svc");

#[tokio::test]
async fn help_lists_the_settings_without_their_secret_values() {
    secrets::check_help(BIN).await;
}

#[tokio::test]
async fn a_failed_start_prints_no_password() {
    secrets::check_failed_starts(BIN).await;
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
