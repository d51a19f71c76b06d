//! CreateInvestment: acceptance, publication, idempotency, every error path, concurrency.

use std::collections::HashSet;

use api::v1 as pb;
use entity::prelude::*;
use futures::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use testkit::fixtures::dec;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn create_accepts_as_pending_and_publishes_the_request() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "12.50").await;
    let mut client = app.client(investor.user_id).await;

    let investment = create(&mut client, &investor, 8, "order-1").await;

    assert_eq!(
        investment.allocation_status(),
        pb::AllocationStatus::Pending
    );
    assert_eq!(investment.status(), pb::InvestmentStatus::Pending);
    assert_eq!(investment.user_id, investor.user_id.to_string());
    assert_eq!(investment.shares, 8);
    assert_eq!(investment.price_per_share, "12.50");
    assert_eq!(investment.total_amount, "100.00");
    assert_eq!(investment.request_id, "order-1");
    assert_eq!(investment.status_version, 1);

    let id: Uuid = investment.id.parse().expect("uuid");
    let row = Investment::find_by_id(id)
        .one(&app.db)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(row.allocation_status, AllocationStatus::Pending);
    assert_eq!(row.total_amount, dec("100.00"));

    let published = app.published().await;
    assert_eq!(published.len(), 1, "exactly one request published");
    let (subject, msg_id, request) = &published[0];
    assert_eq!(
        subject,
        &format!("{}.requests.{}", app.names.prefix, investor.deal.id)
    );
    assert_eq!(msg_id.as_deref(), Some(investment.id.as_str()));
    assert_eq!(request.investment_id, investment.id);
    assert_eq!(request.user_id, investor.user_id.to_string());
    assert_eq!(request.deal_id, investor.deal.id.to_string());
    assert_eq!(
        request.subscription_id,
        investor.subscription.id.to_string()
    );
    assert_eq!(request.shares, 8);
}

#[tokio::test]
async fn same_request_id_and_payload_returns_the_same_investment() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;

    let first = client
        .create_investment(create_request(&investor, 3, "same"))
        .await
        .expect("first");
    let second = client
        .create_investment(create_request(&investor, 3, "same"))
        .await
        .expect("second");

    assert_eq!(
        first.into_inner().investment,
        second.into_inner().investment
    );
    assert_eq!(investment_count(&app.db).await, 1);
    assert_eq!(app.published().await.len(), 1);
}

#[tokio::test]
async fn same_request_id_with_another_payload_is_already_exists() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;
    client
        .create_investment(create_request(&investor, 3, "key"))
        .await
        .expect("first");

    let status = client
        .create_investment(create_request(&investor, 4, "key"))
        .await
        .expect_err("payload differs");

    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(investment_count(&app.db).await, 1);
}

