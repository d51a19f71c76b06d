//! GetInvestment and ListInvestments: ownership, pagination, filtering, bad input.

use std::collections::HashSet;

use api::v1 as pb;
use entity::prelude::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn get_returns_own_investment_and_hides_others() {
    let app = spawn_app().await;
    let alice = investor(&app, "100.00", "10.00").await;
    let bob = investor(&app, "100.00", "10.00").await;
    let mut alice_client = app.client(alice.user_id).await;
    let created = create(&mut alice_client, &alice, 2, "").await;

    let got = alice_client
        .get_investment(pb::GetInvestmentRequest {
            investment_id: created.id.clone(),
        })
        .await
        .expect("own investment")
        .into_inner()
        .investment;
    assert_eq!(got.as_ref(), Some(&created));

    let mut bob_client = app.client(bob.user_id).await;
    let foreign = bob_client
        .get_investment(pb::GetInvestmentRequest {
            investment_id: created.id.clone(),
        })
        .await
        .expect_err("Alice's investment");
    let unknown = bob_client
        .get_investment(pb::GetInvestmentRequest {
            investment_id: Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        foreign.message(),
        unknown.message(),
        "foreign and unknown look the same"
    );

    let malformed = bob_client
        .get_investment(pb::GetInvestmentRequest {
            investment_id: "42".into(),
        })
        .await
        .expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&malformed), ["investment_id"]);
}

#[tokio::test]
async fn list_pages_through_own_investments_newest_first() {
    let app = spawn_app().await;
    let alice = investor(&app, "1000.00", "1.00").await;
    let bob = investor(&app, "1000.00", "1.00").await;
    let mut client = app.client(alice.user_id).await;
    let mut created = Vec::new();
    for shares in 1..=7 {
        created.push(create(&mut client, &alice, shares, "").await.id);
    }
    create(&mut app.client(bob.user_id).await, &bob, 1, "").await;

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_investments(pb::ListInvestmentsRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.investments.len() <= 3);
        seen.extend(page.investments.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    created.reverse();
    assert_eq!(
        seen, created,
        "all of Alice's, newest first, none of Bob's, no repeats"
    );
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn list_filters_by_allocation_status() {
    let app = spawn_app().await;
    let alice = investor(&app, "1000.00", "1.00").await;
    let mut client = app.client(alice.user_id).await;
    let a = create(&mut client, &alice, 1, "").await;
    let b = create(&mut client, &alice, 2, "").await;
    let failed = investment::ActiveModel {
        id: Set(b.id.parse().expect("uuid")),
        allocation_status: Set(AllocationStatus::Failed),
        status: Set(InvestmentStatus::Failed),
        allocation_failure: Set(Some(AllocationFailure::InsufficientInventory)),
        ..Default::default()
    };
    failed.update(&app.db).await.expect("mark failed");

    let list = |status: pb::AllocationStatus| {
        let mut client = client.clone();
        async move {
            client
                .list_investments(pb::ListInvestmentsRequest {
                    allocation_status: status.into(),
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
                .investments
                .into_iter()
                .map(|i| i.id)
                .collect::<HashSet<_>>()
        }
    };
    assert_eq!(
        list(pb::AllocationStatus::Pending).await,
        HashSet::from([a.id.clone()])
    );
    assert_eq!(
        list(pb::AllocationStatus::Failed).await,
        HashSet::from([b.id.clone()])
    );
    assert_eq!(
        list(pb::AllocationStatus::Unspecified).await,
        HashSet::from([a.id, b.id])
    );
    assert!(list(pb::AllocationStatus::Completed).await.is_empty());
    let _ = Investment::find()
        .all(&app.db)
        .await
        .expect("db still fine");
}

#[tokio::test]
async fn list_rejects_bad_page_size_token_and_status() {
    let app = spawn_app().await;
    let mut client = app.client(Uuid::new_v4()).await;
    for (case, request, field) in [
        (
            "negative page size",
            pb::ListInvestmentsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            "forged token",
            pb::ListInvestmentsRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            "unknown status",
            pb::ListInvestmentsRequest {
                allocation_status: 99,
                ..Default::default()
            },
            "allocation_status",
        ),
    ] {
        let status = client.list_investments(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}");
        assert_eq!(violated_fields(&status), [field], "{case}");
    }
    let huge = client
        .list_investments(pb::ListInvestmentsRequest {
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .expect("a huge page size is clamped, not an error");
    assert!(huge.into_inner().investments.is_empty());
}

#[tokio::test]
async fn a_page_token_is_refused_by_another_rpc_or_another_filter() {
    let app = spawn_app().await;
    let alice = investor(&app, "1000.00", "1.00").await;
    let mut client = app.client(alice.user_id).await;
    for shares in 1..=3 {
        create(&mut client, &alice, shares, "").await;
    }
    let token = client
        .list_investments(pb::ListInvestmentsRequest {
            page_size: 1,
            allocation_status: pb::AllocationStatus::Pending as i32,
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());

    let other_filter = client
        .list_investments(pb::ListInvestmentsRequest {
            page_size: 1,
            page_token: token.clone(),
            allocation_status: pb::AllocationStatus::Failed as i32,
        })
        .await
        .expect_err("token of another filter");
    let other_rpc = client
        .list_subscription_balances(pb::ListSubscriptionBalancesRequest {
            page_size: 1,
            page_token: token.clone(),
        })
        .await
        .expect_err("token of another RPC");
    for refused in [other_filter, other_rpc] {
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&refused), ["page_token"]);
    }
    let same = client
        .list_investments(pb::ListInvestmentsRequest {
            page_size: 1,
            page_token: token,
            allocation_status: pb::AllocationStatus::Pending as i32,
        })
        .await
        .expect("same RPC, same filter");
    assert_eq!(same.into_inner().investments.len(), 1);
}
