//! Transient faults: a real row-lock wait past LOCK_TIMEOUT fails an attempt; the request is
//! retried after the configured backoff, and fails for good after the last attempt.

use api::v1::AllocationStatus::*;
use entity::prelude::*;
use futures::StreamExt;
use sea_orm::EntityTrait;

use crate::support::*;

#[tokio::test]
async fn a_transient_fault_is_retried_then_completes() {
    let stack = stack_with(Options {
        backoff: vec![ms(200)],
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[50]).await;
    let lock = hold(&stack, &investor, Hold::Batches).await;

    let created = stack.create(&investor, 5).await;
    let mut watch = stack.watch(0, investor.user_id, &created.id).await;
    let mut seen = Vec::new();
    // Wait for the failed attempt to show, then end the fault.
    while let Some(item) = watch.next().await {
        let update = item.expect("update").update.expect("update");
        let retrying = update.allocation_status() == Pending && update.attempt == 1;
        seen.push(update);
        if retrying {
            break;
        }
    }
    lock.rollback().await.expect("release");
    seen.extend(collect(watch).await);

    let tail: Vec<_> = steps(&seen)
        .into_iter()
        .skip_while(|s| s.0 == Pending && s.2 == 0)
        .collect();
    assert_eq!(
        tail,
        [
            (Processing, 2, 0),
            (Pending, 3, 1),
            (Processing, 4, 1),
            (Completed, 5, 1)
        ],
        "{seen:?}"
    );
    assert!(
        seen[seen.len() - 3].error.contains("lock timeout"),
        "the cause is shown: {:?}",
        seen[seen.len() - 3].error
    );
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn retries_exhausted_is_failed_with_the_cause_and_inventory_untouched() {
    let (stack, investor, lock) = exhausting_attempts().await;

    let created = stack.create(&investor, 5).await;
    let updates = collect(stack.watch(0, investor.user_id, &created.id).await).await;
    lock.rollback().await.expect("release");

    let last = updates.last().expect("terminal");
    assert_eq!(last.allocation_status(), Failed);
    assert_eq!(last.attempt, 3);
    assert!(
        last.error
            .starts_with("permanent failure after 3 attempts: "),
        "{}",
        last.error
    );
    assert!(last.error.contains("lock timeout"), "{}", last.error);
    let attempts: Vec<_> = steps(&updates)
        .into_iter()
        .filter(|s| s.0 == Pending && s.2 > 0)
        .map(|s| s.2)
        .collect();
    assert_eq!(
        attempts,
        [1, 2],
        "went back to pending between attempts: {updates:?}"
    );
    let batch = BulkPurchase::find_by_id(investor.batches[0].id)
        .one(&stack.db)
        .await
        .expect("q")
        .expect("batch");
    assert_eq!(batch.units_remaining, 50);
    check_invariants(&stack.db).await;
}
