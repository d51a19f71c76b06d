//! An inventory batch of a deal, consumed FIFO by (`purchased_at`, `id`).

use sea_orm::entity::prelude::*;

/// A row of `bulk_purchases`; the database enforces `0 <= units_remaining <= units_total`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bulk_purchases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub deal_id: Uuid,
    pub units_total: i64,
    pub units_remaining: i64,
    pub purchased_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

/// No navigable relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
