//! The whole life of an investment (issue 21): cancel, reverse, one available balance.

mod balances;
mod cancel;
mod reverse;

use std::time::Duration;

use api::v1 as pb;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::support::*;

/// CancelInvestment as `user_id`.
pub async fn cancel(stack: &Stack, user_id: Uuid, id: &str) -> Result<pb::Investment, Status> {
    stack
        .investments(user_id)
        .await
        .cancel_investment(pb::CancelInvestmentRequest {
            investment_id: id.to_owned(),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().investment.expect("investment"))
}

/// ReverseAllocation as an admin.
pub async fn reverse(
    stack: &Stack,
    id: &str,
    reason: &str,
    request_id: &str,
) -> Result<pb::Investment, Status> {
    stack
        .admin()
        .await
        .reverse_allocation(pb::ReverseAllocationRequest {
            investment_id: id.to_owned(),
            reason: reason.to_owned(),
            request_id: request_id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().investment.expect("investment"))
}

/// `FAILED_PRECONDITION`'s PreconditionFailure `(type, description)`.
pub fn precondition(status: &Status) -> (String, String) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let failure = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure details");
    let v = &failure.violations[0];
    (v.r#type.clone(), v.description.clone())
}

/// The caller's only subscription balance.
pub async fn balance(stack: &Stack, user_id: Uuid) -> pb::SubscriptionBalance {
    let mut page = stack
        .investments(user_id)
        .await
        .list_subscription_balances(pb::ListSubscriptionBalancesRequest::default())
        .await
        .expect("balances")
        .into_inner();
    assert_eq!(page.balances.len(), 1);
    page.balances.remove(0)
}

/// Waits until every request in the stream has been acknowledged (work-queue retention: an
/// acknowledged request leaves the stream).
pub async fn drained(stack: &Stack) {
    let admin = stack.admin().await;
    testkit::eventually(
        Duration::from_secs(20),
        "every request acknowledged",
        || {
            let mut admin = admin.clone();
            async move {
                let stats = admin
                    .get_queue_stats(pb::GetQueueStatsRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (stats.stream_messages == 0 && stats.consumer_in_flight == 0).then_some(())
            }
        },
    )
    .await;
}

/// Sessions of the test's database waiting on a row lock now.
pub async fn lock_waiters(stack: &Stack) -> i64 {
    let row = stack
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

/// Units left in each of the investor's batches, oldest first.
pub async fn units_left(stack: &Stack, investor: &Investor) -> Vec<i64> {
    use entity::prelude::*;
    use sea_orm::EntityTrait;
    let mut left = Vec::new();
    for b in &investor.batches {
        let batch = BulkPurchase::find_by_id(b.id)
            .one(&stack.db)
            .await
            .expect("batch")
            .expect("exists");
        left.push(batch.units_remaining);
    }
    left
}
