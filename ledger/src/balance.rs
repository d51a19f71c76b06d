//! Subscription balances (docs/data-model.md), defined once.
//!
//! The listing shows the sums themselves. The old system ran one aggregate query per
//! subscription (101 queries for 100); here one statement, built with sea-query, returns a
//! whole page: each subscription joined with its plan and correlated aggregate subqueries
//! (`withSum` / `withCount`), each served by a partial covering index keyed by subscription.
//!
//! A reservation (a create, an admin retry) reads the same two sums as one total the
//! subscription row carries, `committed_amount` (kept by triggers, proved equal by the audit):
//! one row, whatever the subscription's history.

use entity::{
    prelude::{AllocationStatus, PaymentStatus, SubscriptionStatus, UserId},
    subscription,
};
use rust_decimal::Decimal;
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    prelude::DateTimeUtc,
    sea_query::{
        Asterisk, Expr, ExprTrait, Func, IntoColumnRef, IntoIden, Query, SelectStatement,
        SubQueryStatement,
    },
};
use service_kit::page::{self, Cursor, Direction};
use uuid::Uuid;

use crate::sql::{constant, constants};

/// One subscription with the raw aggregates its balance is computed from.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct Aggregates {
    /// The subscription.
    pub subscription_id: Uuid,
    /// Its plan.
    pub plan_id: Uuid,
    /// The plan's name.
    pub plan_name: String,
    /// Its status.
    pub status: SubscriptionStatus,
    /// When it was created (the page order).
    pub created_at: DateTimeUtc,
    /// `coalesce(subscription.amount, plan.monthly_amount)`.
    pub monthly_amount: Decimal,
    /// `coalesce(plan.duration_months, 12)`.
    pub duration_months: i32,
    /// Count of paid payments.
    pub months_completed: i64,
    /// Sum of paid payments.
    pub total_paid: Decimal,
    /// Sum of non-reversed allocations.
    pub total_invested: Decimal,
    /// Sum of investments still pending or processing.
    pub reserved_amount: Decimal,
}

/// A subscription's balance: the aggregates and what follows from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// What it was computed from.
    pub aggregates: Aggregates,
    /// `monthly_amount * duration_months`.
    pub total_value: Decimal,
    /// `max(0, total_value - total_invested - reserved_amount)`.
    pub available_balance: Decimal,
}

/// `max(0, total_value - committed)`, `committed` being `total_invested + reserved_amount`.
fn available(total_value: Decimal, committed: Decimal) -> Decimal {
    (total_value - committed).max(Decimal::ZERO)
}

impl From<Aggregates> for Balance {
    fn from(aggregates: Aggregates) -> Self {
        let total_value = aggregates.monthly_amount * Decimal::from(aggregates.duration_months);
        let available_balance = available(
            total_value,
            aggregates.total_invested + aggregates.reserved_amount,
        );
        Self {
            aggregates,
            total_value,
            available_balance,
        }
    }
}

/// `(SELECT <aggregate> FROM <table> WHERE <table>.subscription_id = subscriptions.id AND
/// <filter>)`: a correlated aggregate of the subscription's own rows (Laravel's `withSum`),
/// answered from a partial covering index keyed by subscription (migrations).
fn of_each_subscription<T: IntoIden + Copy + 'static>(
    table: T,
    aggregate: impl Into<Expr>,
    subscription: impl IntoIden,
    filter: Expr,
) -> Expr {
    Expr::SubQuery(
        None,
        Box::new(SubQueryStatement::SelectStatement(
            Query::select()
                .expr(aggregate)
                .from(table)
                .and_where(
                    Expr::col((table, subscription))
                        .equals((subscription::Entity, subscription::Column::Id)),
                )
                .and_where(filter)
                .to_owned(),
        )),
    )
}

/// `coalesce(subscription.amount, plan.monthly_amount) * coalesce(plan.duration_months, 12)`:
/// the one definition of a subscription's total value in SQL (a reservation's facts,
/// [`crate::rules::facts`]); [`Balance`] multiplies the two factors the listing shows.
pub fn total_value() -> Expr {
    monthly_amount().mul(duration_months())
}

/// `coalesce(subscription.amount, plan.monthly_amount)`.
fn monthly_amount() -> Expr {
    use entity::{plan, subscription as s};
    Func::coalesce([
        Expr::col((s::Entity, s::Column::Amount)),
        Expr::col((plan::Entity, plan::Column::MonthlyAmount)),
    ])
    .into()
}

/// `coalesce(plan.duration_months, 12)`.
fn duration_months() -> Expr {
    use entity::plan;
    Func::coalesce([
        Expr::col((plan::Entity, plan::Column::DurationMonths)),
        Expr::val(12),
    ])
    .into()
}

/// `coalesce(sum(column), 0)`.
fn sum(column: impl IntoColumnRef) -> Expr {
    Func::coalesce([Func::sum(Expr::col(column)).into(), Expr::val(0)]).into()
}