#[tokio::test]
async fn request_ids_are_scoped_per_user() {
    let app = spawn_app().await;
    let alice = investor(&app, "100.00", "10.00").await;
    let bob = investor(&app, "100.00", "10.00").await;

    let a = app
        .client(alice.user_id)
        .await
        .create_investment(create_request(&alice, 1, "k"))
        .await;
    let b = app
        .client(bob.user_id)
        .await
        .create_investment(create_request(&bob, 1, "k"))
        .await;

    assert_ne!(
        a.expect("alice").into_inner().investment.expect("i").id,
        b.expect("bob").into_inner().investment.expect("i").id
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_with_field_violations_and_change_nothing() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;
    let valid = create_request(&investor, 1, "");
    let cases: Vec<(&str, pb::CreateInvestmentRequest, Vec<&str>)> = vec![
        (
            "empty request",
            pb::CreateInvestmentRequest::default(),
            vec!["subscription_id", "deal_id", "shares"],
        ),
        (
            "malformed subscription id",
            pb::CreateInvestmentRequest {
                subscription_id: "nope".into(),
                ..valid.clone()
            },
            vec!["subscription_id"],
        ),
        (
            "nil subscription id",
            pb::CreateInvestmentRequest {
                subscription_id: Uuid::nil().to_string(),
                ..valid.clone()
            },
            vec!["subscription_id"],
        ),
        (
            "malformed deal id",
            pb::CreateInvestmentRequest {
                deal_id: "x".repeat(1000),
                ..valid.clone()
            },
            vec!["deal_id"],
        ),
        (
            "zero shares",
            pb::CreateInvestmentRequest {
                shares: 0,
                ..valid.clone()
            },
            vec!["shares"],
        ),
        (
            "negative shares",
            pb::CreateInvestmentRequest {
                shares: -5,
                ..valid.clone()
            },
            vec!["shares"],
        ),
        (
            "absurd shares",
            pb::CreateInvestmentRequest {
                shares: i64::MAX,
                ..valid.clone()
            },
            vec!["shares"],
        ),
        (
            "over-long request id",
            pb::CreateInvestmentRequest {
                request_id: "r".repeat(129),
                ..valid.clone()
            },
            vec!["request_id"],
        ),
        (
            "control characters in request id",
            pb::CreateInvestmentRequest {
                request_id: "a\u{0}b".into(),
                ..valid.clone()
            },
            vec!["request_id"],
        ),
    ];
    for (case, request, fields) in cases {
        let status = client.create_investment(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert_eq!(violated_fields(&status), fields, "{case}");
    }
    assert_eq!(investment_count(&app.db).await, 0);
    assert!(app.published().await.is_empty());
}

#[tokio::test]
async fn a_128_character_unicode_request_id_is_accepted() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let request_id = "é".repeat(128);
    let created = app
        .client(investor.user_id)
        .await
        .create_investment(create_request(&investor, 1, &request_id))
        .await
        .expect("accepted");
    assert_eq!(
        created.into_inner().investment.expect("i").request_id,
        request_id
    );
}

#[tokio::test]
async fn unknown_or_foreign_subscription_and_unknown_deal_are_not_found() {
    let app = spawn_app().await;
    let alice = investor(&app, "100.00", "10.00").await;
    let bob = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(alice.user_id).await;

    let unknown_subscription = pb::CreateInvestmentRequest {
        subscription_id: Uuid::new_v4().to_string(),
        ..create_request(&alice, 1, "")
    };
    let bobs_subscription = pb::CreateInvestmentRequest {
        subscription_id: bob.subscription.id.to_string(),
        ..create_request(&alice, 1, "")
    };
    let unknown_deal = pb::CreateInvestmentRequest {
        deal_id: Uuid::new_v4().to_string(),
        ..create_request(&alice, 1, "")
    };
    for (case, request) in [
        ("unknown subscription", unknown_subscription),
        ("someone else's subscription", bobs_subscription),
        ("unknown deal", unknown_deal),
    ] {
        let status = client.create_investment(request).await.expect_err(case);
        assert_eq!(status.code(), Code::NotFound, "{case}: {status:?}");
    }
    // The same message for unknown and foreign: nothing tells Bob's subscription exists.
    assert_eq!(investment_count(&app.db).await, 0);
}

#[tokio::test]
async fn each_rule_refuses_in_the_one_statement_with_its_reason() {
    let app = spawn_app().await;
    let (investor, plan, paused) = investor_with_paused(&app).await;
    let cancelled = app
        .fixtures
        .subscription(
            investor.user_id,
            plan.id,
            None,
            SubscriptionStatus::Cancelled,
        )
        .await
        .expect("cancelled");
    let closed = closed_deal(&app, "10.00").await;
    let mut client = app.client(investor.user_id).await;

    // A paused subscription on a closed deal for more than it is worth: the subscription's
    // rule is the first.
    for (case, request, reason) in [
        (
            "paused subscription",
            pb::CreateInvestmentRequest {
                subscription_id: paused.id.to_string(),
                deal_id: closed.id.to_string(),
                ..create_request(&investor, 1_000, "")
            },
            "SUBSCRIPTION_STATUS",
        ),
        (
            "cancelled subscription",
            pb::CreateInvestmentRequest {
                subscription_id: cancelled.id.to_string(),
                ..create_request(&investor, 1, "")
            },
            "SUBSCRIPTION_STATUS",
        ),
        (
            "closed deal",
            pb::CreateInvestmentRequest {
                deal_id: closed.id.to_string(),
                ..create_request(&investor, 13, "")
            },
            "DEAL_STATUS",
        ),
        (
            "13 x 10.00 is more than 120.00",
            create_request(&investor, 13, ""),
            "INSUFFICIENT_BALANCE",
        ),
    ] {
        let (refused, statements) = app
            .statements
            .during(client.create_investment(request))
            .await;
        let status = refused.expect_err(case);
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{case}: {status:?}"
        );
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, reason, "{case}");
        assert_eq!(
            statements, 1,
            "{case}: refused by the statement's own verdict"
        );
    }
    assert_eq!(investment_count(&app.db).await, 0);
}

