//! The statuses of the whole life of an investment (issue 21): `allocation_status` gains
//! `cancelled` (by the owner, from `pending`) and `reversed` (by an operator, from
//! `completed`), `investment_status` gains `reversed`.
//!
//! A value added with `ALTER TYPE ... ADD VALUE` cannot be used in the transaction that added
//! it, and each migration runs in a transaction of its own: so this one only adds them, and the
//! next (`m20261202_000002_cancel_and_reverse`) uses them in constraints and triggers.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
ALTER TYPE allocation_status ADD VALUE IF NOT EXISTS 'cancelled';
ALTER TYPE allocation_status ADD VALUE IF NOT EXISTS 'reversed';
ALTER TYPE investment_status ADD VALUE IF NOT EXISTS 'reversed';
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    /// PostgreSQL cannot drop an enum value; the next migration's `down` leaves no row using
    /// them, so the values stay, unused.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
