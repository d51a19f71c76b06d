//! `investctl` as a process: keys and tokens the services accept, and no secret printed.

use std::{path::PathBuf, time::Duration};

use service_kit::auth::Authenticator;
use testkit::{
    keys::auth_args,
    process::{Finished, run_to_end},
    secrets::{self, assert_hidden},
};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_investctl");
const DEMO_USER: &str = "11111111-1111-4111-8111-111111111111";

async fn investctl(args: &[&str], env: &[(&str, &str)]) -> Finished {
    run_to_end(BIN, args, env, Duration::from_secs(60)).await
}

/// The token on the last line of a successful run.
fn token(run: &Finished) -> String {
    assert!(run.status.success(), "{}", run.output);
    run.output.lines().last().unwrap_or_default().to_owned()
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("investctl-test-{}", Uuid::new_v4().simple()))
}

#[tokio::test]
async fn help_of_every_command_shows_no_password_or_secret() {
    let (db, nats) = (
        secrets::unreachable_database_url(),
        secrets::unreachable_nats_url(),
    );
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("NATS_URL", nats.as_str()),
        ("JWT_SECRET", secrets::SECRET),
    ];
    for command in [
        &["--help"][..],
        &["migrate", "--help"],
        &["seed", "--help"],
        &["audit", "--help"],
        &["token", "--help"],
        &["keygen", "--help"],
        &["health", "--help"],
    ] {
        let help = investctl(command, &env).await;
        assert!(help.status.success(), "{command:?}: {}", help.output);
        assert_hidden(&format!("{command:?}"), &help);
    }
    let help = investctl(&["token", "--help"], &env).await;
    for setting in [
        "JWT_PRIVATE_KEY_FILE",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_SECRET",
    ] {
        assert!(help.output.contains(setting), "{setting}: {}", help.output);
    }
}

#[tokio::test]
async fn a_failed_migrate_prints_no_password() {
    let db = secrets::unreachable_database_url();
    let run = investctl(&["migrate"], &[("DATABASE_URL", db.as_str())]).await;
    assert!(!run.status.success(), "{}", run.output);
    assert!(run.output.contains("connecting"), "{}", run.output);
    assert_hidden("investctl migrate", &run);

    let typo = format!(
        "postgress://invest:{}@127.0.0.1/invest",
        secrets::DB_PASSWORD
    );
    for command in ["migrate", "seed", "audit"] {
        let run = investctl(&[command], &[("DATABASE_URL", typo.as_str())]).await;
        assert!(!run.status.success(), "{}", run.output);
        assert!(
            run.output.contains("is not a PostgreSQL URL"),
            "{}",
            run.output
        );
        assert_hidden(command, &run);
    }
}

#[tokio::test]
async fn keygen_makes_a_key_whose_tokens_the_services_accept_by_kid() {
    let dir = temp_dir();
    let dir_arg = dir.display().to_string();
    let made = investctl(&["keygen", "--dir", &dir_arg], &[]).await;
    assert!(made.status.success(), "{}", made.output);
    let again = investctl(&["keygen", "--dir", &dir_arg], &[]).await;
    assert!(!again.status.success(), "a key is never replaced");

    let key = dir.join("private.pem").display().to_string();
    let signed = investctl(
        &[
            "token",
            "--admin",
            "--key-file",
            &key,
            "--issuer",
            "https://dev.invest",
            "--audience",
            "invest",
        ],
        &[],
    )
    .await;
    let auth = Authenticator::from_args(&service_kit::config::AuthArgs {
        jwt_jwks_file: Some(dir.join("jwks.json")),
        jwt_issuer: Some("https://dev.invest".into()),
        jwt_audience: Some("invest".into()),
        ..auth_args()
    })
    .expect("the generated JWKS");
    let caller = auth
        .verify(&format!("Bearer {}", token(&signed)))
        .expect("accepted");
    assert_eq!(caller.subject.to_string(), DEMO_USER);
    assert!(caller.is_admin());

    let pem = Authenticator::from_args(&service_kit::config::AuthArgs {
        jwt_public_key_file: Some(dir.join("public.pem")),
        jwt_algorithm: jsonwebtoken::Algorithm::EdDSA,
        ..auth_args()
    })
    .expect("the generated public key");
    let plain = investctl(&["token", "--key-file", &key], &[]).await;
    pem.verify(&format!("Bearer {}", token(&plain)))
        .expect("accepted with the PEM");

    let both = investctl(
        &["token", "--key-file", &key],
        &[("JWT_SECRET", secrets::SECRET)],
    )
    .await;
    assert!(!both.status.success(), "two keys: which one is meant?");
    assert_hidden("investctl token with two keys", &both);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn token_still_signs_hs256_with_jwt_secret() {
    let run = investctl(&["token"], &[("JWT_SECRET", secrets::SECRET)]).await;
    let auth =
        Authenticator::hs256(secrets::SECRET.as_bytes(), Duration::from_secs(30)).expect("secret");
    let caller = auth
        .verify(&format!("Bearer {}", token(&run)))
        .expect("accepted");
    assert_eq!(caller.subject.to_string(), DEMO_USER);
    assert_hidden("investctl token", &run);
}