#[tokio::test]
async fn more_than_the_available_balance_is_failed_precondition() {
    let app = spawn_app().await;
    // Worth 12 x 10.00 = 120.00; shares cost 10.00.
    let investor = investor(&app, "10.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;

    client
        .create_investment(create_request(&investor, 12, ""))
        .await
        .expect("exactly the balance");
    let status = client
        .create_investment(create_request(&investor, 1, ""))
        .await
        .expect_err("the pending investment reserves the whole balance");

    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("insufficient available balance"),
        "{}",
        status.message()
    );
    assert_eq!(investment_count(&app.db).await, 1);
}

#[tokio::test]
async fn a_create_is_one_statement_and_a_subscriptions_history_counts_against_its_balance() {
    let app = spawn_app().await;
    // Worth 12 x 10.00 = 120.00, of which 100 one-share investments at 1.00 are allocated.
    let investor = investor(&app, "10.00", "1.00").await;
    app.fixtures
        .history(&investor.subscription, &investor.deal, 100)
        .await
        .expect("history");
    let mut client = app.client(investor.user_id).await;

    let (created, statements) = app
        .statements
        .during(client.create_investment(create_request(&investor, 20, "")))
        .await;
    created.expect("exactly what is left");
    assert_eq!(
        statements, 1,
        "lock, checks, insert and event in one statement"
    );
    let refused = client
        .create_investment(create_request(&investor, 1, ""))
        .await
        .expect_err("nothing is left");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("insufficient available balance"),
        "{}",
        refused.message()
    );
    assert_eq!(investment_count(&app.db).await, 101);
}

#[tokio::test]
async fn concurrent_creates_never_reserve_more_than_the_subscription_is_worth() {
    let app = spawn_app().await;
    // Worth 12 x 100.00 = 1200.00; each create asks for 3 x 10.00 = 30.00, so 40 fit.
    let investor = investor(&app, "100.00", "10.00").await;
    let client = app.client(investor.user_id).await;

    let results = join_all((0..50).map(|_| {
        let mut client = client.clone();
        let request = create_request(&investor, 3, "");
        async move { client.create_investment(request).await }
    }))
    .await;

    let accepted = results.iter().filter(|r| r.is_ok()).count();
    for rejected in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(rejected.code(), Code::FailedPrecondition, "{rejected:?}");
    }
    assert_eq!(accepted, 40);
    let reserved: rust_decimal::Decimal = Investment::find()
        .filter(investment::Column::SubscriptionId.eq(investor.subscription.id))
        .all(&app.db)
        .await
        .expect("rows")
        .iter()
        .map(|i| i.total_amount)
        .sum();
    assert_eq!(
        reserved,
        dec("1200.00"),
        "total_invested + reserved_amount <= total_value"
    );
}

#[tokio::test]
async fn concurrent_duplicates_of_one_request_id_yield_one_investment() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let client = app.client(investor.user_id).await;

    let results = join_all((0..20).map(|_| {
        let mut client = client.clone();
        let request = create_request(&investor, 2, "double-click");
        async move { client.create_investment(request).await }
    }))
    .await;

    let ids: HashSet<String> = results
        .into_iter()
        .map(|r| {
            r.expect("every duplicate succeeds")
                .into_inner()
                .investment
                .expect("i")
                .id
        })
        .collect();
    assert_eq!(ids.len(), 1, "one investment for one request id");
    assert_eq!(investment_count(&app.db).await, 1);
    assert_eq!(app.published().await.len(), 1);
}

#[tokio::test]
async fn database_down_is_unavailable() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;
    app.test_db.set_reachable(false, None).await;

    let status = client
        .create_investment(create_request(&investor, 1, ""))
        .await
        .expect_err("no database");

    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
