//! Creating, reading and listing investments.
//!
//! Create is one statement (one round trip) that locks the subscription row (serializing every
//! create on one subscription), checks status, deal and available balance from the total on
//! that row, and inserts the investment as `pending` with its first event. The allocation
//! request is published after the commit; if NATS is down the investment is still durable and
//! the [`sweeper`](crate::sweeper) publishes it later.

use api::v1 as pb;
use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    SqlErr, Statement,
};
use service_kit::status::{Invalid, Violations};
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
        let request_id = v.request_id("request_id", request.request_id);
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

/// Every total is below this: `numeric(20, 2)` holds less than 10^18.
fn total_bound() -> Decimal {
    Decimal::from(1_000_000_000_000_000_000_i64)
}

/// A create in one statement, hence one round trip and one implicit transaction: lock the
/// subscription, check it, the deal and the balance, insert the investment and log its first
/// event, all or nothing. `$1` id, `$2` user, `$3` subscription, `$4` deal, `$5` shares,
/// `$6` request id, `$7` [`total_bound`].
///
/// - The row lock serializes creates per subscription (NO KEY UPDATE lets the allocator's
///   inserts, whose foreign keys take KEY SHARE, go on). A create that waited for it reads the
///   subscription's latest committed version, so each create sees the reservations of the
///   last; `available` comes from the total on that row, `committed_amount` (kept by
///   triggers, which also add this investment to it), never from the subscription's history.
/// - The rules are [`Reservation::check`]'s, and [`explain`] tells which one refused.
/// - A request id used before makes the insert a no-op (the replay is read afterwards); one
///   used concurrently hits the unique constraint.
/// - `last_published_at` is optimistic: the request is published right after the commit. If
///   that fails the stamp is cleared, so the sweeper retries soon; a crash in between is
///   covered by SWEEP_STUCK_AGE.
const CREATE: &str = r#"
WITH subscription AS (
    SELECT s.id, s.status,
           coalesce(s.amount, p.monthly_amount) * coalesce(p.duration_months, 12)
               - s.committed_amount AS available
    FROM subscriptions s JOIN plans p ON p.id = s.plan_id
    WHERE s.id = $3 AND s.user_id = $2
    FOR NO KEY UPDATE OF s
), deal AS (
    SELECT id, status, price_per_share, price_per_share * $5 AS total_amount
    FROM deals WHERE id = $4
), created AS (
    INSERT INTO investments (id, user_id, subscription_id, deal_id, shares, price_per_share,
                             total_amount, request_id, last_published_at)
    SELECT $1, $2, subscription.id, deal.id, $5, deal.price_per_share, deal.total_amount, $6,
           now()
    FROM subscription, deal
    WHERE subscription.status = 'active' AND deal.status = 'open'
      AND deal.total_amount <= subscription.available AND deal.total_amount < $7
      AND NOT EXISTS (SELECT 1 FROM investments WHERE user_id = $2 AND request_id = $6)
    RETURNING *
), logged AS (
    INSERT INTO allocation_events (investment_id, version, user_id, deal_id, allocation_status,
                                   attempt, error)
    SELECT id, status_version, user_id, deal_id, allocation_status, allocation_attempts,
           allocation_error
    FROM created
)
SELECT id, user_id, subscription_id, deal_id, shares, price_per_share, total_amount,
       status::text AS status, allocation_status::text AS allocation_status,
       allocation_attempts, allocated_at, allocation_error, allocation_failure, request_id,
       status_version, last_published_at, created_at, updated_at, reversed_at, reversed_by,
       reversal_reason, reversal_request_id
FROM created
"#;

/// How often a create that the statement refused but [`explain`] finds no reason for (the
/// balance was freed in between) is tried again before it is an internal error.
const ATTEMPTS: usize = 3;

/// Creates `user_id`'s investment as `pending`, or returns the one already made for the same
/// request id and payload.
pub async fn create(
    db: &DatabaseConnection,
    user_id: UserId,
    new: &NewInvestment,
) -> Result<(investment::Model, Created)> {
    for _ in 0..ATTEMPTS {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            CREATE,
            [
                Uuid::now_v7().into(),
                user_id.uuid().into(),
                new.subscription_id.uuid().into(),
                new.deal_id.uuid().into(),
                new.shares.into(),
                new.request_id.clone().into(),
                total_bound().into(),
            ],
        );
        match Investment::find().from_raw_sql(statement).one(db).await {
            Ok(Some(row)) => return Ok((row, Created::New)),
            Ok(None) => {}
            // The same request id raced us: answered below as its replay.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(replayed) = explain(db, user_id, new).await? {
            return Ok(replayed);
        }
    }
    Err(Error::Db(DbErr::Custom(
        "create refused by the database though every rule passes".into(),
    )))
}

/// Why [`CREATE`] inserted nothing, from what is committed now, in the order of the rules: the
/// replay of an earlier request with the same id, or the error to answer. `Ok(None)` if
/// nothing stands in the way any more.
async fn explain(
    db: &DatabaseConnection,
    user_id: UserId,
    new: &NewInvestment,
) -> Result<Option<(investment::Model, Created)>> {
    let standing = balance::standing(db, user_id, new.subscription_id, false)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
    if let Some(existing) = find_by_request_id(db, user_id, new).await? {
        return replay(existing, new).map(Some);
    }
    let deal = Deal::find_by_id(new.deal_id.uuid())
        .one(db)
        .await?
        .ok_or(Error::NotFound("deal"))?;
    let required = deal
        .price_per_share
        .checked_mul(Decimal::from(new.shares))
        .filter(|total| *total < total_bound())
        .ok_or_else(|| Invalid::field("shares", "total amount out of range"))?;
    Reservation {
        subscription: standing.status,
        deal: deal.status,
        required,
        available: standing.available(),
    }
    .check()?;
    Ok(None)
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
