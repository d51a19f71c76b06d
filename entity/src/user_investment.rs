//! Units of one batch allocated to one investment.

use sea_orm::entity::prelude::*;

/// A row of `user_investments`; reversed rows no longer count as invested.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_investments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub subscription_id: Uuid,
    pub investment_id: Uuid,
    pub deal_id: Uuid,
    pub bulk_purchase_id: Uuid,
    pub units_allocated: i64,
    #[sea_orm(column_type = "Decimal(Some((20, 2)))")]
    pub value_allocated: Decimal,
    pub is_reversed: bool,
    pub created_at: DateTimeUtc,
}

/// No navigable relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
