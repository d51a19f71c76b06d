//! Invariant 9, FIFO: every piece was taken from the oldest batch of its pool that had units
//! at that moment, as the pool was then (a reversal later gives units back to older batches;
//! that does not make earlier pieces wrong).
//!
//! The audit replays each pool: every batch appearing (`created_at`, with `units_total`), every
//! piece taken (`user_investments.created_at`, stamped at insert under the deal lock) and every
//! reversal giving units back (`investments.reversed_at`, stamped the same way), in time order,
//! keeping the set of batches that hold units. Pieces with the same stamp (rows from before
//! migration `m20261202_000002`, stamped with their transaction's start) are replayed in the
//! batches' FIFO order, which is the order one transaction takes them in. One statement, read
//! through a cursor in chunks, so memory is one pool's batches whatever the history.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, prelude::DateTimeUtc,
};
use uuid::Uuid;

use super::Violation;

/// A batch appears (0), units come back (1), a piece is taken (2): the order of equal stamps.
const MOVES: &str = r#"
DECLARE audit_fifo_moves NO SCROLL CURSOR FOR
SELECT b.deal_id AS deal, m.batch, b.purchased_at, m.at, m.kind, m.units, m.investment_id
FROM (
    SELECT id AS batch, created_at AS at, 0 AS kind, units_total AS units,
           NULL::uuid AS investment_id
    FROM bulk_purchases
    UNION ALL
    SELECT q.bulk_purchase_id, r.reversed_at, 1, q.units_allocated, q.investment_id
    FROM user_investments q JOIN investments r ON r.id = q.investment_id
    WHERE q.is_reversed AND r.reversed_at IS NOT NULL
    UNION ALL
    SELECT bulk_purchase_id, created_at, 2, units_allocated, investment_id
    FROM user_investments
) m
JOIN bulk_purchases b ON b.id = m.batch
ORDER BY b.deal_id, m.at, m.kind, b.purchased_at, b.id
"#;

/// Moves read per round trip.
const CHUNK: &str = "FETCH FORWARD 5000 FROM audit_fifo_moves";

#[derive(Debug, FromQueryResult)]
struct Move {
    deal: Uuid,
    batch: Uuid,
    purchased_at: DateTimeUtc,
    kind: i32,
    units: i64,
    investment_id: Option<Uuid>,
}

/// A batch's place in its pool's FIFO order.
type Place = (DateTimeUtc, Uuid);

/// One pool being replayed.
#[derive(Default)]
struct Pool {
    deal: Option<Uuid>,
    left: HashMap<Uuid, i64>,
    holding: BTreeSet<Place>,
}

impl Pool {
    fn apply(&mut self, m: &Move, violations: &mut Vec<Violation>) {
        if self.deal != Some(m.deal) {
            *self = Pool {
                deal: Some(m.deal),
                ..Pool::default()
            };
        }
        let place = (m.purchased_at, m.batch);
        let older = self.holding.first().filter(|&&first| first < place);
        if let (2, Some(&(_, older))) = (m.kind, older) {
            violations.push(Violation {
                invariant: 9,
                subject: m.investment_id.unwrap_or(m.batch),
                detail: format!(
                    "took units from batch {} while the older batch {older} of its pool \
                     still had {} left",
                    m.batch,
                    self.left.get(&older).copied().unwrap_or_default()
                ),
            });
        }
        let left = self.left.entry(m.batch).or_default();
        *left += if m.kind == 2 { -m.units } else { m.units };
        if *left > 0 {
            self.holding.insert(place);
        } else {
            self.holding.remove(&place);
        }
    }
}

/// The FIFO violations, one per piece; `db` must be a transaction (the cursor lives in it).
pub(super) async fn check(
    db: &impl ConnectionTrait,
    violations: &mut Vec<Violation>,
) -> Result<(), DbErr> {
    db.execute_unprepared(MOVES).await?;
    let mut pool = Pool::default();
    loop {
        let chunk = Move::find_by_statement(Statement::from_string(DbBackend::Postgres, CHUNK))
            .all(db)
            .await?;
        if chunk.is_empty() {
            break;
        }
        for m in &chunk {
            pool.apply(m, violations);
        }
    }
    db.execute_unprepared("CLOSE audit_fifo_moves").await?;
    Ok(())
}
