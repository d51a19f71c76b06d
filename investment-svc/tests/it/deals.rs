//! ListDeals: the open deals with their price and the units still available, paginated, one
//! statement per page.

use api::v1 as pb;
use chrono::Utc;
use entity::prelude::*;

use crate::support::*;

async fn list(client: &mut Client, page_size: i32, page_token: String) -> pb::ListDealsResponse {
    client
        .list_deals(pb::ListDealsRequest {
            page_size,
            page_token,
        })
        .await
        .expect("deals")
        .into_inner()
}

#[tokio::test]
async fn open_deals_show_units_remaining_reserved_and_available() {
    let app = spawn_app().await;
    let alice = investor(&app, "1000.00", "2.50").await;
    app.fixtures
        .batch(alice.deal.id, 30, Utc::now())
        .await
        .expect("batch");
    app.fixtures
        .batch(alice.deal.id, 12, Utc::now())
        .await
        .expect("batch");
    let closed = closed_deal(&app, "9.00").await;
    let mut client = app.client(alice.user_id).await;
    // Two pending investments reserve 7 shares (no allocator runs in these tests).
    for (shares, id) in [(3, "a"), (4, "b")] {
        client
            .create_investment(create_request(&alice, shares, id))
            .await
            .expect("created");
    }

    let page = list(&mut client, 0, String::new()).await;

    assert_eq!(page.deals.len(), 1, "the closed deal is not offered");
    let deal = &page.deals[0];
    assert_eq!(deal.id, alice.deal.id.to_string());
    assert_ne!(deal.id, closed.id.to_string());
    assert_eq!(deal.price_per_share, "2.50");
    assert_eq!(deal.status(), pb::DealStatus::Open);
    assert_eq!(
        (
            deal.units_remaining,
            deal.units_reserved,
            deal.units_available
        ),
        (42, 7, 35)
    );
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn deals_are_paginated_with_one_statement_per_page() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for _ in 0..7 {
        let deal = app
            .fixtures
            .deal("1.00", DealStatus::Open)
            .await
            .expect("deal");
        app.fixtures
            .batch(deal.id, 5, Utc::now())
            .await
            .expect("batch");
        created.push(deal.id.to_string());
    }
    let mut client = app.client(uuid::Uuid::new_v4()).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut statements = Vec::new();
    loop {
        let (page, counted) = app
            .statements
            .during(list(&mut client, 3, token.clone()))
            .await;
        statements.push(counted);
        seen.extend(page.deals.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    assert_eq!(seen, created, "oldest first, each once");
    assert_eq!(statements, [1, 1, 1], "one statement per page");
}
