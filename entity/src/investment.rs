//! An investment: shares of a deal paid from a subscription, and its allocation state.

use sea_orm::entity::prelude::*;

use crate::ids::{DealId, InvestmentId, UserId};

/// `investment_status`: the business state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "investment_status")]
pub enum InvestmentStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Allocation failed: terminal unless an admin retries it.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// An operator undid its allocation: terminal.
    #[sea_orm(string_value = "reversed")]
    Reversed,
}

/// `allocation_status`: `pending -> processing -> completed | failed`, `pending -> cancelled`
/// (the owner), `completed -> reversed` (an operator); docs/lifecycle.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Enum", enum_name = "allocation_status")]
pub enum AllocationStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "processing")]
    Processing,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Cancelled by its owner while pending: terminal, holds and reserves nothing.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Its allocation undone by an operator: terminal, its units back in their batches.
    #[sea_orm(string_value = "reversed")]
    Reversed,
}

impl AllocationStatus {
    /// Allocation is over: `completed` (which only an operator's reversal changes), `failed`
    /// (which only an admin retry changes), `cancelled`, `reversed`. A watcher of one
    /// investment stops at the first of them.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Processing)
    }

    /// Whether its amount counts in the subscription's `committed_amount`: reserved
    /// (`pending`, `processing`) or invested (`completed`).
    pub fn is_committed(self) -> bool {
        matches!(self, Self::Pending | Self::Processing | Self::Completed)
    }

    /// The investment status that goes with this allocation status: `active` once allocated,
    /// `pending` until then, otherwise the same word (the table's CHECK).
    pub fn investment_status(self) -> InvestmentStatus {
        match self {
            Self::Pending | Self::Processing => InvestmentStatus::Pending,
            Self::Completed => InvestmentStatus::Active,
            Self::Failed => InvestmentStatus::Failed,
            Self::Cancelled => InvestmentStatus::Cancelled,
            Self::Reversed => InvestmentStatus::Reversed,
        }
    }
}

/// `allocation_failure` (text with a CHECK): why an allocation ended `failed`, set exactly then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum AllocationFailure {
    /// The pool had fewer units left than requested: failed at once, not retried.
    #[sea_orm(string_value = "insufficient_inventory")]
    InsufficientInventory,
    /// Every allowed attempt failed with a database error.
    #[sea_orm(string_value = "attempts_exhausted")]
    AttemptsExhausted,
}

/// A row of `investments`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "investments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub subscription_id: Uuid,
    pub deal_id: Uuid,
    pub shares: i64,
    #[sea_orm(column_type = "Decimal(Some((20, 2)))")]
    pub price_per_share: Decimal,
    #[sea_orm(column_type = "Decimal(Some((20, 2)))")]
    pub total_amount: Decimal,
    pub status: InvestmentStatus,
    pub allocation_status: AllocationStatus,
    pub allocation_attempts: i32,
    pub allocated_at: Option<DateTimeUtc>,
    pub allocation_error: Option<String>,
    /// Why it failed: set exactly when `allocation_status` is `failed`.
    pub allocation_failure: Option<AllocationFailure>,
    /// Client idempotency key, unique per user.
    pub request_id: Option<String>,
    /// Bumped on every allocation status change, so watchers can order and de-duplicate.
    pub status_version: i64,
    /// When the sweeper last re-published the allocation request.
    pub last_published_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Set exactly when reversed, with who did it and why.
    pub reversed_at: Option<DateTimeUtc>,
    pub reversed_by: Option<Uuid>,
    pub reversal_reason: Option<String>,
    /// The ReverseAllocation request id, unique.
    pub reversal_request_id: Option<String>,
}

/// No navigable relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// One of `user_id`'s investments: the only way handlers look one up, so another user's row
/// cannot be read by mistake.
pub fn find_owned(user_id: UserId, id: InvestmentId) -> Select<Entity> {
    Entity::find_by_id(id.uuid()).filter(Column::UserId.eq(user_id))
}

impl Model {
    /// Its id, typed.
    pub fn investment_id(&self) -> InvestmentId {
        InvestmentId(self.id)
    }

    /// Its owner, typed.
    pub fn owner(&self) -> UserId {
        UserId(self.user_id)
    }

    /// Its deal (pool), typed.
    pub fn deal(&self) -> DealId {
        DealId(self.deal_id)
    }
}
