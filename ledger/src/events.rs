//! The allocation event log: every status an investment has had, one row per
//! `status_version`, written in the transaction that changed the status. It is what makes a
//! watcher gapless: whatever NATS delivered, a watcher catches up from here.

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::{
    ActiveEnum,
    ActiveValue::NotSet,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

/// Logs the current state of each investment as its event at its `status_version`: call it in
/// the transaction that changed them.
pub async fn record(db: &impl ConnectionTrait, rows: &[investment::Model]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let events = rows.iter().map(|row| {
        let mut event = allocation_event::ActiveModel::from(event_of(row));
        // Stamped by the database at insert (clock_timestamp()), see the migration.
        event.created_at = NotSet;
        event
    });
    AllocationEvent::insert_many(events).exec(db).await?;
    Ok(())
}

/// The one way an allocation status changes: moves `ids` to `status` (and the investment
/// status that goes with it), bumps `status_version` and `updated_at`, sets the `extra`
/// columns, and logs each row's new state in the same transaction. Returns the changed rows.
pub async fn change_status(
    txn: &impl ConnectionTrait,
    ids: &[InvestmentId],
    status: AllocationStatus,
    extra: Vec<(investment::Column, Expr)>,
) -> Result<Vec<investment::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut update = Investment::update_many()
        .col_expr(
            investment::Column::AllocationStatus,
            ActiveEnum::as_enum(&status),
        )
        .col_expr(
            investment::Column::Status,
            ActiveEnum::as_enum(&status.investment_status()),
        )
        .col_expr(
            investment::Column::StatusVersion,
            Expr::col(investment::Column::StatusVersion).add(1),
        )
        .col_expr(investment::Column::UpdatedAt, Expr::cust("now()"));
    for (column, value) in extra {
        update = update.col_expr(column, value);
    }
    let changed = update
        .filter(investment::Column::Id.is_in(ids.iter().copied()))
        .exec_with_returning(txn)
        .await?;
    record(txn, &changed).await?;
    Ok(changed)
}

/// Events of one investment after `version`, oldest first.
pub async fn after(
    db: &impl ConnectionTrait,
    investment_id: InvestmentId,
    version: i64,
) -> Result<Vec<allocation_event::Model>, DbErr> {
    AllocationEvent::find()
        .filter(allocation_event::Column::InvestmentId.eq(investment_id))
        .filter(allocation_event::Column::Version.gt(version))
        .order_by_asc(allocation_event::Column::Version)
        .all(db)
        .await
}

/// The allocations of investments, oldest first, reversed ones included (marked
/// `is_reversed`; only a reversed investment has any). One statement for any number.
pub async fn allocations(
    db: &impl ConnectionTrait,
    investment_ids: impl IntoIterator<Item = InvestmentId>,
) -> Result<Vec<user_investment::Model>, DbErr> {
    let investment_ids: Vec<InvestmentId> = investment_ids.into_iter().collect();
    // No statement for nothing: `IN ()` is sent as a bound `$1 = $2`, which a generic plan
    // cannot see is false.
    if investment_ids.is_empty() {
        return Ok(Vec::new());
    }
    UserInvestment::find()
        .filter(user_investment::Column::InvestmentId.is_in(investment_ids))
        .order_by_asc(user_investment::Column::CreatedAt)
        .order_by_asc(user_investment::Column::Id)
        .all(db)
        .await
}

/// The event an investment's current state is logged as.
pub fn event_of(row: &investment::Model) -> allocation_event::Model {
    allocation_event::Model {
        investment_id: row.id,
        version: row.status_version,
        user_id: row.user_id,
        deal_id: row.deal_id,
        allocation_status: row.allocation_status,
        attempt: row.allocation_attempts,
        error: row.allocation_error.clone(),
        failure: row.allocation_failure,
        created_at: row.updated_at,
    }
}

/// Events of `user_id`'s investments logged at or after `since`, oldest first.
pub async fn of_user_since(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<allocation_event::Model>, DbErr> {
    AllocationEvent::find()
        .filter(allocation_event::Column::UserId.eq(user_id))
        .filter(allocation_event::Column::CreatedAt.gte(since))
        .order_by_asc(allocation_event::Column::CreatedAt)
        .order_by_asc(allocation_event::Column::InvestmentId)
        .order_by_asc(allocation_event::Column::Version)
        .all(db)
        .await
}

/// Every event logged at or after `since`, by investment and version: what a replica's
/// watchers may have missed (served by the index on `created_at`).
pub async fn since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> Result<Vec<allocation_event::Model>, DbErr> {
    AllocationEvent::find()
        .filter(allocation_event::Column::CreatedAt.gte(since))
        .order_by_asc(allocation_event::Column::InvestmentId)
        .order_by_asc(allocation_event::Column::Version)
        .all(db)
        .await
}

/// The database's clock, which stamps events: watchers compare with it, not with their own.
pub async fn now(db: &impl ConnectionTrait) -> Result<DateTime<Utc>, DbErr> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT now() AS now",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("now()".into()))?;
    row.try_get("", "now")
}
