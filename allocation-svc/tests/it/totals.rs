//! The total a subscription row carries (what a create checks) follows every change of the
//! investments it sums, whoever makes it: create, allocation, failure, admin retry, an
//! operator's SQL.

use api::v1::{self as pb, AllocationStatus::*};
use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, EntityTrait};
use testkit::fixtures::dec;
use uuid::Uuid;

use crate::support::*;

/// `committed_amount` as the subscription row carries it, after checking with the audit that
/// it equals `total_invested + reserved_amount` (invariant 8).
async fn committed(stack: &Stack, investor: &Investor) -> Decimal {
    let violations = ledger::audit::run(&stack.db, std::time::Duration::from_secs(3600))
        .await
        .expect("audit");
    let totals: Vec<_> = violations.iter().filter(|v| v.invariant == 8).collect();
    assert!(totals.is_empty(), "audit: {totals:#?}");
    Subscription::find_by_id(investor.subscription.id)
        .one(&stack.db)
        .await
        .expect("query")
        .expect("subscription")
        .committed_amount
}

async fn finish(stack: &Stack, investor: &Investor, investment: &pb::Investment) -> i32 {
    collect(stack.watch(0, investor.user_id, &investment.id).await)
        .await
        .last()
        .expect("terminal")
        .allocation_status
}

#[tokio::test]
async fn the_committed_total_follows_create_allocation_failure_retry_and_operator_sql() {
    let stack = stack().await;
    let investor = stack.investor("120.00", "1.00", &[5]).await;
    assert_eq!(committed(&stack, &investor).await, dec("0"));

    // A create reserves; allocating it leaves the amount committed (now invested).
    let first = stack.create(&investor, 3).await;
    assert_eq!(committed(&stack, &investor).await, dec("3.00"));
    assert_eq!(finish(&stack, &investor, &first).await, Completed as i32);
    assert_eq!(committed(&stack, &investor).await, dec("3.00"));

    // Two units are left: a failed allocation gives its reservation back.
    let second = stack.create(&investor, 5).await;
    assert_eq!(finish(&stack, &investor, &second).await, Failed as i32);
    assert_eq!(committed(&stack, &investor).await, dec("3.00"));

    // An admin retry reserves it again; with more inventory it completes.
    stack.batches(investor.deal.id, &[10]).await;
    stack
        .admin()
        .await
        .retry_allocation(pb::RetryAllocationRequest {
            investment_id: second.id.clone(),
        })
        .await
        .expect("retry");
    assert_eq!(committed(&stack, &investor).await, dec("8.00"));
    assert_eq!(finish(&stack, &investor, &second).await, Completed as i32);
    assert_eq!(committed(&stack, &investor).await, dec("8.00"));

    // Rows an operator inserts, edits and deletes by hand count too.
    let id = Uuid::now_v7();
    let sql = |statement: String| {
        let db = stack.db.clone();
        async move {
            db.execute_unprepared(&statement)
                .await
                .expect("operator SQL")
        }
    };
    sql(format!(
        "INSERT INTO investments (id, user_id, subscription_id, deal_id, shares, \
         price_per_share, total_amount) VALUES ('{id}', '{}', '{}', '{}', 2, 1.00, 2.00)",
        investor.user_id, investor.subscription.id, investor.deal.id
    ))
    .await;
    assert_eq!(committed(&stack, &investor).await, dec("10.00"));
    sql(format!(
        "UPDATE investments SET shares = 4, total_amount = 4.00 WHERE id = '{id}'"
    ))
    .await;
    assert_eq!(committed(&stack, &investor).await, dec("12.00"));
    sql(format!("DELETE FROM investments WHERE id = '{id}'")).await;
    assert_eq!(committed(&stack, &investor).await, dec("8.00"));
    check_invariants(&stack.db).await;
}
