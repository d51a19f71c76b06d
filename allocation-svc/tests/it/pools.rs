//! Readers cannot starve the allocator (issue 17): the allocator has a pool of its own.

use std::time::Duration;

use entity::prelude::*;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::support::*;

/// Holds `n` connections of `pool` until the transactions are dropped, as readers in the
/// middle of long queries would.
async fn hold_connections(pool: &DatabaseConnection, n: usize) -> Vec<DatabaseTransaction> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.begin().await.expect("a connection of the pool"));
    }
    held
}

/// Waits until the investment's row satisfies `done`.
async fn row_until(
    stack: &Stack,
    id: &str,
    what: &str,
    done: impl Fn(&investment::Model) -> bool,
) -> investment::Model {
    testkit::eventually(Duration::from_secs(30), what, || async {
        let row = stack.investment(id).await;
        done(&row).then_some(row)
    })
    .await
}

#[tokio::test]
async fn readers_and_watchers_holding_all_their_connections_do_not_stop_allocation() {
    let stack = stack_with(Options {
        extra_args: vec!["--database-acquire-timeout=500ms".into()],
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let pools = &stack.pools[0];
    // The default sizes within DATABASE_MAX_CONNECTIONS 20: read 5, watch 5.
    let _readers = hold_connections(&pools.read, 5).await;
    let _watchers = hold_connections(&pools.watch, 5).await;
    let refused = stack
        .admin()
        .await
        .get_queue_stats(api::v1::GetQueueStatsRequest {})
        .await
        .expect_err("the read pool is exhausted");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    let created = stack.create(&investor, 5).await;
    let done = row_until(&stack, &created.id, "the investment to complete", |row| {
        row.allocation_status == AllocationStatus::Completed
    })
    .await;
    assert_eq!(done.allocation_attempts, 0);
    check_invariants(&stack.db).await;
}
