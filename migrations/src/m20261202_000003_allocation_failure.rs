//! Why an allocation failed, as a value rather than text (issue 22): `investments` gains
//! `allocation_failure` and `allocation_events` gains `failure`, each `insufficient_inventory`
//! or `attempts_exhausted`, set exactly when the allocation status is `failed` (a CHECK), so a
//! watcher that catches up from the log is told the same reason as a reader of the row.
//!
//! Rows already failed are given the reason their error text was written for: the allocator
//! wrote `insufficient inventory: ...` for the one and `permanent failure after ...` for the
//! other, and nothing else fails an allocation.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
ALTER TABLE investments ADD COLUMN allocation_failure text
    CHECK (allocation_failure IN ('insufficient_inventory', 'attempts_exhausted'));
UPDATE investments SET allocation_failure =
    CASE WHEN allocation_error LIKE 'insufficient inventory%' THEN 'insufficient_inventory'
         ELSE 'attempts_exhausted' END
WHERE allocation_status = 'failed';
ALTER TABLE investments ADD CONSTRAINT investments_allocation_failure_when_failed
    CHECK ((allocation_status = 'failed') = (allocation_failure IS NOT NULL));

ALTER TABLE allocation_events ADD COLUMN failure text
    CHECK (failure IN ('insufficient_inventory', 'attempts_exhausted'));
UPDATE allocation_events SET failure =
    CASE WHEN error LIKE 'insufficient inventory%' THEN 'insufficient_inventory'
         ELSE 'attempts_exhausted' END
WHERE allocation_status = 'failed';
ALTER TABLE allocation_events ADD CONSTRAINT allocation_events_failure_when_failed
    CHECK ((allocation_status = 'failed') = (failure IS NOT NULL));
"#;

const DOWN: &str = r#"
ALTER TABLE allocation_events DROP COLUMN failure;
ALTER TABLE investments DROP COLUMN allocation_failure;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
