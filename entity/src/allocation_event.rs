//! One allocation status an investment had: the log watchers read, one row per version.

use sea_orm::entity::prelude::*;

use crate::investment::{AllocationFailure, AllocationStatus};

/// A row of `allocation_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "allocation_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub investment_id: Uuid,
    /// The investment's `status_version` when it had this status.
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    pub user_id: Uuid,
    pub deal_id: Uuid,
    pub allocation_status: AllocationStatus,
    pub attempt: i32,
    pub error: Option<String>,
    /// The investment's `allocation_failure` at this version.
    pub failure: Option<AllocationFailure>,
    pub created_at: DateTimeUtc,
}

/// No navigable relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
