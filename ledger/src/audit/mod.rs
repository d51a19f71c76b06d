//! Checks invariants 1, 2, 3, 5, 6, 7 (events' owners), 8 and 9 of docs/invariants.md over a
//! live database and reports every violation: `investctl audit` runs it, and every fault test
//! ends with it.
//!
//! Every check reads one snapshot: the audit is one `REPEATABLE READ`, read-only transaction,
//! so rows committed while it runs (an allocation between the batch check and the investment
//! check) can never show up as a violation, nor hide one.

use std::{fmt, time::Duration};

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult,
    IsolationLevel, Statement, TransactionTrait, prelude::Decimal,
};
use uuid::Uuid;

use crate::balance::{self, Scope};

mod fifo;
mod pieces;

/// One broken invariant on one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's number in docs/invariants.md.
    pub invariant: u8,
    /// The batch, investment or subscription concerned.
    pub subject: Uuid,
    /// What is wrong, with the numbers.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {}: {}: {}",
            self.invariant, self.subject, self.detail
        )
    }
}

#[derive(Debug, FromQueryResult)]
struct BatchRow {
    id: Uuid,
    units_total: i64,
    units_remaining: i64,
    allocated: i64,
}

/// 1. For every batch, `units_total - units_remaining` = units allocated from it (not
///    reversed), and `0 <= units_remaining <= units_total`.
const UNITS: &str = r#"
SELECT b.id, b.units_total, b.units_remaining, coalesce(a.units, 0)::bigint AS allocated
FROM bulk_purchases b
LEFT JOIN (
    SELECT bulk_purchase_id, sum(units_allocated) AS units
    FROM user_investments WHERE NOT is_reversed GROUP BY bulk_purchase_id
) a ON a.bulk_purchase_id = b.id
WHERE b.units_remaining < 0
   OR b.units_remaining > b.units_total
   OR b.units_total - b.units_remaining <> coalesce(a.units, 0)
"#;

#[derive(Debug, FromQueryResult)]
struct InvestmentRow {
    id: Uuid,
    status: String,
    shares: i64,
    total_amount: Decimal,
    units: i64,
    value: Decimal,
}

/// 2. A completed investment's allocations sum exactly to its shares and total amount; any
///    other investment (a cancelled or reversed one included) holds none.
const EXACT: &str = r#"
SELECT i.id, i.allocation_status::text AS status, i.shares, i.total_amount,
       coalesce(a.units, 0)::bigint AS units, coalesce(a.value, 0) AS value
FROM investments i
LEFT JOIN (
    SELECT investment_id, sum(units_allocated) AS units, sum(value_allocated) AS value
    FROM user_investments WHERE NOT is_reversed GROUP BY investment_id
) a ON a.investment_id = i.id
WHERE (i.allocation_status = 'completed'
       AND (coalesce(a.units, 0) <> i.shares OR coalesce(a.value, 0) <> i.total_amount))
   OR (i.allocation_status <> 'completed' AND coalesce(a.units, 0) <> 0)
"#;

#[derive(Debug, FromQueryResult)]
struct StuckRow {
    id: Uuid,
    status: String,
    idle_seconds: i64,
}

/// 3. Every investment reaches a terminal state: none is still pending or processing with no
///    status change for longer than the age given (`$1`, in milliseconds).
const STUCK: &str = r#"
SELECT id, allocation_status::text AS status,
       extract(epoch FROM now() - updated_at)::bigint AS idle_seconds
FROM investments
WHERE allocation_status IN ('pending', 'processing')
  AND updated_at < now() - $1 * interval '1 millisecond'
ORDER BY updated_at
"#;

#[derive(Debug, FromQueryResult)]
struct LogRow {
    id: Uuid,
    status_version: i64,
    logged: i64,
    first: Option<i64>,
    last: Option<i64>,
    last_matches: bool,
}

/// 6. A watcher can see every change: the event log of each investment holds versions 1 to
///    its `status_version`, with no gap (versions are unique per investment, so count, first
///    and last say it), and its last entry has the investment's status.
const GAPS: &str = r#"
SELECT i.id, i.status_version, count(e.version) AS logged, min(e.version) AS first,
       max(e.version) AS last,
       coalesce(bool_or(e.version = i.status_version
                        AND e.allocation_status = i.allocation_status), false) AS last_matches
FROM investments i
LEFT JOIN allocation_events e ON e.investment_id = i.id
GROUP BY i.id, i.status_version
HAVING count(e.version) <> i.status_version
    OR min(e.version) IS DISTINCT FROM 1
    OR max(e.version) IS DISTINCT FROM i.status_version
    OR NOT coalesce(bool_or(e.version = i.status_version
                            AND e.allocation_status = i.allocation_status), false)
"#;

#[derive(Debug, FromQueryResult)]
struct TotalsRow {
    id: Uuid,
    committed_amount: Decimal,
    total_invested: Decimal,
    reserved_amount: Decimal,
}

