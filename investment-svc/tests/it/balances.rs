//! ListSubscriptionBalances: the balance formula, pagination, and the N+1 regression test.

use api::v1 as pb;
use chrono::Utc;
use entity::prelude::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

async fn balances(client: &mut Client) -> Vec<pb::SubscriptionBalance> {
    client
        .list_subscription_balances(pb::ListSubscriptionBalancesRequest::default())
        .await
        .expect("balances")
        .into_inner()
        .balances
}

#[tokio::test]
async fn balance_follows_the_formula() {
    let app = spawn_app().await;
    let f = &app.fixtures;
    let user = Uuid::new_v4();
    // Plan 100.00 for 6 months, subscription overrides the amount with 250.00: worth 1500.00.
    let plan = f.plan("100.00", Some(6)).await.expect("plan");
    let sub = f
        .subscription(user, plan.id, Some("250.00"), SubscriptionStatus::Active)
        .await
        .expect("sub");
    for status in [
        PaymentStatus::Paid,
        PaymentStatus::Paid,
        PaymentStatus::Pending,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
    ] {
        f.payment(&sub, "250.00", status).await.expect("payment");
    }
    let deal = f.deal("10.00", DealStatus::Open).await.expect("deal");
    let batch = f.batch(deal.id, 1000, Utc::now()).await.expect("batch");
    let mut client = app.client(user).await;
    let create = |shares: i64| pb::CreateInvestmentRequest {
        subscription_id: sub.id.to_string(),
        deal_id: deal.id.to_string(),
        shares,
        request_id: String::new(),
    };
    // Allocated (20 shares = 200.00), and another (10 = 100.00) allocated then reversed: its
    // row is marked reversed and its amount no longer counts.
    let mut allocate = async |shares: i64, value: &str, reversed: bool| {
        let created = client
            .create_investment(create(shares))
            .await
            .expect("created")
            .into_inner()
            .investment
            .expect("i");
        let mut row = investment::ActiveModel {
            id: Set(created.id.parse().expect("uuid")),
            ..Default::default()
        };
        allocated_by_hand(&mut row, reversed.then_some("refund"));
        let row = row.update(&app.db).await.expect("allocate it");
        f.user_investment(&row, batch.id, shares, value, reversed)
            .await
            .expect("allocation");
    };
    allocate(20, "200.00", false).await;
    allocate(10, "100.00", true).await;
    // Pending (5 shares = 50.00) and processing (7 = 70.00) are reserved; failed (9) is not.
    client.create_investment(create(5)).await.expect("pending");
    let processing = client
        .create_investment(create(7))
        .await
        .expect("p")
        .into_inner()
        .investment
        .expect("i");
    let failed = client
        .create_investment(create(9))
        .await
        .expect("f")
        .into_inner()
        .investment
        .expect("i");
    for (id, status) in [
        (processing.id, AllocationStatus::Processing),
        (failed.id, AllocationStatus::Failed),
    ] {
        investment::ActiveModel {
            id: Set(id.parse().expect("uuid")),
            allocation_status: Set(status),
            status: Set(status.investment_status()),
            // A failed row has a reason (the table's CHECK).
            allocation_failure: Set((status == AllocationStatus::Failed)
                .then_some(AllocationFailure::AttemptsExhausted)),
            ..Default::default()
        }
        .update(&app.db)
        .await
        .expect("set status");
    }

    let all = balances(&mut client).await;

    assert_eq!(all.len(), 1);
    let b = &all[0];
    assert_eq!(b.subscription_id, sub.id.to_string());
    assert_eq!(b.status(), pb::SubscriptionStatus::Active);
    assert_eq!(b.monthly_amount, "250.00");
    assert_eq!(b.duration_months, 6);
    assert_eq!(b.total_value, "1500.00");
    assert_eq!(b.months_completed, 2, "only paid payments count");
    assert_eq!(b.total_paid, "500.00");
    assert_eq!(
        b.total_invested, "200.00",
        "reversed allocations do not count"
    );
    assert_eq!(b.reserved_amount, "120.00", "pending + processing");
    assert_eq!(b.available_balance, "1180.00");

    // One balance: a create admits exactly what the listing shows (issue 21: it used to
    // admit 1080.00, counting the reversed investment still).
    let over = client
        .create_investment(create(119))
        .await
        .expect_err("1190.00 is more than available");
    assert!(
        over.message().ends_with("1180.00 available"),
        "{}",
        over.message()
    );
    client
        .create_investment(create(118))
        .await
        .expect("exactly the 1180.00 shown");
}

