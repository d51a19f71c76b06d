//! The open deals a user can invest in, with the units still available: what an investment
//! form offers. One statement per page, whatever the number of deals or batches.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use service_kit::page::{self, Cursor};
use uuid::Uuid;

/// An open deal and its inventory.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct OpenDeal {
    /// The deal.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What one share costs.
    pub price_per_share: Decimal,
    /// Units left in its inventory batches.
    pub units_remaining: i64,
    /// Shares of its investments still pending or processing.
    pub units_reserved: i64,
    /// When it was created (the page order).
    pub created_at: DateTime<Utc>,
}

impl OpenDeal {
    /// What a new investment can expect to get: remaining units not already reserved.
    pub fn units_available(&self) -> i64 {
        (self.units_remaining - self.units_reserved).max(0)
    }
}

/// Each aggregate is served by an index: `bulk_purchases_fifo_idx` (batches with units left, by
/// deal) and `investments_deal_reserved_idx` (pending and processing investments, by deal).
const SELECT: &str = r#"
SELECT d.id, d.name, d.price_per_share, d.created_at,
       coalesce((SELECT sum(b.units_remaining) FROM bulk_purchases b
                 WHERE b.deal_id = d.id AND b.units_remaining > 0), 0)::bigint AS units_remaining,
       coalesce((SELECT sum(i.shares) FROM investments i
                 WHERE i.deal_id = d.id AND i.allocation_status IN ('pending', 'processing')),
                0)::bigint AS units_reserved
FROM deals d
WHERE d.status = 'open'
"#;

/// A page of open deals, oldest first, and the cursor of the next page if there is one.
pub async fn open_page(
    db: &impl ConnectionTrait,
    after: Option<Cursor>,
    size: u64,
) -> Result<(Vec<OpenDeal>, Option<Cursor>), DbErr> {
    let mut sql = SELECT.to_owned();
    let mut values: Vec<Value> = Vec::new();
    if let Some(cursor) = after {
        sql.push_str(" AND (d.created_at, d.id) > ($1, $2)");
        values.push(cursor.created_at.into());
        values.push(cursor.id.into());
    }
    // One row more than the page tells whether another page follows.
    sql.push_str(&format!(" ORDER BY d.created_at, d.id LIMIT {}", size + 1));
    let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let mut rows = OpenDeal::find_by_statement(stmt).all(db).await?;
    let next = page::split(&mut rows, size, |r| Cursor {
        created_at: r.created_at,
        id: r.id,
    });
    Ok((rows, next))
}
