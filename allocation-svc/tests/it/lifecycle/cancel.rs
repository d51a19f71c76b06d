//! CancelInvestment: a pending investment becomes CANCELLED at once with its reservation
//! released, the change is logged and streamed, the allocator acknowledges its request without
//! work, and a cancel racing the allocator has exactly one winner.

use api::v1 as pb;
use entity::prelude::*;
use futures::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tonic::Code;
use uuid::Uuid;

use super::*;
use crate::support::*;

/// Allocation waits on row locks the tests hold, so it must not give up meanwhile.
fn patient() -> Options {
    Options {
        lock_timeout: secs(60),
        ..Options::default()
    }
}

async fn allocations_of(stack: &Stack, id: &str) -> u64 {
    UserInvestment::find()
        .filter(user_investment::Column::InvestmentId.eq(Uuid::parse_str(id).expect("uuid")))
        .count(&stack.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_cancel_that_takes_the_row_first_releases_the_reservation_and_the_allocator_does_nothing()
{
    let stack = stack_with(patient()).await;
    let investor = stack.investor("120.00", "1.00", &[10]).await;
    // The allocator cannot start on this pool until the test lets go of its deal.
    let held = hold(&stack, &investor, Hold::Deal).await;
    let created = stack.create(&investor, 4).await;
    let watch = stack.watch(0, investor.user_id, &created.id).await;
    assert_eq!(
        balance(&stack, investor.user_id).await.available_balance,
        "116.00"
    );

    let cancelled = cancel(&stack, investor.user_id, &created.id)
        .await
        .expect("cancel");

    assert_eq!(
        cancelled.allocation_status(),
        pb::AllocationStatus::Cancelled
    );
    assert_eq!(cancelled.status(), pb::InvestmentStatus::Cancelled);
    assert_eq!(cancelled.status_version, 2);
    let b = balance(&stack, investor.user_id).await;
    assert_eq!(
        (b.reserved_amount.as_str(), b.available_balance.as_str()),
        ("0.00", "120.00"),
        "released in the cancel's own transaction"
    );
    let updates = collect(watch).await;
    assert_eq!(
        steps(&updates),
        [
            (pb::AllocationStatus::Pending, 1, 0),
            (pb::AllocationStatus::Cancelled, 2, 0)
        ],
        "streamed like any other change, and the watch ends there"
    );
    // Cancelling a cancelled one returns it unchanged.
    let again = cancel(&stack, investor.user_id, &created.id)
        .await
        .expect("again");
    assert_eq!(again.status_version, 2);

    held.rollback().await.expect("release the deal");
    drained(&stack).await;
    let row = stack.investment(&created.id).await;
    assert_eq!(
        (row.allocation_status, row.status_version),
        (AllocationStatus::Cancelled, 2),
        "the allocator acknowledged the request without touching the row"
    );
    assert_eq!(units_left(&stack, &investor).await, [10]);
    assert_eq!(allocations_of(&stack, &created.id).await, 0);
    // Terminal in the schema too, whoever writes: no way back to pending or on to completed.
    for status in ["pending", "completed"] {
        let revived = ConnectionTrait::execute_unprepared(
            &stack.db,
            &format!(
                "UPDATE investments SET allocation_status = '{status}', status = 'pending' \
                 WHERE id = '{}'",
                created.id
            ),
        )
        .await;
        assert!(revived.is_err(), "a cancelled investment became {status}");
    }
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn an_allocator_that_holds_the_row_first_wins_and_the_cancel_is_refused() {
    let stack = stack_with(patient()).await;
    let investor = stack.investor("120.00", "1.00", &[10]).await;
    // The allocator locks the deal and the investment, then waits for the batches.
    let held = hold(&stack, &investor, Hold::Batches).await;
    let created = stack.create(&investor, 4).await;
    testkit::eventually(secs(20), "the allocator to wait on the batches", || async {
        (lock_waiters(&stack).await == 1).then_some(())
    })
    .await;
    let cancelling = {
        let (stack, user, id) = (&stack, investor.user_id, created.id.clone());
        async move { cancel(stack, user, &id).await }
    };
    let release = async {
        // The cancel now waits for the investment row the allocator holds.
        testkit::eventually(secs(20), "the cancel to wait on the row", || async {
            (lock_waiters(&stack).await == 2).then_some(())
        })
        .await;
        held.rollback().await.expect("release the batches");
    };
    let (refused, ()) = tokio::join!(cancelling, release);

    let refused = refused.expect_err("the allocator won");
    let (kind, description) = precondition(&refused);
    assert_eq!(kind, "ALLOCATION_STATUS");
    assert!(
        description.contains("ALLOCATION_STATUS_COMPLETED"),
        "names the status: {description}"
    );
    let row = stack.investment(&created.id).await;
    assert_eq!(row.allocation_status, AllocationStatus::Completed);
    assert_eq!(units_left(&stack, &investor).await, [6]);
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn only_a_pending_investment_of_the_callers_can_be_cancelled() {
    let stack = stack().await;
    let investor = stack.investor("120.00", "1.00", &[10]).await;
    let completed = stack.create_finished(&investor, 4).await;
    let failed = stack.create_finished(&investor, 50).await;
    let reversed = stack.create_finished(&investor, 1).await;
    reverse(&stack, &reversed.id, "mistaken trade", "")
        .await
        .expect("reverse");

    for (investment, status) in [
        (&completed, "ALLOCATION_STATUS_COMPLETED"),
        (&failed, "ALLOCATION_STATUS_FAILED"),
        (&reversed, "ALLOCATION_STATUS_REVERSED"),
    ] {
        let before = stack.investment(&investment.id).await;
        let refused = cancel(&stack, investor.user_id, &investment.id)
            .await
            .expect_err(status);
        let (kind, description) = precondition(&refused);
        assert_eq!(kind, "ALLOCATION_STATUS");
        assert!(description.contains(status), "{description}");
        assert_eq!(stack.investment(&investment.id).await, before, "unchanged");
    }
    let stranger = cancel(&stack, Uuid::new_v4(), &completed.id)
        .await
        .expect_err("someone else's");
    assert_eq!(stranger.code(), Code::NotFound);
    let malformed = cancel(&stack, investor.user_id, "not-a-uuid")
        .await
        .expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let long_key = stack
        .investments(investor.user_id)
        .await
        .cancel_investment(pb::CancelInvestmentRequest {
            investment_id: completed.id.clone(),
            request_id: "k".repeat(129),
        })
        .await
        .expect_err("over-long request id");
    assert_eq!(long_key.code(), Code::InvalidArgument);
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn cancels_racing_the_allocator_each_have_exactly_one_winner() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[1000]).await;
    // Each cancel follows its create at once, while the allocator works through the others.
    let raced = join_all((0..40).map(|_| async {
        let created = stack.create(&investor, 3).await;
        let cancel = cancel(&stack, investor.user_id, &created.id).await;
        (created, cancel)
    }))
    .await;

    drained(&stack).await;
    let mut won = (0, 0);
    for (investment, cancel) in raced {
        let row = stack.investment(&investment.id).await;
        let held = allocations_of(&stack, &investment.id).await;
        match cancel {
            Ok(c) => {
                won.0 += 1;
                assert_eq!(c.allocation_status(), pb::AllocationStatus::Cancelled);
                assert_eq!(row.allocation_status, AllocationStatus::Cancelled);
                assert_eq!(held, 0, "{}: cancelled and allocated", row.id);
            }
            Err(refused) => {
                won.1 += 1;
                let (_, description) = precondition(&refused);
                assert!(description.contains("COMPLETED"), "{description}");
                assert_eq!(row.allocation_status, AllocationStatus::Completed);
                assert!(held > 0);
            }
        }
    }
    eprintln!("cancel won {} races, the allocator {}", won.0, won.1);
    let left: i64 = units_left(&stack, &investor).await.iter().sum();
    assert_eq!(
        left,
        1000 - 3 * won.1,
        "only the allocator's winners hold units"
    );
    check_invariants(&stack.db).await;
}
