//! Test support shared by every crate's integration tests (and the demo seed): a fresh
//! database per test cloned from a migrated template, private NATS names or a private
//! nats-server process, tokens, and data fixtures.
//!
//! Reads `DATABASE_URL` (a superuser URL; `scripts/test` provides one), `NATS_URL` and
//! `NATS_SERVER_BIN`.

pub mod db;
pub mod fixtures;
pub mod nats;

use std::time::Duration;

use uuid::Uuid;

/// The HS256 secret every test service is configured with.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// A bearer token for `user_id`.
pub fn token(user_id: Uuid) -> String {
    mint(user_id, &[])
}

/// A bearer token for `user_id` with the admin role.
pub fn admin_token(user_id: Uuid) -> String {
    mint(user_id, &[service_kit::auth::ADMIN_ROLE])
}

fn mint(user_id: Uuid, roles: &[&str]) -> String {
    service_kit::auth::mint_hs256(
        JWT_SECRET.as_bytes(),
        user_id,
        roles,
        Duration::from_secs(3600),
    )
    .expect("HS256 signing cannot fail with a valid secret")
}

/// Logs to the test output when `TEST_LOG` is set; quiet otherwise. Safe to call often.
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` until it returns `Some`, or fails after `deadline`: the way tests wait for
/// asynchronous effects without sleeping a guessed amount.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client interceptor that sends `authorization: Bearer <token>` (or nothing).
#[derive(Clone, Debug)]
pub struct Bearer(pub Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| tonic::Status::internal("token is not a header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}
