//! Each allocation-svc replica reads the event log by time once per `WATCH_RESYNC` (and after a NATS
//! reconnect) for all its watchers: an index by time keeps that read proportional to what changed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
CREATE INDEX allocation_events_time_idx ON allocation_events (created_at);
"#;

const DOWN: &str = r#"
DROP INDEX allocation_events_time_idx;
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
