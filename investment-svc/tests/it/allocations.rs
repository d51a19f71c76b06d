//! GetInvestment and ListInvestments carry each investment's allocations (issue 21, part 4),
//! read for a whole page in one statement.

use api::v1 as pb;
use chrono::Utc;
use entity::prelude::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use uuid::Uuid;

use crate::support::*;

/// A completed investment of `user` in `deal` at 1.00 a share, allocated `pieces` (batch,
/// units) by hand as the allocator would; reversed as a whole if `reversed`.
async fn allocated(
    app: &TestApp,
    sub: &subscription::Model,
    deal: Uuid,
    pieces: &[(Uuid, i64)],
    reversed: bool,
) -> investment::Model {
    let shares: i64 = pieces.iter().map(|p| p.1).sum();
    let amount = rust_decimal::Decimal::from(shares);
    let mut row = investment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(sub.user_id),
        subscription_id: Set(sub.id),
        deal_id: Set(deal),
        shares: Set(shares),
        price_per_share: Set(testkit::fixtures::dec("1.00")),
        total_amount: Set(amount),
        ..Default::default()
    };
    allocated_by_hand(&mut row, reversed.then_some("mistaken trade"));
    let row = row.insert(&app.db).await.expect("investment");
    for &(batch, units) in pieces {
        app.fixtures
            .user_investment(&row, batch, units, &format!("{units}.00"), reversed)
            .await
            .expect("allocation");
    }
    row
}

fn pieces(i: &pb::Investment) -> Vec<(String, i64, &str, &str, bool)> {
    i.allocations
        .iter()
        .map(|a| {
            (
                a.bulk_purchase_id.clone(),
                a.units,
                a.value.as_str(),
                a.price_per_share.as_str(),
                a.reversed,
            )
        })
        .collect()
}

#[tokio::test]
async fn reads_carry_the_allocations_reversed_ones_marked() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "1.00").await;
    let f = &app.fixtures;
    let (b0, b1) = (
        f.batch(investor.deal.id, 100, Utc::now())
            .await
            .expect("b0"),
        f.batch(investor.deal.id, 100, Utc::now())
            .await
            .expect("b1"),
    );
    let completed = allocated(
        &app,
        &investor.subscription,
        investor.deal.id,
        &[(b0.id, 3), (b1.id, 2)],
        false,
    )
    .await;
    let reversed = allocated(
        &app,
        &investor.subscription,
        investor.deal.id,
        &[(b1.id, 4)],
        true,
    )
    .await;
    let mut client = app.client(investor.user_id).await;
    let pending = create(&mut client, &investor, 1, "").await;

    let got = client
        .get_investment(pb::GetInvestmentRequest {
            investment_id: completed.id.to_string(),
        })
        .await
        .expect("get")
        .into_inner()
        .investment
        .expect("i");
    let (s0, s1) = (b0.id.to_string(), b1.id.to_string());
    assert_eq!(
        pieces(&got),
        [
            (s0.clone(), 3, "3.00", "1.00", false),
            (s1.clone(), 2, "2.00", "1.00", false)
        ]
    );
    assert!(got.reversal.is_none());
    let page = client
        .list_investments(pb::ListInvestmentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .investments;
    let by_id = |id: &str| page.iter().find(|i| i.id == id).expect("listed");
    assert_eq!(pieces(by_id(&completed.id.to_string())), pieces(&got));
    let r = by_id(&reversed.id.to_string());
    assert_eq!(pieces(r), [(s1, 4, "4.00", "1.00", true)]);
    assert_eq!(
        r.reversal.as_ref().map(|r| r.reason.as_str()),
        Some("mistaken trade")
    );
    assert!(by_id(&pending.id).allocations.is_empty());
}

#[tokio::test]
async fn a_page_of_investments_reads_its_allocations_in_one_statement() {
    let app = spawn_app().await;
    let mut counts = Vec::new();
    for n in [1, 20] {
        let investor = investor(&app, "1000.00", "1.00").await;
        let batch = app
            .fixtures
            .batch(investor.deal.id, 1000, Utc::now())
            .await
            .expect("batch");
        for _ in 0..n {
            allocated(
                &app,
                &investor.subscription,
                investor.deal.id,
                &[(batch.id, 2)],
                false,
            )
            .await;
        }
        let mut client = app.client(investor.user_id).await;
        let (page, statements) = app
            .statements
            .during(client.list_investments(pb::ListInvestmentsRequest::default()))
            .await;
        let page = page.expect("list").into_inner().investments;
        assert_eq!(page.len(), n);
        assert!(page.iter().all(|i| i.allocations.len() == 1));
        counts.push(statements);
    }
    eprintln!("statements for a page of 1 and of 20 allocated investments: {counts:?}");
    assert_eq!(counts, [2, 2], "the page, then every allocation of it");
}
