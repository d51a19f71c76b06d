//! A user's subscription to a plan: the balance investments are paid from.

use sea_orm::entity::prelude::*;

use crate::ids::{SubscriptionId, UserId};

/// `subscription_status`: only `active` subscriptions may invest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(
    rs_type = "String",
    db_type = "Enum",
    enum_name = "subscription_status"
)]
pub enum SubscriptionStatus {
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "paused")]
    Paused,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "completed")]
    Completed,
}

/// A row of `subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub plan_id: Uuid,
    /// Overrides the plan's monthly amount when set.
    #[sea_orm(column_type = "Decimal(Some((20, 2)))", nullable)]
    pub amount: Option<Decimal>,
    pub status: SubscriptionStatus,
    pub created_at: DateTimeUtc,
    /// `total_invested + reserved_amount`: the total amount of its investments that have not
    /// failed, kept by triggers (never written by code; see the migration).
    pub committed_amount: Decimal,
}

/// No navigable relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// One of `user_id`'s subscriptions: the only way handlers look one up, so another user's row
/// cannot be read by mistake.
pub fn find_owned(user_id: UserId, id: SubscriptionId) -> Select<Entity> {
    Entity::find_by_id(id.uuid()).filter(Column::UserId.eq(user_id))
}
