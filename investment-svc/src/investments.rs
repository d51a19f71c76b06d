//! Creating, reading and listing investments.
//!
//! Create is one statement (one round trip) that locks the subscription row (serializing every
//! create on one subscription), reads status, deal and available balance from the total on
//! that row with the rules' verdict on them ([`ledger::rules`]), and inserts the investment as
//! `pending` with its first event if the verdict lets it; the refusal answered otherwise is
//! that same verdict. The allocation
//! request is published after the commit; if NATS is down the investment is still durable and
//! the [`sweeper`](crate::sweeper) publishes it later.

use api::v1 as pb;
use entity::prelude::*;
use rust_decimal::Decimal;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryResult, SqlErr, Statement,
    sea_query::{Expr, ExprTrait, PostgresQueryBuilder},
};
use service_kit::status::{Invalid, Violations};
use std::sync::LazyLock;
use uuid::Uuid;

use ledger::rules::{self, Facts};

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
/// subscription, read what the rules need and their verdict, insert the investment and log
/// its first event if nothing stands in the way, all or nothing. `$1` id, `$2` user, `$3`
/// subscription, `$4` deal, `$5` shares, `$6` request id, `$7` [`total_bound`].
///
/// - `facts` is [`rules::facts`]: the row lock serializes creates per subscription (NO KEY
///   UPDATE lets the allocator's inserts, whose foreign keys take KEY SHARE, go on). A create
///   that waited for it reads the subscription's latest committed version, so each create sees
///   the reservations of the last; `available` comes from the total on that row,
///   `committed_amount` (kept by triggers, which also add this investment to it), never from
///   the subscription's history.
/// - The rules' verdict is the one `refused` column: the insert runs only if it is NULL, and
///   the statement returns it with the facts in every case, so the refusal answered is the
///   one the insert obeyed, from the same locked snapshot ([`answer`]).
/// - A request id used before makes the insert a no-op (`replayed`; the replay is read
///   afterwards); one used concurrently hits the unique constraint.
/// - `last_published_at` is optimistic: the request is published right after the commit. If
///   that fails the stamp is cleared, so the sweeper retries soon; a crash in between is
///   covered by SWEEP_STUCK_AGE.
static CREATE: LazyLock<String> = LazyLock::new(|| {
    let facts = rules::facts(
        Expr::cust("$2"),
        Expr::cust("$3"),
        Expr::cust("$4"),
        Expr::col((deal::Entity, deal::Column::PricePerShare)).mul(Expr::cust("$5")),
    )
    .to_string(PostgresQueryBuilder);
    ["WITH facts AS (", &facts, CREATE_REST].concat()
});

/// [`CREATE`] after its `facts`.
const CREATE_REST: &str = r#"
), checked AS (
    SELECT facts.*, facts.required < $7 AS in_range,
           EXISTS (SELECT 1 FROM investments WHERE user_id = $2 AND request_id = $6) AS replayed
    FROM facts
), created AS (
    INSERT INTO investments (id, user_id, subscription_id, deal_id, shares, price_per_share,
                             total_amount, request_id, last_published_at)
    SELECT $1, $2, $3, $4, $5, deal_price, required, $6, now()
    FROM checked
    WHERE NOT replayed AND in_range AND refused IS NULL
    RETURNING *
), logged AS (
    INSERT INTO allocation_events (investment_id, version, user_id, deal_id, allocation_status,
                                   attempt, error)
    SELECT id, status_version, user_id, deal_id, allocation_status, allocation_attempts,
           allocation_error
    FROM created
)
SELECT checked.*, created.id, created.user_id, created.subscription_id, created.deal_id,
       created.shares, created.price_per_share, created.total_amount,
       created.status::text AS status, created.allocation_status::text AS allocation_status,
       created.allocation_attempts, created.allocated_at, created.allocation_error,
       created.allocation_failure, created.request_id, created.status_version,
       created.last_published_at, created.created_at, created.updated_at, created.reversed_at,
       created.reversed_by, created.reversal_reason, created.reversal_request_id
FROM checked LEFT JOIN created ON true
"#;

/// Creates `user_id`'s investment as `pending`, or returns the one already made for the same
/// request id and payload.
pub async fn create(
    db: &DatabaseConnection,
    user_id: UserId,
    new: &NewInvestment,
) -> Result<(investment::Model, Created)> {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        CREATE.as_str(),
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
    match db.query_one_raw(statement).await {
        Ok(Some(row)) => answer(db, user_id, new, &row).await,
        Ok(None) => Err(Error::NotFound("subscription")),
        // The same request id raced us: answered as its replay.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            match find_by_request_id(db, user_id, new).await? {
                Some(existing) => replay(existing, new),
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// What [`CREATE`]'s row says, in the order of its conditions: the replay of an earlier
/// request with the same id, a missing deal, a total out of range, the rule that refused, or
/// else the inserted investment.
async fn answer(
    db: &DatabaseConnection,
    user_id: UserId,
    new: &NewInvestment,
    row: &QueryResult,
) -> Result<(investment::Model, Created)> {
    if row.try_get::<bool>("", "replayed")? {
        let existing = find_by_request_id(db, user_id, new)
            .await?
            .ok_or(Error::NotFound("investment"))?;
        return replay(existing, new);
    }
    let facts = Facts::from_query_result(row, "")?;
    if facts.deal_status.is_none() {
        return Err(Error::NotFound("deal"));
    }
    if !row.try_get::<bool>("", "in_range")? {
        return Err(Invalid::field("shares", "total amount out of range").into());
    }
    facts.check()?;
    Ok((investment::Model::from_query_result(row, "")?, Created::New))
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
