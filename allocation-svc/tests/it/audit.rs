//! The audit finds each kind of broken invariant (so a clean audit at the end of a fault test
//! means something).

use std::{collections::BTreeSet, time::Duration};

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
    let age = Duration::from_secs(30 * 60);
    assert!(
        ledger::audit::run(&stack.db, age)
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
    let sneaky_id = Uuid::now_v7();
    let sneaky = investment::ActiveModel {
        id: Set(sneaky_id),
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

    // 3: an investment left pending for an hour (never published, the sweeper never got to it).
    let stranded = investment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(investor.user_id),
        subscription_id: Set(investor.subscription.id),
        deal_id: Set(investor.deal.id),
        shares: Set(1),
        price_per_share: Set(dec("1.00")),
        total_amount: Set(dec("1.00")),
        status: Set(InvestmentStatus::Pending),
        allocation_status: Set(AllocationStatus::Pending),
        ..Default::default()
    }
    .insert(&stack.db)
    .await
    .expect("stranded investment");
    ledger::events::record(&stack.db, std::slice::from_ref(&stranded))
        .await
        .expect("its event log");
    // 6: a hole in an event log (the PROCESSING entry of the completed one is lost).
    stack
        .db
        .execute_unprepared(&format!(
            "UPDATE investments SET updated_at = now() - interval '1 hour' WHERE id = '{}'; \
             DELETE FROM allocation_events WHERE investment_id = '{}' AND version = 2",
            stranded.id, done.id
        ))
        .await
        .expect("strand one, punch a hole in another's log");

    // 8: a maintained total written directly, so it no longer equals its sum.
    stack
        .db
        .execute_unprepared(&format!(
            "UPDATE subscriptions SET committed_amount = 0 WHERE id = '{}'",
            investor.subscription.id
        ))
        .await
        .expect("corrupt a total");

    let found: BTreeSet<(u8, Uuid)> = ledger::audit::run(&stack.db, age)
        .await
        .expect("audit")
        .into_iter()
        .map(|v| (v.invariant, v.subject))
        .collect();

    let expected = BTreeSet::from([
        (1, first),
        (1, spare.id),
        (2, row.id),
        (3, stranded.id),
        (5, investor.subscription.id),
        (6, row.id),
        // Inserted behind the service's back, it has no event log at all.
        (6, sneaky_id),
        (8, investor.subscription.id),
    ]);
    assert_eq!(found, expected);
}
