//! The open deals a user can invest in, with the units still available: what an investment
//! form offers. One statement per page, whatever the number of deals or batches.

use chrono::{DateTime, Utc};
use entity::{
    deal as d,
    prelude::{AllocationStatus, DealStatus},
};
use rust_decimal::Decimal;
use sea_orm::{
    ConnectionTrait, DbErr, FromQueryResult,
    sea_query::{Expr, Func, IntoIden, Query, SelectStatement, SubQueryStatement},
};
use service_kit::page::{self, Cursor, Direction};
use uuid::Uuid;

use crate::sql::{constant, constants};

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

/// `coalesce((<sum over the deal's rows>), 0)::bigint`: a correlated aggregate of one deal.
fn of_each_deal<T: IntoIden + Copy + 'static>(
    table: T,
    summed: impl IntoIden,
    deal: impl IntoIden,
    filter: Expr,
) -> Expr {
    // In these functions only: its `max` would shadow `Ord::max` for integers above.
    use sea_orm::sea_query::ExprTrait as _;
    let sum = Query::select()
        .expr(Func::sum(Expr::col((table, summed))))
        .from(table)
        .and_where(Expr::col((table, deal)).equals((d::Entity, d::Column::Id)))
        .and_where(filter)
        .to_owned();
    Expr::from(Func::coalesce([
        Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(sum))),
        Expr::Constant(0.into()),
    ]))
    .cast_as("bigint")
}

/// The statement [`open_page`] runs (one row more than `size`). Each aggregate is served by an
/// index: `bulk_purchases_fifo_idx` (batches with units left, by deal) and
/// `investments_deal_reserved_idx` (pending and processing investments, by deal); their
/// filters are constants, so they prove those predicates under a generic plan too
/// ([`crate::sql`]).
pub fn open_page_statement(after: Option<Cursor>, size: u64) -> SelectStatement {
    use entity::{bulk_purchase as b, investment as i};
    use sea_orm::sea_query::ExprTrait as _;
    let mut query = Query::select()
        .columns([
            (d::Entity, d::Column::Id),
            (d::Entity, d::Column::Name),
            (d::Entity, d::Column::PricePerShare),
            (d::Entity, d::Column::CreatedAt),
        ])
        .expr_as(
            of_each_deal(
                b::Entity,
                b::Column::UnitsRemaining,
                b::Column::DealId,
                Expr::col((b::Entity, b::Column::UnitsRemaining)).gt(Expr::Constant(0.into())),
            ),
            "units_remaining",
        )
        .expr_as(
            of_each_deal(
                i::Entity,
                i::Column::Shares,
                i::Column::DealId,
                Expr::col((i::Entity, i::Column::AllocationStatus)).is_in(constants([
                    AllocationStatus::Pending,
                    AllocationStatus::Processing,
                ])),
            ),
            "units_reserved",
        )
        .from(d::Entity)
        .and_where(Expr::col((d::Entity, d::Column::Status)).eq(constant(DealStatus::Open)))
        .to_owned();
    page::seek(
        &mut query,
        (
            (d::Entity, d::Column::CreatedAt),
            (d::Entity, d::Column::Id),
        ),
        Direction::OldestFirst,
        after,
        size,
    );
    query
}

/// A page of open deals, oldest first, and the cursor of the next page if there is one.
pub async fn open_page(
    db: &impl ConnectionTrait,
    after: Option<Cursor>,
    size: u64,
) -> Result<(Vec<OpenDeal>, Option<Cursor>), DbErr> {
    let query = open_page_statement(after, size);
    let mut rows = OpenDeal::find_by_statement(db.get_database_backend().build(&query))
        .all(db)
        .await?;
    let next = page::split(&mut rows, size, |r| Cursor {
        created_at: r.created_at,
        id: r.id,
    });
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, prelude::DateTimeUtc};

    use super::*;

    #[test]
    fn filters_are_constants_and_the_cursor_and_size_are_bound() {
        let after = Cursor {
            created_at: DateTimeUtc::default(),
            id: Uuid::nil(),
        };
        let built = DbBackend::Postgres.build(&open_page_statement(Some(after), 5));
        assert_eq!(
            built.sql,
            "SELECT \"deals\".\"id\", \"deals\".\"name\", \"deals\".\"price_per_share\", \"deals\".\"created_at\", \
             CAST(COALESCE((SELECT SUM(\"bulk_purchases\".\"units_remaining\") FROM \"bulk_purchases\" \
             WHERE \"bulk_purchases\".\"deal_id\" = \"deals\".\"id\" AND \"bulk_purchases\".\"units_remaining\" > 0), 0) AS bigint) AS \"units_remaining\", \
             CAST(COALESCE((SELECT SUM(\"investments\".\"shares\") FROM \"investments\" \
             WHERE \"investments\".\"deal_id\" = \"deals\".\"id\" AND \"investments\".\"allocation_status\" \
             IN (CAST('pending' AS allocation_status), CAST('processing' AS allocation_status))), 0) AS bigint) AS \"units_reserved\" \
             FROM \"deals\" WHERE \"deals\".\"status\" = CAST('open' AS deal_status) \
             AND (\"deals\".\"created_at\", \"deals\".\"id\") > ($1, $2) \
             ORDER BY \"deals\".\"created_at\" ASC, \"deals\".\"id\" ASC LIMIT $3"
        );
        assert_eq!(built.values.map(|v| v.0.len()), Some(3));
    }
}
