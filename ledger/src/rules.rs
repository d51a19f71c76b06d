//! The rules a reservation of a subscription's balance must pass: the same for a create and
//! for an admin retry (which reserves the amount again), so both refuse alike.
//!
//! They are written once, as the SQL of [`facts`]' `refused` column: the create's statement
//! inserts only when it is NULL and returns it with the facts, an admin retry reads the same
//! column, and [`Facts::check`] only says in words the rule the database named.

use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Expr, ExprTrait, Func, IntoIden, LockType, Query, SelectStatement},
};

use crate::{balance, sql::constant};

/// Why a reservation is refused (`wire::refusal` says it as `FAILED_PRECONDITION`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only `active` subscriptions may invest.
    #[error("subscription is {}, not active", subscription_word(*.0))]
    SubscriptionNotActive(SubscriptionStatus),
    /// The deal no longer takes investments.
    #[error("deal is closed")]
    DealClosed,
    /// Not enough balance left once pending investments are reserved.
    #[error("insufficient available balance: {required} required, {available} available")]
    InsufficientBalance {
        /// What the investment costs.
        required: Decimal,
        /// What the subscription can still spend.
        available: Decimal,
    },
}

/// A subscription status as the refusal's message and details say it.
pub fn subscription_word(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Paused => "paused",
        SubscriptionStatus::Cancelled => "cancelled",
        SubscriptionStatus::Completed => "completed",
    }
}

/// The rules in order, each the code the statement's `refused` column gives when it is the
/// first one broken. The rules are SQL only ([`refused`]): a create's insert and every check
/// read the same column, so they cannot disagree.
const RULES: [&str; 3] = ["subscription", "deal", "balance"];

/// `CASE WHEN <status> <> 'active' THEN 'subscription' WHEN <deal> IS NULL OR <deal> <> 'open'
/// THEN 'deal' WHEN <required> > <available> THEN 'balance' END`: the first rule broken, or
/// NULL if the reservation may be made.
fn refused(subscription: Expr, deal: Expr, required: Expr, available: Expr) -> Expr {
    let [not_active, closed, short] = RULES;
    Expr::case(
        subscription.ne(constant(SubscriptionStatus::Active)),
        Expr::val(not_active),
    )
    .case(
        deal.clone()
            .is_null()
            .or(deal.ne(constant(DealStatus::Open))),
        Expr::val(closed),
    )
    .case(required.gt(available), Expr::val(short))
    .into()
}

/// What a reservation is checked against, read under the subscription's row lock, with the
/// verdict of the rules on it (decoded from [`facts`]' columns).
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct Facts {
    /// The paying subscription's status.
    pub subscription_status: SubscriptionStatus,
    /// The deal's status; `None` if there is no such deal.
    pub deal_status: Option<DealStatus>,
    /// The deal's price per share.
    pub deal_price: Option<Decimal>,
    /// The investment's total amount.
    pub required: Option<Decimal>,
    /// The subscription's available balance (pending investments already reserved).
    pub available: Decimal,
    /// The first rule broken ([`RULES`]), if any.
    pub refused: Option<String>,
}

impl Facts {
    /// Passes, or says the first rule broken as the statement found it.
    pub fn check(&self) -> Result<(), Refusal> {
        let Some(code) = &self.refused else {
            return Ok(());
        };
        Err(match RULES.iter().position(|rule| rule == code) {
            Some(0) => Refusal::SubscriptionNotActive(self.subscription_status),
            Some(1) => Refusal::DealClosed,
            // "balance", the only other code `refused` gives.
            _ => Refusal::InsufficientBalance {
                required: self.required.unwrap_or_default(),
                available: self.available,
            },
        })
    }
}

/// `SELECT <the columns of Facts> FROM subscriptions JOIN plans LEFT JOIN deals ... FOR NO KEY
/// UPDATE OF subscriptions`: the facts of reserving `required` of `subscription` (one of
/// `user`'s) for `deal`, taking the row lock that serializes reservations. `required` may
/// refer to `deals.price_per_share`. No row if the subscription is not the user's.
pub fn facts(user: Expr, subscription: Expr, deal: Expr, required: Expr) -> SelectStatement {
    use entity::{deal as d, plan, subscription as s};
    let available = Expr::from(Func::greatest([
        Expr::val(0),
        balance::total_value().sub(Expr::col((s::Entity, s::Column::CommittedAmount))),
    ]));
    let deal_status = Expr::col((d::Entity, d::Column::Status));
    Query::select()
        .expr_as(
            Expr::col((s::Entity, s::Column::Status)).cast_as("text"),
            "subscription_status",
        )
        .expr_as(deal_status.clone().cast_as("text"), "deal_status")
        .expr_as(
            Expr::col((d::Entity, d::Column::PricePerShare)),
            "deal_price",
        )
        .expr_as(required.clone(), "required")
        .expr_as(available.clone(), "available")
        .expr_as(
            refused(
                Expr::col((s::Entity, s::Column::Status)),
                deal_status,
                required,
                available,
            ),
            "refused",
        )
        .from(s::Entity)
        .inner_join(
            plan::Entity,
            Expr::col((plan::Entity, plan::Column::Id)).equals((s::Entity, s::Column::PlanId)),
        )
        .left_join(d::Entity, Expr::col((d::Entity, d::Column::Id)).eq(deal))
        .and_where(Expr::col((s::Entity, s::Column::UserId)).eq(user))
        .and_where(Expr::col((s::Entity, s::Column::Id)).eq(subscription))
        .lock_with_tables(LockType::NoKeyUpdate, [s::Entity.into_iden()])
        .to_owned()
}

/// The [`facts`] of reserving `required` of `user_id`'s `subscription_id` for `deal_id` (an
/// admin retry), under the row lock; `None` if the subscription is not theirs.
pub async fn read(
    db: &impl ConnectionTrait,
    user_id: UserId,
    subscription_id: SubscriptionId,
    deal_id: DealId,
    required: Decimal,
) -> Result<Option<Facts>, DbErr> {
    let query = facts(
        Expr::val(user_id.uuid()),
        Expr::val(subscription_id.uuid()),
        Expr::val(deal_id.uuid()),
        Expr::val(required),
    );
    Facts::find_by_statement(db.get_database_backend().build(&query))
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(refused: Option<&str>) -> Facts {
        Facts {
            subscription_status: SubscriptionStatus::Paused,
            deal_status: Some(DealStatus::Closed),
            deal_price: Some(Decimal::new(1001, 2)),
            required: Some(Decimal::new(1001, 2)),
            available: Decimal::new(1000, 2),
            refused: refused.map(Into::into),
        }
    }

    #[test]
    fn each_rule_code_says_its_refusal() {
        assert_eq!(facts(None).check(), Ok(()));
        assert_eq!(
            facts(Some("subscription")).check(),
            Err(Refusal::SubscriptionNotActive(SubscriptionStatus::Paused))
        );
        assert_eq!(facts(Some("deal")).check(), Err(Refusal::DealClosed));
        assert_eq!(
            facts(Some("balance")).check().map_err(|r| r.to_string()),
            Err("insufficient available balance: 10.01 required, 10.00 available".into())
        );
    }
}
