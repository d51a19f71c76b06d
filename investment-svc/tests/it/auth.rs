//! Identity: every RPC needs a valid bearer token; the user comes only from the token.

use std::time::Duration;

use api::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

fn tokens() -> Vec<(&'static str, Option<String>)> {
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
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(testkit::JWT_SECRET.as_bytes()),
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
        };
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(testkit::JWT_SECRET.as_bytes()),
        )
        .expect("encode")
    };
    vec![
        ("no token", None),
        ("garbage", Some("garbage".into())),
        ("wrong key", Some(wrong_key)),
        ("expired", Some(expired)),
        ("alg none", Some(alg_none)),
        ("subject not a user id", Some(not_a_uuid)),
    ]
}

#[tokio::test]
async fn every_rpc_rejects_missing_and_invalid_tokens() {
    let app = spawn_app().await;
    for (case, token) in tokens() {
        let mut client = app.client_with_token(token).await;
        let codes = [
            client
                .create_investment(pb::CreateInvestmentRequest::default())
                .await
                .map(|_| ()),
            client
                .get_investment(pb::GetInvestmentRequest::default())
                .await
                .map(|_| ()),
            client
                .list_investments(pb::ListInvestmentsRequest::default())
                .await
                .map(|_| ()),
            client
                .list_subscription_balances(pb::ListSubscriptionBalancesRequest::default())
                .await
                .map(|_| ()),
        ]
        .map(|r| r.expect_err(case).code());
        assert_eq!(codes, [Code::Unauthenticated; 4], "{case}");
    }
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let app = spawn_app().await;
    let listed = app
        .client(Uuid::new_v4())
        .await
        .list_investments(pb::ListInvestmentsRequest::default())
        .await
        .expect("authenticated");
    assert!(listed.into_inner().investments.is_empty());
}
