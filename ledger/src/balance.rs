//! Subscription balances (docs/data-model.md), defined once and used by both the listing and the
//! create check.
//!
//! The old system ran one aggregate query per subscription (101 queries for 100). Here one
//! statement returns a whole page: each subscription joined with its plan and three
//! `LATERAL` aggregates, each served by a partial covering index keyed by subscription.

use api::v1 as pb;
use entity::prelude::{SubscriptionId, SubscriptionStatus, UserId};
use rust_decimal::Decimal;
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value, prelude::DateTimeUtc,
};
use service_kit::{page::Cursor, wire};
use uuid::Uuid;

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

impl From<Aggregates> for Balance {
    fn from(aggregates: Aggregates) -> Self {
        let total_value = aggregates.monthly_amount * Decimal::from(aggregates.duration_months);
        let available_balance =
            (total_value - aggregates.total_invested - aggregates.reserved_amount)
                .max(Decimal::ZERO);
        Self {
            aggregates,
            total_value,
            available_balance,
        }
    }
}

impl Balance {
    /// The API's view of this balance.
    pub fn to_proto(&self) -> pb::SubscriptionBalance {
        let a = &self.aggregates;
        pb::SubscriptionBalance {
            subscription_id: a.subscription_id.to_string(),
            plan_id: a.plan_id.to_string(),
            plan_name: a.plan_name.clone(),
            status: wire::subscription_status(a.status).into(),
            monthly_amount: wire::money(a.monthly_amount),
            duration_months: a.duration_months,
            total_value: wire::money(self.total_value),
            months_completed: a.months_completed,
            total_paid: wire::money(a.total_paid),
            total_invested: wire::money(a.total_invested),
            reserved_amount: wire::money(a.reserved_amount),
            available_balance: wire::money(self.available_balance),
            created_at: Some(wire::timestamp(a.created_at)),
        }
    }
}

const SELECT: &str = r#"
SELECT s.id AS subscription_id,
       s.plan_id,
       p.name AS plan_name,
       s.status::text AS status,
       s.created_at,
       coalesce(s.amount, p.monthly_amount) AS monthly_amount,
       coalesce(p.duration_months, 12) AS duration_months,
       paid.months_completed,
       paid.total_paid,
       invested.total_invested,
       reserved.reserved_amount
FROM subscriptions s
JOIN plans p ON p.id = s.plan_id
CROSS JOIN LATERAL (
    SELECT count(*) AS months_completed, coalesce(sum(amount), 0) AS total_paid
    FROM payments WHERE subscription_id = s.id AND status = 'paid'
) paid
CROSS JOIN LATERAL (
    SELECT coalesce(sum(value_allocated), 0) AS total_invested
    FROM user_investments WHERE subscription_id = s.id AND NOT is_reversed
) invested
CROSS JOIN LATERAL (
    SELECT coalesce(sum(total_amount), 0) AS reserved_amount
    FROM investments WHERE subscription_id = s.id AND allocation_status IN ('pending', 'processing')
) reserved
"#;

/// The balance of one of `user_id`'s subscriptions, whatever its status; `None` if it is not
/// theirs. One statement.
pub async fn of_subscription(
    db: &impl ConnectionTrait,
    user_id: UserId,
    subscription_id: SubscriptionId,
) -> Result<Option<Balance>, DbErr> {
    let sql = format!("{SELECT} WHERE s.user_id = $1 AND s.id = $2");
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [Value::from(user_id), Value::from(subscription_id)],
    );
    Ok(Aggregates::find_by_statement(stmt)
        .one(db)
        .await?
        .map(Balance::from))
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
    let mut values = Vec::new();
    let mut sql = match scope {
        Scope::User(user_id) => {
            values.push(Value::from(user_id));
            format!("{SELECT} WHERE s.user_id = $1 AND s.status IN ('active', 'paused')")
        }
        Scope::All => format!("{SELECT} WHERE true"),
    };
    if let Some(cursor) = after {
        let n = values.len();
        sql.push_str(&format!(
            " AND (s.created_at, s.id) > (${}, ${})",
            n + 1,
            n + 2
        ));
        values.push(Value::from(cursor.created_at));
        values.push(Value::from(cursor.id));
    }
    // One row more than the page tells whether another page follows.
    sql.push_str(&format!(" ORDER BY s.created_at, s.id LIMIT {}", size + 1));
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let mut rows = Aggregates::find_by_statement(stmt).all(db).await?;
    let next = if rows.len() as u64 > size {
        rows.truncate(size as usize);
        rows.last().map(|r| Cursor {
            created_at: r.created_at,
            id: r.subscription_id,
        })
    } else {
        None
    };
    Ok((rows.into_iter().map(Balance::from).collect(), next))
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
