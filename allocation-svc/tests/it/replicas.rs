//! Many requests, several pools, two replicas: the invariants hold; and on one replica the
//! inventory goes out in arrival order within each pool.

use std::time::Duration;

use entity::prelude::*;
use futures::future::join_all;
use sea_orm::{EntityTrait, QueryOrder};
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn two_replicas_200_concurrent_creates_over_5_pools_never_oversell() {
    let stack = stack_with(Options {
        replicas: 2,
        ..Options::default()
    })
    .await;
    let mut investors = Vec::new();
    for _ in 0..5 {
        // 40 requests of 1..=5 shares (avg 3) against 80 units: inventory runs out.
        investors.push(stack.investor("120000.00", "2.00", &[30, 20, 30]).await);
    }

    let creates = (0..200).map(|i| {
        let investor = &investors[i % 5];
        stack.create(investor, (i % 5) as i64 + 1)
    });
    join_all(creates).await;
    let all = stack.all_terminal(Duration::from_secs(60)).await;

    assert_eq!(all.len(), 200);
    check_invariants(&stack.db).await;
    let completed = all
        .iter()
        .filter(|i| i.allocation_status == AllocationStatus::Completed)
        .count();
    let failed = all
        .iter()
        .filter(|i| i.allocation_status == AllocationStatus::Failed)
        .count();
    assert!(
        completed > 0 && failed > 0,
        "inventory ran out: {completed} completed, {failed} failed"
    );
    for batch in BulkPurchase::find().all(&stack.db).await.expect("batches") {
        assert!(batch.units_remaining >= 0);
    }
}

#[tokio::test]
async fn one_replica_hands_out_inventory_in_arrival_order_within_each_pool() {
    let stack = stack_with(Options {
        micro_batch: 8,
        ..Options::default()
    })
    .await;
    let mut investors = Vec::new();
    for _ in 0..3 {
        investors.push(stack.investor("120000.00", "1.00", &[7, 11, 13]).await);
    }
    // Pools run concurrently; within a pool, requests arrive one after another.
    join_all(investors.iter().map(|investor| async {
        for i in 0..15 {
            stack.create(investor, (i * 7 % 5) + 1).await;
        }
    }))
    .await;
    stack.all_terminal(Duration::from_secs(60)).await;
    check_invariants(&stack.db).await;

    // The database must hold exactly what the pure FIFO step gives for the arrival order.
    let investments = Investment::find()
        .order_by_asc(investment::Column::CreatedAt)
        .all(&stack.db)
        .await
        .expect("investments");
    let pieces = UserInvestment::find().all(&stack.db).await.expect("pieces");
    for investor in &investors {
        let mut batches: Vec<_> = investor
            .batches
            .iter()
            .map(|b| allocation_svc::allocate::Batch {
                id: b.id,
                remaining: b.units_total,
            })
            .collect();
        let arrivals: Vec<_> = investments
            .iter()
            .filter(|i| i.deal_id == investor.deal.id)
            .collect();
        let requests: Vec<_> = arrivals
            .iter()
            .map(|i| allocation_svc::allocate::Request {
                investment_id: i.id,
                shares: i.shares,
                price_per_share: i.price_per_share,
            })
            .collect();
        let expected = allocation_svc::allocate::allocate(&mut batches, &requests);
        for (investment, outcome) in arrivals.iter().zip(expected) {
            let mut got: Vec<(Uuid, i64)> = pieces
                .iter()
                .filter(|p| p.investment_id == investment.id)
                .map(|p| (p.bulk_purchase_id, p.units_allocated))
                .collect();
            got.sort_by_key(|(batch, _)| investor.batches.iter().position(|b| b.id == *batch));
            match outcome {
                allocation_svc::allocate::Outcome::Allocated(want) => {
                    assert_eq!(
                        investment.allocation_status,
                        AllocationStatus::Completed,
                        "{}",
                        investment.id
                    );
                    assert_eq!(
                        got,
                        want.iter()
                            .map(|p| (p.batch_id, p.units))
                            .collect::<Vec<_>>(),
                        "{}",
                        investment.id
                    );
                }
                allocation_svc::allocate::Outcome::Insufficient { .. } => {
                    assert_eq!(
                        investment.allocation_status,
                        AllocationStatus::Failed,
                        "{}",
                        investment.id
                    );
                    assert!(got.is_empty());
                }
            }
        }
    }
}
