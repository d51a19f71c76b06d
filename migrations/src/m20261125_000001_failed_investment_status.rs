//! A failed allocation gives its investment a terminal status, `failed`, instead of leaving it
//! `pending` beside `allocation_status = 'failed'`.
//!
//! The enum is rebuilt rather than extended with `ALTER TYPE ... ADD VALUE`, because a value
//! added that way cannot be used in the same transaction, and the existing failed rows are
//! moved to it here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
ALTER TYPE investment_status RENAME TO investment_status_v1;
CREATE TYPE investment_status AS ENUM ('pending', 'active', 'cancelled', 'failed');
ALTER TABLE investments ALTER COLUMN status DROP DEFAULT;
ALTER TABLE investments ALTER COLUMN status TYPE investment_status USING (
    CASE WHEN allocation_status = 'failed' THEN 'failed' ELSE status::text END
)::investment_status;
ALTER TABLE investments ALTER COLUMN status SET DEFAULT 'pending';
DROP TYPE investment_status_v1;
-- An investment is failed exactly when its allocation failed.
ALTER TABLE investments ADD CONSTRAINT investments_failed_status_check
    CHECK ((allocation_status = 'failed') = (status = 'failed'));
"#;

const DOWN: &str = r#"
ALTER TABLE investments DROP CONSTRAINT investments_failed_status_check;
ALTER TYPE investment_status RENAME TO investment_status_v2;
CREATE TYPE investment_status AS ENUM ('pending', 'active', 'cancelled');
ALTER TABLE investments ALTER COLUMN status DROP DEFAULT;
ALTER TABLE investments ALTER COLUMN status TYPE investment_status USING (
    CASE WHEN status = 'failed' THEN 'pending' ELSE status::text END
)::investment_status;
ALTER TABLE investments ALTER COLUMN status SET DEFAULT 'pending';
DROP TYPE investment_status_v2;
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