#[tokio::test]
async fn null_amount_and_duration_default_to_the_plan_and_twelve_months() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let plan = app.fixtures.plan("75.50", None).await.expect("plan");
    app.fixtures
        .subscription(user, plan.id, None, SubscriptionStatus::Active)
        .await
        .expect("sub");

    let all = balances(&mut app.client(user).await).await;

    assert_eq!(all[0].monthly_amount, "75.50");
    assert_eq!(all[0].duration_months, 12);
    assert_eq!(all[0].total_value, "906.00");
    assert_eq!(all[0].months_completed, 0);
    assert_eq!(all[0].total_paid, "0.00");
    assert_eq!(all[0].available_balance, "906.00");
}

#[tokio::test]
async fn lists_active_and_paused_subscriptions_only_and_only_the_callers() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let plan = app.fixtures.plan("10.00", None).await.expect("plan");
    let mut expected = Vec::new();
    for status in [
        SubscriptionStatus::Active,
        SubscriptionStatus::Paused,
        SubscriptionStatus::Cancelled,
        SubscriptionStatus::Completed,
    ] {
        let sub = app
            .fixtures
            .subscription(user, plan.id, None, status)
            .await
            .expect("sub");
        if matches!(
            status,
            SubscriptionStatus::Active | SubscriptionStatus::Paused
        ) {
            expected.push(sub.id.to_string());
        }
    }
    app.fixtures
        .subscription(Uuid::new_v4(), plan.id, None, SubscriptionStatus::Active)
        .await
        .expect("someone else's");

    let listed: Vec<_> = balances(&mut app.client(user).await)
        .await
        .into_iter()
        .map(|b| (b.subscription_id.clone(), b.status()))
        .collect();

    assert_eq!(
        listed,
        vec![
            (expected[0].clone(), pb::SubscriptionStatus::Active),
            (expected[1].clone(), pb::SubscriptionStatus::Paused)
        ]
    );
}

#[tokio::test]
async fn balances_paginate() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let plan = app.fixtures.plan("10.00", None).await.expect("plan");
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            app.fixtures
                .subscription(user, plan.id, None, SubscriptionStatus::Active)
                .await
                .expect("sub")
                .id
                .to_string(),
        );
    }
    let mut client = app.client(user).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_subscription_balances(pb::ListSubscriptionBalancesRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.balances.into_iter().map(|b| b.subscription_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, created);

    let status = client
        .list_subscription_balances(pb::ListSubscriptionBalancesRequest {
            page_size: -3,
            page_token: "%%%".into(),
        })
        .await
        .expect_err("bad paging");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["page_size", "page_token"]);
}

/// The regression test for the N+1 fault: the old system ran 1 + N queries for N
/// subscriptions. Every subscription here has paid payments, allocations and reservations, so
/// an implementation that looked any of them up per subscription would show it.
#[tokio::test]
async fn listing_balances_sends_one_statement_for_1_10_and_100_subscriptions() {
    let app = spawn_app().await;
    let f = &app.fixtures;
    let plan = f.plan("100.00", None).await.expect("plan");
    let deal = f.deal("1.00", DealStatus::Open).await.expect("deal");
    let batch = f
        .batch(deal.id, 1_000_000, Utc::now())
        .await
        .expect("batch");

    let mut counts = Vec::new();
    for n in [1, 10, 100] {
        let user = Uuid::new_v4();
        for _ in 0..n {
            let sub = f
                .subscription(user, plan.id, None, SubscriptionStatus::Active)
                .await
                .expect("sub");
            f.payment(&sub, "100.00", PaymentStatus::Paid)
                .await
                .expect("payment");
            let inv = investment::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(user),
                subscription_id: Set(sub.id),
                deal_id: Set(deal.id),
                shares: Set(10),
                price_per_share: Set(testkit::fixtures::dec("1.00")),
                total_amount: Set(testkit::fixtures::dec("10.00")),
                status: Set(InvestmentStatus::Active),
                allocation_status: Set(AllocationStatus::Completed),
                allocated_at: Set(Some(Utc::now())),
                ..Default::default()
            }
            .insert(&app.db)
            .await
            .expect("investment");
            f.user_investment(&inv, batch.id, 10, "10.00", false)
                .await
                .expect("allocation");
        }
        let mut client = app.client(user).await;
        let request = pb::ListSubscriptionBalancesRequest {
            page_size: 100,
            page_token: String::new(),
        };
        let (page, statements) = app
            .statements
            .during(client.list_subscription_balances(request))
            .await;
        let page = page.expect("balances").into_inner();
        assert_eq!(page.balances.len(), n);
        assert!(
            page.balances
                .iter()
                .all(|b| b.total_invested == "10.00" && b.months_completed == 1)
        );
        counts.push(statements);
    }

    eprintln!("statements for 1, 10, 100 subscriptions: {counts:?}");
    assert_eq!(
        counts,
        [1, 1, 1],
        "one statement per page, whatever its size"
    );
}
