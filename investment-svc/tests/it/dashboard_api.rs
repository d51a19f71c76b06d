//! What the dashboard needs beyond the investment RPCs: deals named whatever their status,
//! refusals with their figures as `google.rpc.ErrorInfo` metadata, the currency of every amount.

use api::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn get_deals_names_closed_deals_too_and_leaves_unknown_ones_out() {
    let app = spawn_app().await;
    let alice = investor(&app, "100.00", "2.50").await;
    let closed = closed_deal(&app, "9.00").await;
    let mut client = app.client(alice.user_id).await;

    let mut deals = client
        .get_deals(pb::GetDealsRequest {
            deal_ids: vec![
                alice.deal.id.to_string(),
                closed.id.to_string(),
                Uuid::now_v7().to_string(),
            ],
        })
        .await
        .expect("deals")
        .into_inner()
        .deals;
    deals.sort_by_key(|d| d.price_per_share.clone());

    let got: Vec<_> = deals
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                d.name.clone(),
                d.price_per_share.as_str(),
                d.status(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                alice.deal.id.to_string(),
                alice.deal.name.clone(),
                "2.50",
                pb::DealStatus::Open
            ),
            (
                closed.id.to_string(),
                closed.name.clone(),
                "9.00",
                pb::DealStatus::Closed
            ),
        ]
    );
}

#[tokio::test]
async fn get_deals_refuses_bad_ids_and_more_than_a_hundred() {
    let app = spawn_app().await;
    let mut client = app.client(Uuid::now_v7()).await;

    let bad = client
        .get_deals(pb::GetDealsRequest {
            deal_ids: vec!["nope".into()],
        })
        .await
        .expect_err("not a UUID");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert_eq!(violated_fields(&bad), vec!["deal_ids".to_owned()]);

    let many = client
        .get_deals(pb::GetDealsRequest {
            deal_ids: (0..101).map(|_| Uuid::now_v7().to_string()).collect(),
        })
        .await
        .expect_err("too many");
    assert_eq!(many.code(), Code::InvalidArgument, "{many:?}");
    assert_eq!(violated_fields(&many), vec!["deal_ids".to_owned()]);

    let none = client
        .get_deals(pb::GetDealsRequest { deal_ids: vec![] })
        .await
        .expect("no ids, no deals");
    assert!(none.into_inner().deals.is_empty());
}

#[tokio::test]
async fn refusals_carry_their_reason_and_figures_as_error_info() {
    let app = spawn_app().await;
    let (investor, _, paused) = investor_with_paused(&app).await;
    let mut client = app.client(investor.user_id).await;

    let short = client
        .create_investment(create_request(&investor, 13, ""))
        .await
        .expect_err("13 x 10.00 is more than 120.00");
    let info = short.get_details_error_info().expect("ErrorInfo");
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("INSUFFICIENT_BALANCE", "invest.v1")
    );
    assert_eq!(
        info.metadata.get("required").map(String::as_str),
        Some("130.00")
    );
    assert_eq!(
        info.metadata.get("available").map(String::as_str),
        Some("120.00")
    );

    let not_active = client
        .create_investment(pb::CreateInvestmentRequest {
            subscription_id: paused.id.to_string(),
            ..create_request(&investor, 1, "")
        })
        .await
        .expect_err("paused");
    let info = not_active.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "SUBSCRIPTION_STATUS");
    assert_eq!(
        info.metadata.get("subscription_status").map(String::as_str),
        Some("paused")
    );
    assert_eq!(investment_count(&app.db).await, 0);
}

#[tokio::test]
async fn balances_say_their_currency_usd_unless_configured() {
    let app = spawn_app().await;
    let investor = investor(&app, "10.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;

    let page = client
        .list_subscription_balances(pb::ListSubscriptionBalancesRequest::default())
        .await
        .expect("balances")
        .into_inner();

    assert_eq!(page.currency_code, "USD");
}
