//! What an allocation micro-batch costs PostgreSQL in statements: a constant number, whatever
//! the batch size, each status change logged (`processing` before its outcome).

use allocation_svc::worker::{Job, Verdict};
use entity::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::support::*;

/// lock_timeout, deal, investments, batches, batches' update, allocations, outcomes with their
/// events (the counter sees neither BEGIN nor COMMIT).
const PER_BATCH: usize = 7;

#[tokio::test]
async fn a_micro_batch_runs_the_same_statements_for_one_request_or_many() {
    let stack = stack_with(Options {
        replicas: 0,
        ..Options::default()
    })
    .await;
    let investor = stack.investor("1200000.00", "1.00", &[5, 50, 500]).await;
    let mut created = Vec::new();
    for i in 0..13 {
        created.push(stack.create(&investor, i % 4 + 1).await);
    }
    // More than the pool holds (555 units): these fail, beside one that fits.
    for shares in [1000, 2, 2000, 3000] {
        created.push(stack.create(&investor, shares).await);
    }
    let (pool, statements) = stack.test_db.connect_counting().await;
    let allocator = stack.allocator_on(pool);
    let jobs: Vec<Job> = created
        .iter()
        .map(|c| Job {
            investment_id: c.id.parse().expect("uuid"),
            delivered: 1,
        })
        .collect();
    let deal = DealId(investor.deal.id);

    let mut counts = Vec::new();
    for batch in [&jobs[..1], &jobs[1..3], &jobs[3..13], &jobs[13..]] {
        let (verdicts, sent) = statements.during(allocator.run_batch(deal, batch)).await;
        assert_eq!(verdicts, vec![Verdict::Ack; batch.len()]);
        counts.push(sent);
    }
    // Failures add one statement, whatever their number: their subscriptions' locks.
    assert_eq!(
        counts,
        [PER_BATCH, PER_BATCH, PER_BATCH, PER_BATCH + 1],
        "statements per batch of 1, 2, 10, and 4 with 3 failing"
    );

    // Each investment logged pending, processing, its outcome, in that order.
    for c in &created {
        let outcome = if c.shares > 555 {
            AllocationStatus::Failed
        } else {
            AllocationStatus::Completed
        };
        let id: uuid::Uuid = c.id.parse().expect("uuid");
        let log: Vec<_> = AllocationEvent::find()
            .filter(allocation_event::Column::InvestmentId.eq(id))
            .order_by_asc(allocation_event::Column::Version)
            .all(&stack.db)
            .await
            .expect("events")
            .into_iter()
            .map(|e| (e.version, e.allocation_status))
            .collect();
        assert_eq!(
            log,
            [
                (1, AllocationStatus::Pending),
                (2, AllocationStatus::Processing),
                (3, outcome)
            ]
        );
    }
    check_invariants(&stack.db).await;
}
