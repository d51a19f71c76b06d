//! ListDeals sums the shares of each open deal's pending and processing investments: a partial
//! covering index by deal serves it without reading finished investments.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
CREATE INDEX investments_deal_reserved_idx ON investments (deal_id) INCLUDE (shares)
    WHERE allocation_status IN ('pending', 'processing');
"#;

const DOWN: &str = r#"
DROP INDEX investments_deal_reserved_idx;
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
