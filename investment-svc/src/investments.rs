//! Creating, reading and listing investments.
//!
//! Create is one transaction that locks the subscription row (serializing every create on one
//! subscription), checks status, deal and available balance, and inserts the investment as
//! `pending`. The allocation request is published after the commit; if NATS is down the
//! investment is still durable and the [`sweeper`](crate::sweeper) publishes it later.

use api::v1 as pb;
use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QuerySelect, SqlErr, TransactionTrait, sea_query::LockType,
};
use service_kit::status::{Invalid, MAX_STRING_LEN, Violations};
use uuid::Uuid;

use ledger::{balance, rules::Reservation};

use crate::{Error, Result};

/// More shares than this in one investment is a client bug, not an order.
pub const MAX_SHARES: i64 = 1_000_000_000;

/// A validated `CreateInvestmentRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInvestment {
    /// Subscription paying for it.
    pub subscription_id: SubscriptionId,
    /// Deal (pool) it buys into.
    pub deal_id: DealId,
    /// Whole shares, 1..=[`MAX_SHARES`].
    pub shares: i64,
    /// Idempotency key, if the client sent one.
    pub request_id: Option<String>,
}

impl NewInvestment {
    /// Validates every field, reporting all problems at once.
    pub fn parse(request: pb::CreateInvestmentRequest) -> Result<Self, Invalid> {
        let mut v = Violations::default();
        let subscription_id = v.id("subscription_id", &request.subscription_id);
        let deal_id = v.id("deal_id", &request.deal_id);
        if request.shares <= 0 {
            v.add("shares", "must be at least 1");
        } else if request.shares > MAX_SHARES {
            v.add("shares", format!("must be at most {MAX_SHARES}"));
        }
        let request_id = match request.request_id {
            id if id.is_empty() => None,
            id if id.chars().count() > MAX_STRING_LEN => {
                v.add(
                    "request_id",
                    format!("must be at most {MAX_STRING_LEN} characters"),
                );
                None
            }
            id if id.chars().any(char::is_control) => {
                v.add("request_id", "must not contain control characters");
                None
            }
            id => Some(id),
        };
        v.finish()?;
        Ok(Self {
            subscription_id,
            deal_id,
            shares: request.shares,
            request_id,
        })
    }

    fn matches(&self, existing: &investment::Model) -> bool {
        existing.subscription_id == self.subscription_id.uuid()
            && existing.deal() == self.deal_id
            && existing.shares == self.shares
    }
}

/// Whether [`create`] made a new investment or found the one made for the same request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// Inserted now: its request must be published.
    New,
    /// The same request was made before; nothing was changed.
    Replayed,
}

/// Creates `user_id`'s investment as `pending`, or returns the one already made for the same
/// request id and payload.
pub async fn create(
    db: &DatabaseConnection,
    user_id: UserId,
    new: &NewInvestment,
) -> Result<(investment::Model, Created)> {
    let txn = db.begin().await?;
    // The lock serializes creates per subscription: each sees the reservations of the last.
    // NO KEY UPDATE lets the allocator's inserts (whose foreign keys take KEY SHARE on this
    // row) proceed meanwhile.
    let subscription = subscription::find_owned(user_id, new.subscription_id)
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("subscription"))?;

    if let Some(existing) = find_by_request_id(&txn, user_id, new).await? {
        return replay(existing, new);
    }
    let deal = Deal::find_by_id(new.deal_id.uuid())
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("deal"))?;
    let total_amount = deal
        .price_per_share
        .checked_mul(Decimal::from(new.shares))
        .ok_or_else(|| Invalid::field("shares", "total amount out of range"))?;
    let balance = balance::of_subscription(&txn, user_id, new.subscription_id)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
    Reservation {
        subscription: subscription.status,
        deal: deal.status,
        required: total_amount,
        available: balance.available_balance,
    }
    .check()?;

    let row = investment::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id.uuid()),
        subscription_id: Set(subscription.id),
        deal_id: Set(deal.id),
        shares: Set(new.shares),
        price_per_share: Set(deal.price_per_share),
        total_amount: Set(total_amount),
        status: Set(InvestmentStatus::Pending),
        allocation_status: Set(AllocationStatus::Pending),
        allocation_attempts: Set(0),
        allocated_at: Set(None),
        allocation_error: Set(None),
        request_id: Set(new.request_id.clone()),
        status_version: Set(1),
        // Optimistic: the request is published right after the commit. If that fails the
        // stamp is cleared, so the sweeper retries soon; a crash in between is covered by
        // SWEEP_STUCK_AGE. No extra statement on the success path.
        last_published_at: Set(Some(chrono::Utc::now())),
        // Timestamps come from the database clock, the same for every replica.
        ..Default::default()
    };
    match row.insert(&txn).await {
        Ok(row) => {
            ledger::events::record(&txn, std::slice::from_ref(&row)).await?;
            txn.commit().await?;
            Ok((row, Created::New))
        }
        // The same request id raced us on another subscription's lock: answer as its replay.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            drop(txn);
            let existing = find_by_request_id(db, user_id, new)
                .await?
                .ok_or(Error::Db(e))?;
            replay(existing, new)
        }
        Err(e) => Err(e.into()),
    }
}

async fn find_by_request_id(
    db: &impl ConnectionTrait,
    user_id: UserId,
    new: &NewInvestment,
) -> Result<Option<investment::Model>> {
    let Some(request_id) = &new.request_id else {
        return Ok(None);
    };
    Ok(Investment::find()
        .filter(investment::Column::UserId.eq(user_id))
        .filter(investment::Column::RequestId.eq(request_id.as_str()))
        .one(db)
        .await?)
}

fn replay(
    existing: investment::Model,
    new: &NewInvestment,
) -> Result<(investment::Model, Created)> {
    if new.matches(&existing) {
        Ok((existing, Created::Replayed))
    } else {
        Err(Error::RequestIdReused)
    }
}

/// One of `user_id`'s investments.
pub async fn get(
    db: &DatabaseConnection,
    user_id: UserId,
    id: InvestmentId,
) -> Result<investment::Model> {
    investment::find_owned(user_id, id)
        .one(db)
        .await?
        .ok_or(Error::NotFound("investment"))
}
