//! Test support shared by every crate's integration tests: a fresh
//! database per test cloned from a migrated template, private NATS names or a private
//! nats-server process, tokens (HS256, or asymmetric keys in `keys`), a grpc-web client, data
//! fixtures, service binaries run to their end (`process`), a 3-node JetStream cluster to kill
//! and step down (`cluster`), for the TLS links a test CA with a TLS-only nats-server, and a
//! private PostgreSQL (TLS-only, or plaintext to crash and restart: `pg_server`).
//!
//! Reads `DATABASE_URL` (a superuser URL; `scripts/test` provides one), `NATS_URL` and
//! `NATS_SERVER_BIN`.

pub mod cluster;
pub mod db;
/// Row builders, shared with `investctl seed`.
pub use fixtures;
pub mod grpc_tls;
pub mod grpc_web;
pub mod keys;
pub mod metrics;
pub mod nats;
pub mod pg_server;
pub mod plans;
pub mod process;
pub mod raw_h2;
pub mod secrets;
pub mod stack;
pub mod tls_certs;
pub mod tls_nats;

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

/// Tokens every RPC must refuse with `UNAUTHENTICATED`: none, not yet valid (`nbf`), garbage,
/// wrong key, expired, `alg: none`, and a subject that is not a user id.
pub fn hostile_tokens() -> Vec<(&'static str, Option<String>)> {
    let user = Uuid::new_v4();
    let wrong_key = service_kit::auth::mint_hs256(
        b"another-secret-another-secret-0123456789",
        user,
        &[],
        Duration::from_secs(60),
    )
    .expect("mint");
    let expired = {
        // Expired well beyond the verifier's leeway.
        use jsonwebtoken::{EncodingKey, Header, encode};
        let claims = service_kit::auth::Claims {
            sub: user.to_string(),
            roles: vec![],
            iat: 1,
            exp: 2,
            nbf: None,
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("encode")
    };
    let alg_none = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{user}","exp":9999999999,"iat":1}}"#));
        format!("{header}.{body}.")
    };
    let not_a_uuid = {
        use jsonwebtoken::{EncodingKey, Header, encode};
        let claims = service_kit::auth::Claims {
            sub: "alice".into(),
            roles: vec![],
            iat: 1,
            exp: 9_999_999_999,
            nbf: None,
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("encode")
    };
    let not_yet_valid = {
        // Valid only from an hour from now, well beyond the verifier's leeway.
        use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
        let now = get_current_timestamp();
        let claims = service_kit::auth::Claims {
            sub: user.to_string(),
            roles: vec![],
            iat: now,
            exp: now + 7200,
            nbf: Some(now + 3600),
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("encode")
    };
    vec![
        ("no token", None),
        ("not valid before an hour from now", Some(not_yet_valid)),
        ("garbage", Some("garbage".into())),
        ("wrong key", Some(wrong_key)),
        ("expired", Some(expired)),
        ("alg none", Some(alg_none)),
        ("subject not a user id", Some(not_a_uuid)),
    ]
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

/// [`eventually`] for a check that can say why it is not done yet: `check` returns `Err(why)`
/// until it holds, and the failure after `deadline` shows the last `why` (formatted only then).
pub async fn eventually_explained<T, E, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let why = match check().await {
            Ok(value) => return value,
            Err(why) => why,
        };
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}:\n{why}"
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
