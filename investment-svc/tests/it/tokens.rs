//! Token settings on a running service: asymmetric keys (PEM or JWKS, picked by `kid`, rotated
//! without a restart), issuer and audience checked with a reason, and settings that cannot
//! work refused at start-up.

use std::time::Duration;

use api::v1 as pb;
use clap::Parser;
use investment_svc::Config;
use jsonwebtoken::Algorithm;
use testkit::keys::{self, Audience, KeyFile};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

const ISSUER: &str = "https://idp.invest.test";
const AUDIENCE: &str = "invest-api";

/// The outcome of one authenticated read with `token`: `Ok` or the refusal's code and message.
async fn call(app: &TestApp, token: String) -> Result<(), (Code, String)> {
    app.client_with_token(Some(token))
        .await
        .list_investments(pb::ListInvestmentsRequest::default())
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn refused(reason: &str) -> Result<(), (Code, String)> {
    Err((Code::Unauthenticated, reason.to_owned()))
}

async fn spawn_with_jwks(jwks: &KeyFile) -> TestApp {
    spawn_app_with(Options {
        auth: Some(service_kit::config::AuthArgs {
            jwt_jwks_file: Some(jwks.path().to_owned()),
            jwt_issuer: Some(ISSUER.into()),
            jwt_audience: Some(AUDIENCE.into()),
            ..keys::auth_args()
        }),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn tokens_from_the_configured_issuer_for_the_configured_audience_are_the_only_ones_accepted()
{
    let key = keys::key_pair();
    let jwks = KeyFile::jwks(&[&key]);
    let app = spawn_with_jwks(&jwks).await;
    let user = Uuid::new_v4();

    let right = keys::grant_for(user, ISSUER, AUDIENCE);
    assert_eq!(call(&app, keys::sign(&key, &right)).await, Ok(()));

    let mut several = right.clone();
    several.audience = Some(Audience::Many(vec!["other-api".into(), AUDIENCE.into()]));
    assert_eq!(
        call(&app, keys::sign(&key, &several)).await,
        Ok(()),
        "an aud array naming us"
    );

    let other_issuer = keys::grant_for(user, "https://elsewhere.test", AUDIENCE);
    assert_eq!(
        call(&app, keys::sign(&key, &other_issuer)).await,
        refused("token issuer not accepted")
    );
    let other_audience = keys::grant_for(user, ISSUER, "billing-api");
    assert_eq!(
        call(&app, keys::sign(&key, &other_audience)).await,
        refused("token audience not accepted")
    );
    let mut no_audience = right.clone();
    no_audience.audience = None;
    assert_eq!(
        call(&app, keys::sign(&key, &no_audience)).await,
        refused("token has no audience (aud)")
    );
    // The HS256 test token: no kid, and no key of the set is a shared secret.
    assert_eq!(
        call(&app, testkit::token(user)).await,
        refused("token has no key id (kid)")
    );
}

#[tokio::test]
async fn a_key_added_to_the_jwks_file_is_accepted_without_a_restart() {
    let (current, next) = (keys::key_pair(), keys::key_pair());
    let jwks = KeyFile::jwks(&[&current]);
    let app = spawn_with_jwks(&jwks).await;
    let grant = keys::grant_for(Uuid::new_v4(), ISSUER, AUDIENCE);
    let token = keys::sign(&next, &grant);
    assert_eq!(
        call(&app, token.clone()).await,
        refused("token key id (kid) not known")
    );

    jwks.write_jwks(&[&current, &next]);
    testkit::eventually(
        Duration::from_secs(10),
        "the new key to be accepted",
        || {
            let token = token.clone();
            let app = &app;
            async move { call(app, token).await.ok() }
        },
    )
    .await;
    assert_eq!(
        call(&app, keys::sign(&current, &grant)).await,
        Ok(()),
        "the current key still verifies"
    );
    let stranger = keys::key_pair();
    assert_eq!(
        call(&app, keys::sign(&stranger, &grant)).await,
        refused("token key id (kid) not known")
    );
}

#[tokio::test]
async fn an_asymmetric_token_is_accepted_end_to_end_and_never_as_hs256() {
    let key = keys::key_pair();
    let pem = KeyFile::public_pem(&key);
    let app = spawn_app_with(Options {
        auth: Some(service_kit::config::AuthArgs {
            jwt_public_key_file: Some(pem.path().to_owned()),
            jwt_algorithm: Algorithm::EdDSA,
            ..keys::auth_args()
        }),
        ..Options::default()
    })
    .await;
    let alice = investor(&app, "100.00", "1.00").await;
    let token = keys::sign(&key, &keys::grant(alice.user_id));
    let created = app
        .client_with_token(Some(token))
        .await
        .create_investment(create_request(&alice, 2, "asymmetric-1"))
        .await
        .expect("created with an EdDSA token")
        .into_inner();
    assert!(created.investment.is_some());

    // The public key's bytes as an HMAC secret must not make a valid token.
    let forged = service_kit::auth::mint_hs256(
        key.public_pem.as_bytes(),
        alice.user_id,
        &[],
        Duration::from_secs(60),
    )
    .expect("mint");
    assert_eq!(
        call(&app, forged).await,
        refused("token algorithm not accepted")
    );
}

#[tokio::test]
async fn several_key_sources_or_a_leeway_over_five_minutes_fail_at_start_up() {
    let jwks = KeyFile::jwks(&[&keys::key_pair()]);
    let several = try_spawn_app_with(Options {
        auth: Some(service_kit::config::AuthArgs {
            jwt_secret: Some(testkit::JWT_SECRET.to_owned().into()),
            jwt_jwks_file: Some(jwks.path().to_owned()),
            ..keys::auth_args()
        }),
        ..Options::default()
    })
    .await;
    let message = format!("{:#}", several.err().expect("refused to start"));
    assert!(
        message.contains("set only one JWT key source, found JWT_SECRET and JWT_JWKS_FILE"),
        "{message}"
    );
    assert!(!message.contains(testkit::JWT_SECRET), "{message}");

    let none = try_spawn_app_with(Options {
        auth: Some(keys::auth_args()),
        ..Options::default()
    })
    .await;
    let message = format!("{:#}", none.err().expect("refused to start"));
    assert!(message.contains("no JWT key configured"), "{message}");

    let long = Config::try_parse_from([
        "investment-svc",
        &format!("--jwt-secret={}", testkit::JWT_SECRET),
        "--jwt-leeway=6m",
    ]);
    let message = long.expect_err("refused").to_string();
    assert!(message.contains("JWT_LEEWAY is at most 5m"), "{message}");
}
