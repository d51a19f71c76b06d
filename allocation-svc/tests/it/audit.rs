//! The audit finds each kind of broken invariant (so a clean audit at the end of a fault test
//! means something).

use std::collections::BTreeSet;

use chrono::Utc;
use entity::prelude::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use testkit::fixtures::dec;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn the_audit_reports_each_broken_invariant() {
    let stack = stack().await;
    let investor = stack.investor("120.00", "1.00", &[10]).await;
    let done = stack.create(&investor, 4).await;
    collect(stack.watch(0, investor.user_id, &done.id).await).await;
    assert!(
        ledger::audit::run(&stack.db)
            .await
            .expect("audit")
            .is_empty()
    );
    let first = investor.batches[0].id;
    let spare = stack
        .fixtures
        .batch(investor.deal.id, 5, Utc::now())
        .await
        .expect("batch");

    // 1: a unit vanishes from a batch without an allocation.
    stack
        .db
        .execute_unprepared(&format!(
            "UPDATE bulk_purchases SET units_remaining = units_remaining - 1 WHERE id = '{first}'"
        ))
        .await
        .expect("corrupt a batch");
    // 2 (and 1 for the spare batch): one allocation row too many.
    let row = stack.investment(&done.id).await;
    stack
        .fixtures
        .user_investment(&row, spare.id, 1, "1.00", false)
        .await
        .expect("extra allocation");
    // 5: a pending investment that skipped the balance check (116.00 left, 200.00 reserved).
    let sneaky = investment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(investor.user_id),
        subscription_id: Set(investor.subscription.id),
        deal_id: Set(investor.deal.id),
        shares: Set(200),
        price_per_share: Set(dec("1.00")),
        total_amount: Set(dec("200.00")),
        status: Set(InvestmentStatus::Pending),
        allocation_status: Set(AllocationStatus::Pending),
        ..Default::default()
    };
    sneaky
        .insert(&stack.db)
        .await
        .expect("over-reserving investment");

    let found: BTreeSet<(u8, Uuid)> = ledger::audit::run(&stack.db)
        .await
        .expect("audit")
        .into_iter()
        .map(|v| (v.invariant, v.subject))
        .collect();

    let expected = BTreeSet::from([
        (1, first),
        (1, spare.id),
        (2, row.id),
        (5, investor.subscription.id),
    ]);
    assert_eq!(found, expected);
}
