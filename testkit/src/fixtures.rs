//! Rows for tests and the demo: plans, subscriptions, payments, deals, inventory batches.
//! Amounts are written as decimal literals (`"100.00"`), as on the wire.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr};
use uuid::Uuid;

/// A decimal from a literal; panics on a malformed literal (a bug in the test itself).
pub fn dec(literal: &str) -> Decimal {
    Decimal::from_str(literal).unwrap_or_else(|e| panic!("bad decimal literal {literal:?}: {e}"))
}

/// Inserts rows into one database.
#[derive(Clone)]
pub struct Fixtures {
    db: DatabaseConnection,
}

impl Fixtures {
    /// Fixtures writing to `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// A plan; `duration_months: None` means 12.
    pub async fn plan(
        &self,
        monthly_amount: &str,
        duration_months: Option<i32>,
    ) -> Result<plan::Model, DbErr> {
        self.plan_with_id(Uuid::new_v4(), "Test plan", monthly_amount, duration_months)
            .await
    }

    /// A plan with a chosen id and name.
    pub async fn plan_with_id(
        &self,
        id: Uuid,
        name: &str,
        monthly_amount: &str,
        duration_months: Option<i32>,
    ) -> Result<plan::Model, DbErr> {
        plan::ActiveModel {
            id: Set(id),
            name: Set(name.to_owned()),
            monthly_amount: Set(dec(monthly_amount)),
            duration_months: Set(duration_months),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }

    /// A new user with an active 12-month subscription at `monthly` and an open deal at
    /// `price`: the starting point of most tests.
    pub async fn investor(
        &self,
        monthly: &str,
        price: &str,
    ) -> Result<(Uuid, subscription::Model, deal::Model), DbErr> {
        let user_id = Uuid::new_v4();
        let plan = self.plan(monthly, Some(12)).await?;
        let subscription = self
            .subscription(user_id, plan.id, None, SubscriptionStatus::Active)
            .await?;
        let deal = self.deal(price, DealStatus::Open).await?;
        Ok((user_id, subscription, deal))
    }

    /// A subscription of `user_id` to `plan_id`; `amount` overrides the plan's.
    pub async fn subscription(
        &self,
        user_id: Uuid,
        plan_id: Uuid,
        amount: Option<&str>,
        status: SubscriptionStatus,
    ) -> Result<subscription::Model, DbErr> {
        self.subscription_with_id(Uuid::new_v4(), user_id, plan_id, amount, status)
            .await
    }

    /// A subscription with a chosen id.
    pub async fn subscription_with_id(
        &self,
        id: Uuid,
        user_id: Uuid,
        plan_id: Uuid,
        amount: Option<&str>,
        status: SubscriptionStatus,
    ) -> Result<subscription::Model, DbErr> {
        subscription::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            plan_id: Set(plan_id),
            amount: Set(amount.map(dec)),
            status: Set(status),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }

    /// A payment into `subscription`; `paid` ones get a `paid_at`.
    pub async fn payment(
        &self,
        subscription: &subscription::Model,
        amount: &str,
        status: PaymentStatus,
    ) -> Result<payment::Model, DbErr> {
        payment::ActiveModel {
            id: Set(Uuid::new_v4()),
            subscription_id: Set(subscription.id),
            user_id: Set(subscription.user_id),
            amount: Set(dec(amount)),
            status: Set(status),
            paid_at: Set((status == PaymentStatus::Paid).then(Utc::now)),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }

    /// A deal at `price_per_share`.
    pub async fn deal(
        &self,
        price_per_share: &str,
        status: DealStatus,
    ) -> Result<deal::Model, DbErr> {
        self.deal_with_id(Uuid::new_v4(), "Test deal", price_per_share, status)
            .await
    }

    /// A deal with a chosen id and name.
    pub async fn deal_with_id(
        &self,
        id: Uuid,
        name: &str,
        price_per_share: &str,
        status: DealStatus,
    ) -> Result<deal::Model, DbErr> {
        deal::ActiveModel {
            id: Set(id),
            name: Set(name.to_owned()),
            price_per_share: Set(dec(price_per_share)),
            status: Set(status),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }

    /// An inventory batch of `units` for `deal_id`, bought at `purchased_at` (FIFO order).
    pub async fn batch(
        &self,
        deal_id: Uuid,
        units: i64,
        purchased_at: DateTime<Utc>,
    ) -> Result<bulk_purchase::Model, DbErr> {
        bulk_purchase::ActiveModel {
            id: Set(Uuid::new_v4()),
            deal_id: Set(deal_id),
            units_total: Set(units),
            units_remaining: Set(units),
            purchased_at: Set(purchased_at),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }

    /// An allocation row, as the allocator writes them (for balance tests).
    pub async fn user_investment(
        &self,
        investment: &investment::Model,
        batch_id: Uuid,
        units: i64,
        value: &str,
        is_reversed: bool,
    ) -> Result<user_investment::Model, DbErr> {
        user_investment::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(investment.user_id),
            subscription_id: Set(investment.subscription_id),
            investment_id: Set(investment.id),
            deal_id: Set(investment.deal_id),
            bulk_purchase_id: Set(batch_id),
            units_allocated: Set(units),
            value_allocated: Set(dec(value)),
            is_reversed: Set(is_reversed),
            ..Default::default()
        }
        .insert(&self.db)
        .await
    }
}