/// 8. One available balance: the total a subscription row carries (what a create checks)
///    equals the sums it stands for (what the listing shows), `committed_amount =
///    total_invested + reserved_amount`, so both compute the same `available_balance`. A
///    cancelled or reversed investment whose money was not given back shows here.
const TOTALS: &str = r#"
SELECT s.id, s.committed_amount,
       coalesce(u.invested, 0) AS total_invested, coalesce(i.reserved, 0) AS reserved_amount
FROM subscriptions s
LEFT JOIN (
    SELECT subscription_id, sum(value_allocated) AS invested
    FROM user_investments WHERE NOT is_reversed GROUP BY subscription_id
) u ON u.subscription_id = s.id
LEFT JOIN (
    SELECT subscription_id, sum(total_amount) AS reserved
    FROM investments WHERE allocation_status IN ('pending', 'processing') GROUP BY subscription_id
) i ON i.subscription_id = s.id
WHERE s.committed_amount <> coalesce(u.invested, 0) + coalesce(i.reserved, 0)
"#;

/// Subscriptions read per statement for invariant 5.
const PAGE: u64 = 1000;

/// Every violation of invariants 1, 2, 3, 5, 6, 8, 9 and 7, in that order, read in one
/// snapshot; empty when all hold. `stuck_after`: how long an investment may stay pending or
/// processing without a status change before it counts as stranded (invariant 3).
pub async fn run(db: &DatabaseConnection, stuck_after: Duration) -> Result<Vec<Violation>, DbErr> {
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let violations = run_in(&txn, stuck_after).await?;
    txn.commit().await?;
    Ok(violations)
}

/// The checks of [`run`], in the caller's transaction.
async fn run_in(db: &impl ConnectionTrait, stuck_after: Duration) -> Result<Vec<Violation>, DbErr> {
    let mut violations = Vec::new();
    let batches = BatchRow::find_by_statement(Statement::from_string(DbBackend::Postgres, UNITS))
        .all(db)
        .await?;
    violations.extend(batches.into_iter().map(|b| Violation {
        invariant: 1,
        subject: b.id,
        detail: format!(
            "batch of {} units has {} remaining but {} allocated",
            b.units_total, b.units_remaining, b.allocated
        ),
    }));
    let investments =
        InvestmentRow::find_by_statement(Statement::from_string(DbBackend::Postgres, EXACT))
            .all(db)
            .await?;
    violations.extend(investments.into_iter().map(|i| Violation {
        invariant: 2,
        subject: i.id,
        detail: format!(
            "{} investment of {} shares ({}) holds {} units worth {}",
            i.status, i.shares, i.total_amount, i.units, i.value
        ),
    }));
    let millis = i64::try_from(stuck_after.as_millis()).unwrap_or(i64::MAX);
    let stuck = StuckRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        STUCK,
        [millis.into()],
    ))
    .all(db)
    .await?;
    violations.extend(stuck.into_iter().map(|i| Violation {
        invariant: 3,
        subject: i.id,
        detail: format!(
            "still {} after {} s without a status change",
            i.status, i.idle_seconds
        ),
    }));
    let mut after = None;
    loop {
        let (page, next) = balance::page(db, Scope::All, after, PAGE).await?;
        for b in page {
            let a = &b.aggregates;
            if a.total_invested + a.reserved_amount > b.total_value {
                violations.push(Violation {
                    invariant: 5,
                    subject: a.subscription_id,
                    detail: format!(
                        "invested {} + reserved {} exceeds the subscription's value {}",
                        a.total_invested, a.reserved_amount, b.total_value
                    ),
                });
            }
        }
        match next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    let gaps = LogRow::find_by_statement(Statement::from_string(DbBackend::Postgres, GAPS))
        .all(db)
        .await?;
    violations.extend(gaps.into_iter().map(|g| Violation {
        invariant: 6,
        subject: g.id,
        detail: format!(
            "status_version {} but the event log holds {} entries, versions {:?} to {:?}{}",
            g.status_version,
            g.logged,
            g.first,
            g.last,
            if g.last_matches {
                ""
            } else {
                "; its last entry is not the current status"
            }
        ),
    }));
    let totals = TotalsRow::find_by_statement(Statement::from_string(DbBackend::Postgres, TOTALS))
        .all(db)
        .await?;
    violations.extend(totals.into_iter().map(|t| Violation {
        invariant: 8,
        subject: t.id,
        detail: format!(
            "carries committed_amount {} but invested {} + reserved {} is {}: a create and the \
             listing disagree on its available balance",
            t.committed_amount,
            t.total_invested,
            t.reserved_amount,
            t.total_invested + t.reserved_amount
        ),
    }));
    pieces::check(db, &mut violations).await?;
    Ok(violations)
}
