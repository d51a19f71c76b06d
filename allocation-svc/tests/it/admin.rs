//! Admin RPCs: queue stats, failed allocations, retry; and who may call them.

use std::time::Duration;

use api::v1::{self as pb, AllocationStatus::*};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn admin_rpcs_need_the_admin_role() {
    let stack = stack().await;
    let mut user = stack
        .allocations(0, Some(testkit::token(Uuid::new_v4())))
        .await;
    let codes = [
        user.get_queue_stats(pb::GetQueueStatsRequest {})
            .await
            .map(|_| ()),
        user.list_failed_allocations(pb::ListFailedAllocationsRequest::default())
            .await
            .map(|_| ()),
        user.retry_allocation(pb::RetryAllocationRequest {
            investment_id: Uuid::new_v4().to_string(),
        })
        .await
        .map(|_| ()),
    ]
    .map(|r| r.expect_err("not an admin").code());
    assert_eq!(codes, [Code::PermissionDenied; 3]);

    let mut anonymous = stack.allocations(0, None).await;
    let status = anonymous
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn failed_allocations_are_listed_retried_and_then_complete() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[2]).await;
    let created = stack.create(&investor, 5).await;
    let first = collect(stack.watch(0, investor.user_id, &created.id).await).await;
    assert_eq!(first.last().expect("terminal").allocation_status(), Failed);
    let stored = stack.investment(&created.id).await;
    assert_eq!(
        stored.status,
        entity::prelude::InvestmentStatus::Failed,
        "a terminal status"
    );
    let mut admin = stack.admin().await;

    let failed = admin
        .list_failed_allocations(pb::ListFailedAllocationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<&str> = failed.investments.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [created.id.as_str()]);
    let stats = admin
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(
        (
            stats.failed_count,
            stats.completed_count,
            stats.pending_count
        ),
        (1, 0, 0)
    );
    assert_eq!(stats.stream_messages, 0);

    // More inventory arrives; the admin retries.
    stack.batches(investor.deal.id, &[10]).await;
    let retried = stack.retry(&created.id).await;
    assert_eq!(retried.allocation_status(), Pending);
    assert_eq!(retried.status(), pb::InvestmentStatus::Pending);
    assert_eq!(retried.allocation_attempts, 0);
    let second = collect(stack.watch(0, investor.user_id, &created.id).await).await;
    assert_eq!(
        second.last().expect("terminal").allocation_status(),
        Completed
    );

    let again = admin
        .retry_allocation(pb::RetryAllocationRequest {
            investment_id: created.id.clone(),
        })
        .await
        .expect_err("not failed");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let unknown = admin
        .retry_allocation(pb::RetryAllocationRequest {
            investment_id: Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let stats = admin
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!((stats.failed_count, stats.completed_count), (0, 1));
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn a_retry_follows_the_create_rules_for_subscription_and_deal() {
    use sea_orm::ConnectionTrait;
    use tonic_types::StatusExt;

    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[1]).await;
    let created = stack.create_finished(&investor, 5).await;
    let mut admin = stack.admin().await;
    let retry = pb::RetryAllocationRequest {
        investment_id: created.id.clone(),
    };

    for (sql, kind) in [
        (
            format!(
                "UPDATE subscriptions SET status = 'paused' WHERE id = '{}'",
                investor.subscription.id
            ),
            "SUBSCRIPTION_STATUS",
        ),
        (
            format!(
                "UPDATE subscriptions SET status = 'active' WHERE id = '{}'",
                investor.subscription.id
            ),
            "",
        ),
        (
            format!(
                "UPDATE deals SET status = 'closed' WHERE id = '{}'",
                investor.deal.id
            ),
            "DEAL_STATUS",
        ),
    ] {
        stack.db.execute_unprepared(&sql).await.expect("update");
        if kind.is_empty() {
            continue;
        }
        let status = admin.retry_allocation(retry.clone()).await.expect_err(kind);
        assert_eq!(status.code(), Code::FailedPrecondition, "{kind}");
        let failure = status
            .get_details_precondition_failure()
            .expect("PreconditionFailure details");
        assert_eq!(failure.violations[0].r#type, kind);
    }
    assert_eq!(
        stack.investment(&created.id).await.allocation_status,
        entity::prelude::AllocationStatus::Failed
    );
}

#[tokio::test]
async fn a_retry_while_nats_is_down_is_left_to_the_sweeper_at_once() {
    let mut stack = stack_with(Options::nats_outage()).await;
    let investor = stack.investor("12000.00", "1.00", &[2]).await;
    let created = stack.create(&investor, 5).await;
    let first = collect(stack.watch(0, investor.user_id, &created.id).await).await;
    assert_eq!(first.last().expect("terminal").allocation_status(), Failed);
    stack.batches(investor.deal.id, &[10]).await;

    // Given NATS down, and the services aware of it
    stack.own_nats().stop();
    testkit::eventually(
        Duration::from_secs(10),
        "the client to see NATS down",
        || {
            let state = stack.nats.connection_state();
            async move { (state != async_nats::connection::State::Connected).then_some(()) }
        },
    )
    .await;

    // When an admin retries (accepted while NATS is down)
    let retried = stack.retry(&created.id).await;
    assert_eq!(retried.allocation_status(), Pending);

    // Then the request is marked unpublished, so the sweeper takes it after SWEEP_MIN_AGE
    assert_eq!(stack.investment(&created.id).await.last_published_at, None);
    stack.own_nats().resume().await;
    let done = stack.all_terminal(Duration::from_secs(30)).await;
    assert_eq!(
        done[0].allocation_status,
        entity::prelude::AllocationStatus::Completed
    );
    check_invariants(&stack.db).await;
}
