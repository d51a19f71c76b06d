//! ReverseAllocation: a completed investment's units go back to the batches they came from,
//! its value back to the balance, the reason and the admin are recorded, the change is a new
//! event on WatchAllocations, and the same request id returns the same reversal.

use api::v1 as pb;
use entity::prelude::*;
use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tonic::Code;
use uuid::Uuid;

use super::*;
use crate::support::*;

#[tokio::test]
async fn a_reversal_gives_units_back_to_their_batches_and_value_back_to_the_balance() {
    let stack = stack().await;
    let investor = stack.investor("120.00", "2.00", &[3, 5]).await;
    let done = stack.create(&investor, 5).await;
    let first = collect(stack.watch(0, investor.user_id, &done.id).await).await;
    assert_eq!(
        first.last().map(|u| u.allocation_status()),
        Some(pb::AllocationStatus::Completed),
        "WatchAllocation ends at COMPLETED"
    );
    assert_eq!(units_left(&stack, &investor).await, [0, 3]);
    assert_eq!(
        balance(&stack, investor.user_id).await.available_balance,
        "110.00"
    );
    let mut all = stack.watch_all(0, investor.user_id).await;

    let reversed = reverse(&stack, &done.id, "refund requested", "refund-1")
        .await
        .expect("reverse");

    assert_eq!(reversed.allocation_status(), pb::AllocationStatus::Reversed);
    assert_eq!(reversed.status(), pb::InvestmentStatus::Reversed);
    let reversal = reversed.reversal.clone().expect("reversal recorded");
    assert_eq!(
        (reversal.reason.as_str(), reversal.request_id.as_str()),
        ("refund requested", "refund-1")
    );
    assert!(reversal.reversed_at.is_some() && !reversal.reversed_by.is_empty());
    let pieces: Vec<_> = reversed
        .allocations
        .iter()
        .map(|a| {
            (
                a.units,
                a.value.as_str(),
                a.price_per_share.as_str(),
                a.reversed,
            )
        })
        .collect();
    assert_eq!(
        pieces,
        [(3, "6.00", "2.00", true), (2, "4.00", "2.00", true)]
    );
    assert_eq!(
        units_left(&stack, &investor).await,
        [3, 5],
        "back where they came from"
    );
    let b = balance(&stack, investor.user_id).await;
    assert_eq!(
        (b.total_invested.as_str(), b.available_balance.as_str()),
        ("0.00", "120.00")
    );
    let seen = tokio::time::timeout(secs(20), async {
        loop {
            let update = all
                .next()
                .await
                .expect("open")
                .expect("item")
                .update
                .expect("u");
            if update.investment_id == done.id
                && update.allocation_status() == pb::AllocationStatus::Reversed
            {
                return update;
            }
        }
    })
    .await
    .expect("the reversal on WatchAllocations");
    assert_eq!(
        seen.version, reversed.status_version,
        "a new event in the log"
    );
    let logged = ledger::events::after(
        &stack.db,
        InvestmentId(Uuid::parse_str(&done.id).expect("uuid")),
        0,
    )
    .await
    .expect("log");
    assert_eq!(
        logged
            .iter()
            .map(|e| e.allocation_status)
            .collect::<Vec<_>>(),
        [
            AllocationStatus::Pending,
            AllocationStatus::Processing,
            AllocationStatus::Completed,
            AllocationStatus::Reversed
        ]
    );
    // A watch of a reversed investment sends its state and ends.
    let again = collect(stack.watch(0, investor.user_id, &done.id).await).await;
    assert_eq!(steps(&again), [(pb::AllocationStatus::Reversed, 4, 0)]);

    // The same request id returns the reversal it made; another one is refused.
    let replay = reverse(&stack, &done.id, "refund requested", "refund-1")
        .await
        .expect("replayed");
    assert_eq!(replay.status_version, reversed.status_version);
    let (kind, description) = precondition(
        &reverse(&stack, &done.id, "twice", "refund-2")
            .await
            .expect_err("reversed already"),
    );
    assert_eq!(kind, "ALLOCATION_STATUS");
    assert!(
        description.contains("ALLOCATION_STATUS_REVERSED"),
        "{description}"
    );
    assert_eq!(
        units_left(&stack, &investor).await,
        [3, 5],
        "nothing given back twice"
    );

    // The next allocation takes the returned units first (FIFO), and the audit agrees that
    // every piece was taken in FIFO order when it was made.
    let next = stack.create_finished(&investor, 4).await;
    let taken: Vec<_> = UserInvestment::find()
        .filter(user_investment::Column::InvestmentId.eq(Uuid::parse_str(&next.id).expect("uuid")))
        .all(&stack.db)
        .await
        .expect("pieces")
        .iter()
        .map(|p| (p.bulk_purchase_id, p.units_allocated))
        .collect();
    assert_eq!(
        taken,
        [(investor.batches[0].id, 3), (investor.batches[1].id, 1)]
    );
    let stats = stack
        .admin()
        .await
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(
        (
            stats.completed_count,
            stats.reversed_count,
            stats.cancelled_count
        ),
        (1, 1, 0)
    );
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn only_an_admin_reverses_and_only_a_completed_investment() {
    let stack = stack().await;
    let investor = stack.investor("120.00", "1.00", &[10]).await;
    let failed = stack.create_finished(&investor, 11).await;
    let completed = stack.create_finished(&investor, 2).await;
    let held = hold(&stack, &investor, Hold::Deal).await;
    let pending = stack.create(&investor, 1).await;
    let cancelled = stack.create(&investor, 1).await;
    cancel(&stack, investor.user_id, &cancelled.id)
        .await
        .expect("cancel");

    for (id, status) in [
        (&pending.id, "ALLOCATION_STATUS_PENDING"),
        (&failed.id, "ALLOCATION_STATUS_FAILED"),
        (&cancelled.id, "ALLOCATION_STATUS_CANCELLED"),
    ] {
        let before = stack.investment(id).await;
        // Refused at once, without waiting for the pool (the test holds its deal).
        let refused = reverse(&stack, id, "why", "").await.expect_err(status);
        let (kind, description) = precondition(&refused);
        assert_eq!(kind, "ALLOCATION_STATUS");
        assert!(description.contains(status), "{description}");
        assert_eq!(stack.investment(id).await, before);
    }
    held.rollback().await.expect("release");

    let user = stack
        .allocations(0, Some(testkit::token(investor.user_id)))
        .await
        .reverse_allocation(pb::ReverseAllocationRequest {
            investment_id: completed.id.clone(),
            reason: "mine".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("not an admin");
    assert_eq!(user.code(), Code::PermissionDenied);
    for reason in ["  ", "a\u{0}b", &"x".repeat(1001)] {
        let refused = reverse(&stack, &completed.id, reason, "")
            .await
            .expect_err("a reason that cannot be stored");
        assert_eq!(refused.code(), Code::InvalidArgument, "{reason:?}");
    }
    let unknown = reverse(&stack, &Uuid::new_v4().to_string(), "why", "")
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    reverse(&stack, &completed.id, "why", "key-1")
        .await
        .expect("reverse");
    let other = stack.create_finished(&investor, 1).await;
    let reused = reverse(&stack, &other.id, "why", "key-1")
        .await
        .expect_err("key of another reversal");
    assert_eq!(reused.code(), Code::AlreadyExists);
    check_invariants(&stack.db).await;
}
