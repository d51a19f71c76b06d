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
    let done = stack.create_finished(&investor, 4).await;
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
    // 2 (and 1 for the spare batch, and 9: it came from a newer batch while the first still
    // had units): one allocation row too many.
    let row = stack.investment(&done.id).await;
    stack
        .fixtures
        .user_investment(&row, spare.id, 1, "1.00", false)
        .await
        .expect("extra allocation");
    // 5: a pending investment that skipped the balance check (116.00 left, 200.00 reserved).
    let sneaky = pending_row(&investor, 200)
        .insert(&stack.db)
        .await
        .expect("over-reserving investment");

    // 3: an investment left pending for an hour (never published, the sweeper never got to it).
    let stranded = pending_row(&investor, 1)
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
        (6, sneaky.id),
        (8, investor.subscription.id),
        (9, row.id),
    ]);
    assert_eq!(found, expected);
}

/// A PENDING investment of `shares` at 1.00 on the investor's deal, written behind the
/// services' back (no balance check, no event log) to break invariants with.
fn pending_row(investor: &Investor, shares: i64) -> investment::ActiveModel {
    investment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(investor.user_id),
        subscription_id: Set(investor.subscription.id),
        deal_id: Set(investor.deal.id),
        shares: Set(shares),
        price_per_share: Set(dec("1.00")),
        total_amount: Set(dec("1.00") * rust_decimal::Decimal::from(shares)),
        status: Set(InvestmentStatus::Pending),
        allocation_status: Set(AllocationStatus::Pending),
        ..Default::default()
    }
}

/// Runs `sql` as an operator would.
async fn by_hand(stack: &Stack, sql: String) {
    stack.db.execute_unprepared(&sql).await.expect(&sql);
}

async fn completed(stack: &Stack, investor: &Investor, shares: i64) -> Uuid {
    let created = stack.create_finished(investor, shares).await;
    created.id.parse().expect("uuid")
}

#[tokio::test]
async fn the_audit_sees_where_units_came_from_whose_events_they_are_and_what_was_given_back() {
    let stack = stack().await;
    let a = stack.investor("1200.00", "1.00", &[10, 10, 10]).await;
    let [a0, a1, a2] = [a.batches[0].id, a.batches[1].id, a.batches[2].id];
    let i2 = completed(&stack, &a, 12).await; // a0: 10, a1: 2
    let i3 = completed(&stack, &a, 3).await; // a1: 3
    let i4 = completed(&stack, &a, 1).await; // a1: 1
    // A pool of its own for i1, whose units are moved to another deal's batch.
    let w = stack.investor("120.00", "1.00", &[10]).await;
    let w0 = w.batches[0].id;
    let i1 = completed(&stack, &w, 4).await; // w0: 4
    let other = stack.investor("120.00", "1.00", &[10]).await;
    // A cancelled investment, and a reversed one, each on a subscription of its own.
    let y = stack.investor("120.00", "1.00", &[10]).await;
    let held = hold(&stack, &y, Hold::Deal).await;
    let y1 = stack.create(&y, 5).await;
    stack
        .investments(y.user_id)
        .await
        .cancel_investment(api::v1::CancelInvestmentRequest {
            investment_id: y1.id.clone(),
            request_id: String::new(),
        })
        .await
        .expect("cancel");
    held.rollback().await.expect("release");
    let z = stack.investor("120.00", "1.00", &[10]).await;
    let z1 = completed(&stack, &z, 6).await;
    stack
        .admin()
        .await
        .reverse_allocation(api::v1::ReverseAllocationRequest {
            investment_id: z1.to_string(),
            reason: "test".into(),
            request_id: String::new(),
        })
        .await
        .expect("reverse");
    let age = Duration::from_secs(30 * 60);
    let clean = ledger::audit::run(&stack.db, age).await.expect("audit");
    assert!(clean.is_empty(), "{clean:#?}");

    // 9: i1's units moved to another deal's batch (the batches' counts moved with them, so
    // units are still conserved).
    let b = other.batches[0].id;
    by_hand(
        &stack,
        format!(
            "UPDATE user_investments SET bulk_purchase_id = '{b}' WHERE investment_id = '{i1}'; \
         UPDATE bulk_purchases SET units_remaining = units_remaining + 4 WHERE id = '{w0}'; \
         UPDATE bulk_purchases SET units_remaining = units_remaining - 4 WHERE id = '{b}'"
        ),
    )
    .await;
    // 9: i2's two pieces valued 1.00 off units x price each way (their sum still right).
    by_hand(
        &stack,
        format!(
            "UPDATE user_investments SET value_allocated = value_allocated + \
         CASE WHEN bulk_purchase_id = '{a0}' THEN 1 ELSE -1 END WHERE investment_id = '{i2}'"
        ),
    )
    .await;
    // 9: i3's piece moved from a1 to the newer a2, while a1 still had units then.
    by_hand(
        &stack,
        format!(
            "UPDATE user_investments SET bulk_purchase_id = '{a2}' WHERE investment_id = '{i3}'; \
         UPDATE bulk_purchases SET units_remaining = units_remaining + 3 WHERE id = '{a1}'; \
         UPDATE bulk_purchases SET units_remaining = units_remaining - 3 WHERE id = '{a2}'"
        ),
    )
    .await;
    // 7: one of i4's events names another user (whose WatchAllocations would show it).
    by_hand(&stack, format!(
        "UPDATE allocation_events SET user_id = '{}' WHERE investment_id = '{i4}' AND version = 1",
        other.user_id
    )).await;
    // 8: the cancelled y1 still holds its reservation in the subscription's total.
    by_hand(
        &stack,
        format!(
            "UPDATE subscriptions SET committed_amount = committed_amount + 5 WHERE id = '{}'",
            y.subscription.id
        ),
    )
    .await;
    // 2 (and 1, 8): the reversed z1 holds its units again.
    by_hand(
        &stack,
        format!("UPDATE user_investments SET is_reversed = false WHERE investment_id = '{z1}'"),
    )
    .await;

    let found = ledger::audit::run(&stack.db, age).await.expect("audit");
    let subjects: BTreeSet<(u8, Uuid)> = found.iter().map(|v| (v.invariant, v.subject)).collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            (9, i1),
            (9, i2),
            (9, i3),
            (7, i4),
            (8, y.subscription.id),
            (2, z1),
            (1, z.batches[0].id),
            (8, z.subscription.id),
        ]),
        "{found:#?}"
    );
    let details = |id: Uuid| -> Vec<&str> {
        found
            .iter()
            .filter(|v| v.subject == id)
            .map(|v| v.detail.as_str())
            .collect()
    };
    assert!(
        details(i1)[0].contains("not the investment's deal"),
        "{:?}",
        details(i1)
    );
    assert_eq!(details(i2).len(), 2, "each piece off units x price");
    assert!(
        details(i3)[0].contains(&format!("older batch {a1}")),
        "{:?}",
        details(i3)
    );
    assert!(
        details(z1)[0].starts_with("reversed investment"),
        "{:?}",
        details(z1)
    );
}
