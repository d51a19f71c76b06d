//! The real binary never prints a password or the JWT secret: not in `--help`, not when it
//! cannot start (the checks are testkit's, shared with investment-svc).

const BIN: &str = env!("CARGO_BIN_EXE_allocation-svc");

#[tokio::test]
async fn help_lists_the_settings_without_their_secret_values() {
    testkit::secrets::check_help(BIN).await;
}

#[tokio::test]
async fn a_failed_start_prints_no_password() {
    testkit::secrets::check_failed_starts(BIN).await;
}
