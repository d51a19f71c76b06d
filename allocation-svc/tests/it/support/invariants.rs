//! The invariants every test that allocates ends on.

use std::time::Duration;

use entity::prelude::*;
use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use super::Stack;

impl Stack {
    /// Every investment once all are terminal, checked all COMPLETED: how a test that
    /// injected a fault shows it stranded and failed nothing.
    pub async fn all_completed(&self, deadline: Duration) -> Vec<investment::Model> {
        let all = self.all_terminal(deadline).await;
        assert!(
            all.iter()
                .all(|i| i.allocation_status == AllocationStatus::Completed),
            "{all:#?}"
        );
        all
    }
}

/// Checks invariants 1, 2, 3, 5 to 9 over the whole database, with the production audit and, as a
/// cross-check of the audit itself, independently here for 1 and 2.
pub async fn check_invariants(db: &DatabaseConnection) {
    use std::collections::HashMap;
    // Strict: at the end of a test nothing may be left pending or processing at all.
    let violations = ledger::audit::run(db, Duration::ZERO)
        .await
        .expect("audit runs");
    assert!(violations.is_empty(), "audit: {violations:#?}");
    let batches = BulkPurchase::find().all(db).await.expect("batches");
    let pieces = UserInvestment::find().all(db).await.expect("allocations");
    let investments = Investment::find().all(db).await.expect("investments");
    for batch in &batches {
        let handed_out: i64 = pieces
            .iter()
            .filter(|p| p.bulk_purchase_id == batch.id && !p.is_reversed)
            .map(|p| p.units_allocated)
            .sum();
        assert!(batch.units_remaining >= 0, "batch {} below zero", batch.id);
        assert_eq!(
            batch.units_total - batch.units_remaining,
            handed_out,
            "batch {} not conserved",
            batch.id
        );
    }
    let mut by_investment: HashMap<Uuid, (i64, rust_decimal::Decimal)> = HashMap::new();
    for p in pieces.iter().filter(|p| !p.is_reversed) {
        let e = by_investment.entry(p.investment_id).or_default();
        e.0 += p.units_allocated;
        e.1 += p.value_allocated;
    }
    for i in &investments {
        assert_eq!(
            i.status,
            i.allocation_status.investment_status(),
            "investment {} status",
            i.id
        );
        let (units, value) = by_investment.get(&i.id).copied().unwrap_or_default();
        if i.allocation_status == AllocationStatus::Completed {
            assert_eq!(
                (units, value),
                (i.shares, i.total_amount),
                "investment {} not exactly allocated",
                i.id
            );
        } else {
            assert_eq!(
                units, 0,
                "investment {} is {:?} but holds units",
                i.id, i.allocation_status
            );
        }
    }
}