/// Each subscription with its plan and the four aggregates of [`Aggregates`], in one statement.
fn select() -> SelectStatement {
    use entity::{investment as i, payment as pay, plan, subscription as s, user_investment as ui};
    // Constants, not bound values: each filter must prove its partial index's predicate under
    // a generic plan too (crate::sql).
    let paid = || Expr::col((pay::Entity, pay::Column::Status)).eq(constant(PaymentStatus::Paid));
    Query::select()
        .expr_as(Expr::col((s::Entity, s::Column::Id)), "subscription_id")
        .expr_as(Expr::col((s::Entity, s::Column::PlanId)), "plan_id")
        .expr_as(Expr::col((plan::Entity, plan::Column::Name)), "plan_name")
        .expr_as(
            Expr::col((s::Entity, s::Column::Status)).cast_as("text"),
            "status",
        )
        .expr_as(Expr::col((s::Entity, s::Column::CreatedAt)), "created_at")
        .expr_as(monthly_amount(), "monthly_amount")
        .expr_as(duration_months(), "duration_months")
        .expr_as(
            of_each_subscription(
                pay::Entity,
                Func::count(Expr::col(Asterisk)),
                pay::Column::SubscriptionId,
                paid(),
            ),
            "months_completed",
        )
        .expr_as(
            of_each_subscription(
                pay::Entity,
                sum(pay::Column::Amount),
                pay::Column::SubscriptionId,
                paid(),
            ),
            "total_paid",
        )
        .expr_as(
            of_each_subscription(
                ui::Entity,
                sum(ui::Column::ValueAllocated),
                ui::Column::SubscriptionId,
                Expr::col((ui::Entity, ui::Column::IsReversed)).not(),
            ),
            "total_invested",
        )
        .expr_as(
            of_each_subscription(
                i::Entity,
                sum(i::Column::TotalAmount),
                i::Column::SubscriptionId,
                Expr::col((i::Entity, i::Column::AllocationStatus)).is_in(constants([
                    AllocationStatus::Pending,
                    AllocationStatus::Processing,
                ])),
            ),
            "reserved_amount",
        )
        .from(s::Entity)
        .inner_join(
            plan::Entity,
            Expr::col((plan::Entity, plan::Column::Id)).equals((s::Entity, s::Column::PlanId)),
        )
        .to_owned()
}

/// Which subscriptions a page covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One user's active and paused subscriptions (what the user lists).
    User(UserId),
    /// Every subscription, whatever its status (what the audit checks).
    All,
}

/// A page of subscriptions with their balances, oldest first, and the cursor of the next page
/// if there is one. One statement, whatever the page size.
pub async fn page(
    db: &impl ConnectionTrait,
    scope: Scope,
    after: Option<Cursor>,
    size: u64,
) -> Result<(Vec<Balance>, Option<Cursor>), DbErr> {
    let query = page_statement(scope, after, size);
    let mut rows = Aggregates::find_by_statement(db.get_database_backend().build(&query))
        .all(db)
        .await?;
    let next = page::split(&mut rows, size, |r| Cursor {
        created_at: r.created_at,
        id: r.subscription_id,
    });
    Ok((rows.into_iter().map(Balance::from).collect(), next))
}

/// The statement [`page`] runs (one row more than `size`), for the bench and plan checks.
pub fn page_statement(scope: Scope, after: Option<Cursor>, size: u64) -> SelectStatement {
    use entity::subscription as s;
    let mut query = select();
    if let Scope::User(user_id) = scope {
        query
            .and_where(Expr::col((s::Entity, s::Column::UserId)).eq(user_id.uuid()))
            .and_where(Expr::col((s::Entity, s::Column::Status)).is_in(constants([
                SubscriptionStatus::Active,
                SubscriptionStatus::Paused,
            ])));
    }
    page::seek(
        &mut query,
        (
            (s::Entity, s::Column::CreatedAt),
            (s::Entity, s::Column::Id),
        ),
        Direction::OldestFirst,
        after,
        size,
    );
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn aggregates(monthly: &str, duration: i32, invested: &str, reserved: &str) -> Aggregates {
        let d = |s| Decimal::from_str(s).expect("decimal");
        Aggregates {
            subscription_id: Uuid::nil(),
            plan_id: Uuid::nil(),
            plan_name: "plan".into(),
            status: SubscriptionStatus::Active,
            created_at: DateTimeUtc::default(),
            monthly_amount: d(monthly),
            duration_months: duration,
            months_completed: 0,
            total_paid: Decimal::ZERO,
            total_invested: d(invested),
            reserved_amount: d(reserved),
        }
    }

    #[test]
    fn available_is_total_value_minus_invested_and_reserved() {
        let b = Balance::from(aggregates("100.00", 12, "250.50", "49.50"));
        assert_eq!(b.total_value, Decimal::from(1200));
        assert_eq!(b.available_balance, Decimal::from(900));
    }

    #[test]
    fn available_never_goes_below_zero() {
        let b = Balance::from(aggregates("10.00", 1, "8.00", "5.00"));
        assert_eq!(b.available_balance, Decimal::ZERO);
    }
}
