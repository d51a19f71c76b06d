//! Where allocations came from and whom events belong to: the checks of invariants 9 and 7
//! that the audit adds to the sums of [`super`] (FIFO order: [`super::fifo`]).

use sea_orm::{DbBackend, DbErr, FromQueryResult, Statement, prelude::Decimal};
use uuid::Uuid;

use super::Violation;

#[derive(Debug, FromQueryResult)]
struct PieceRow {
    id: Uuid,
    batch: Uuid,
    batch_deal: Uuid,
    piece_deal: Uuid,
    investment_deal: Uuid,
    units: i64,
    value: Decimal,
    price: Decimal,
}

/// 9. Each piece comes from a batch of its investment's deal, says so, and is worth exactly
///    its units at the investment's price.
const PROVENANCE: &str = r#"
SELECT p.investment_id AS id, p.bulk_purchase_id AS batch, b.deal_id AS batch_deal,
       p.deal_id AS piece_deal, i.deal_id AS investment_deal, p.units_allocated AS units,
       p.value_allocated AS value, i.price_per_share AS price
FROM user_investments p
JOIN bulk_purchases b ON b.id = p.bulk_purchase_id
JOIN investments i ON i.id = p.investment_id
WHERE b.deal_id <> i.deal_id OR p.deal_id <> i.deal_id
   OR p.value_allocated <> p.units_allocated * i.price_per_share
ORDER BY p.investment_id, p.created_at
"#;

#[derive(Debug, FromQueryResult)]
struct EventRow {
    id: Uuid,
    version: i64,
    event_user: Uuid,
    owner: Uuid,
    event_deal: Uuid,
    deal: Uuid,
}

/// 7. An event is its investment's: its user (the one whose WatchAllocations sees it) and its
///    deal are the investment's.
const EVENT_OWNERS: &str = r#"
SELECT e.investment_id AS id, e.version, e.user_id AS event_user, i.user_id AS owner,
       e.deal_id AS event_deal, i.deal_id AS deal
FROM allocation_events e
JOIN investments i ON i.id = e.investment_id
WHERE e.user_id <> i.user_id OR e.deal_id <> i.deal_id
ORDER BY e.investment_id, e.version
"#;

fn statement(sql: &str) -> Statement {
    Statement::from_string(DbBackend::Postgres, sql)
}

/// The violations of invariants 9 (provenance, FIFO, value) and 7 (events' owners); `db`
/// must be a transaction.
pub(super) async fn check(
    db: &impl sea_orm::ConnectionTrait,
    violations: &mut Vec<Violation>,
) -> Result<(), DbErr> {
    for p in PieceRow::find_by_statement(statement(PROVENANCE))
        .all(db)
        .await?
    {
        let mut wrong = Vec::new();
        if p.batch_deal != p.investment_deal {
            wrong.push(format!(
                "batch {} belongs to deal {}, not the investment's deal {}",
                p.batch, p.batch_deal, p.investment_deal
            ));
        }
        if p.piece_deal != p.investment_deal {
            wrong.push(format!(
                "a piece says deal {} but the investment's is {}",
                p.piece_deal, p.investment_deal
            ));
        }
        if p.value != Decimal::from(p.units) * p.price {
            wrong.push(format!(
                "a piece of {} units from batch {} is worth {}, not {} x {}",
                p.units, p.batch, p.value, p.units, p.price
            ));
        }
        violations.extend(wrong.into_iter().map(|detail| Violation {
            invariant: 9,
            subject: p.id,
            detail,
        }));
    }
    super::fifo::check(db, violations).await?;
    let events = EventRow::find_by_statement(statement(EVENT_OWNERS))
        .all(db)
        .await?;
    violations.extend(events.into_iter().map(|e| Violation {
        invariant: 7,
        subject: e.id,
        detail: format!(
            "event version {} names user {} and deal {}, but the investment is user {}'s in deal {}",
            e.version, e.event_user, e.event_deal, e.owner, e.deal
        ),
    }));
    Ok(())
}
