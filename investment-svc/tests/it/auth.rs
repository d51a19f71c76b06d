//! Identity: every RPC needs a valid bearer token; the user comes only from the token.

use api::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn every_rpc_rejects_missing_and_invalid_tokens() {
    let app = spawn_app().await;
    for (case, token) in testkit::hostile_tokens() {
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
            client
                .cancel_investment(pb::CancelInvestmentRequest::default())
                .await
                .map(|_| ()),
        ]
        .map(|r| r.expect_err(case).code());
        assert_eq!(codes, [Code::Unauthenticated; 5], "{case}");
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
