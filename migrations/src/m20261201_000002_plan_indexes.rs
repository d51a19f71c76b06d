//! Plans, not luck (issue 18): indexes for the statements whose generic plan (what PostgreSQL
//! uses for a prepared statement after five executions) had no index to use.
//!
//! - The audit pages every subscription in (`created_at`, `id`) order through the balance
//!   statement; without this index each page sorted the whole table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
CREATE INDEX subscriptions_page_idx ON subscriptions (created_at, id);
"#;

const DOWN: &str = r#"
DROP INDEX subscriptions_page_idx;
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
