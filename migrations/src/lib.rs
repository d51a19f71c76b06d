//! The invest schema as sea-orm migrations: the only place the schema changes.
//!
//! Migrations speak SQL (not today's entity types), so an old migration keeps meaning what it
//! meant when later ones change the entities.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_initial_schema;
mod m20261125_000001_failed_investment_status;
mod m20261125_000002_deal_reserved_index;
mod m20261125_000003_event_time_index;
mod m20261201_000001_subscription_totals;
mod m20261201_000002_plan_indexes;
mod m20261202_000001_lifecycle_statuses;
mod m20261202_000002_cancel_and_reverse;
mod m20261202_000003_allocation_failure;

/// A fingerprint of every migration's SQL: test templates are rebuilt when it changes, so a
/// schema edited during development never leaves a stale template behind.
pub fn fingerprint() -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    m20261124_000001_initial_schema::UP.hash(&mut hasher);
    m20261125_000001_failed_investment_status::UP.hash(&mut hasher);
    m20261125_000002_deal_reserved_index::UP.hash(&mut hasher);
    m20261125_000003_event_time_index::UP.hash(&mut hasher);
    m20261201_000001_subscription_totals::UP.hash(&mut hasher);
    m20261201_000002_plan_indexes::UP.hash(&mut hasher);
    m20261202_000001_lifecycle_statuses::UP.hash(&mut hasher);
    m20261202_000002_cancel_and_reverse::UP.hash(&mut hasher);
    m20261202_000003_allocation_failure::UP.hash(&mut hasher);
    hasher.finish()
}

/// Every migration of the schema, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial_schema::Migration),
            Box::new(m20261125_000001_failed_investment_status::Migration),
            Box::new(m20261125_000002_deal_reserved_index::Migration),
            Box::new(m20261125_000003_event_time_index::Migration),
            Box::new(m20261201_000001_subscription_totals::Migration),
            Box::new(m20261201_000002_plan_indexes::Migration),
            Box::new(m20261202_000001_lifecycle_statuses::Migration),
            Box::new(m20261202_000002_cancel_and_reverse::Migration),
            Box::new(m20261202_000003_allocation_failure::Migration),
        ]
    }
}
