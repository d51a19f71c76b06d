//! Keyset pagination shared by every list RPC: page sizes and opaque page tokens.
//!
//! A token is the sort key of the last row served, `(created_at, id)`, so pages stay stable
//! while rows are added, and it is bound to the request that issued it (the RPC and its
//! filter): a token of one list RPC, or of the same RPC with another filter, is refused rather
//! than silently paging something else. Tokens are only position markers: queries are scoped
//! to the caller whatever the token says, so a forged token can at worst skip rows of the
//! caller's own.
//!
//! Every list reads its page the same way ([`seek`], then [`split`]): `(created_at, id)`
//! compared as one row value with the cursor (bound, never written into the SQL), ordered by
//! both, one row more than the page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, Utc};
use sea_orm::sea_query::{Expr, IntoColumnRef, Order, SelectStatement};
use uuid::Uuid;

use crate::status::Violations;

/// Page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page served; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u64 = 500;

/// The page size to use for a requested `page_size` (0 = default, clamped to the maximum).
/// `None` for a negative size.
pub fn page_size(requested: i32) -> Option<u64> {
    match requested {
        0 => Some(DEFAULT_PAGE_SIZE),
        n if n < 0 => None,
        n => Some(u64::try_from(n).ok()?.min(MAX_PAGE_SIZE)),
    }
}

/// Reads a request's `page_size` and `page_token`, recording what is wrong in `v`. `scope`
/// names the request the token must come from (see [`Cursor::encode`]).
pub fn parse(
    page_size: i32,
    page_token: &str,
    scope: &str,
    v: &mut Violations,
) -> (u64, Option<Cursor>) {
    let size = self::page_size(page_size).unwrap_or_else(|| {
        v.add("page_size", "must not be negative");
        DEFAULT_PAGE_SIZE
    });
    let after = Cursor::decode(page_token, scope).unwrap_or_else(|BadToken| {
        v.add(
            "page_token",
            "not a token of this request: pass the next_page_token of the same RPC with the same filter, or none",
        );
        None
    });
    (size, after)
}

/// Which way a list runs over `(created_at, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Ascending: the oldest row first.
    OldestFirst,
    /// Descending: the newest row first.
    NewestFirst,
}

/// Makes `query` read the page after `after`: the rows past the cursor in `direction` (by the
/// row value `(created_at, id)`, which a btree index on those columns answers as one range),
/// ordered so, `size + 1` of them (see [`split`]). `created_at` and `id` name the columns of
/// the listed table, qualified where the query joins others.
pub fn seek<C: IntoColumnRef + Clone>(
    query: &mut SelectStatement,
    (created_at, id): (C, C),
    direction: Direction,
    after: Option<Cursor>,
    size: u64,
) {
    // Here only: its `min` would shadow `Ord::min` for integers elsewhere in this file.
    use sea_orm::sea_query::ExprTrait as _;
    if let Some(cursor) = after {
        let key = Expr::tuple([Expr::col(created_at.clone()), Expr::col(id.clone())]);
        let at = Expr::tuple([Expr::val(cursor.created_at), Expr::val(cursor.id)]);
        query.and_where(match direction {
            Direction::OldestFirst => key.gt(at),
            Direction::NewestFirst => key.lt(at),
        });
    }
    let order = match direction {
        Direction::OldestFirst => Order::Asc,
        Direction::NewestFirst => Order::Desc,
    };
    query
        .order_by(created_at, order.clone())
        .order_by(id, order)
        .limit(size + 1);
}

/// Pages are read one row longer than asked: the extra row, dropped here, says that another
/// page follows, whose cursor (the last kept row's, by `cursor`) is returned.
pub fn split<T>(rows: &mut Vec<T>, size: u64, cursor: impl Fn(&T) -> Cursor) -> Option<Cursor> {
    let keep = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() > keep {
        rows.truncate(keep);
        rows.last().map(cursor)
    } else {
        None
    }
}

/// The `next_page_token` of a response, bound to `scope`: empty on the last page.
pub fn next_token(next: Option<Cursor>, scope: &str) -> String {
    next.map(|c| c.encode(scope)).unwrap_or_default()
}

/// Position after which the next page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last row served.
    pub created_at: DateTime<Utc>,
    /// `id` of the last row served (ties on `created_at`).
    pub id: Uuid,
}

const VERSION: &str = "v2";

/// A page token this service did not issue for this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a page token of this request")]
pub struct BadToken;

impl Cursor {
    /// The opaque token for this position in the request `scope` (the RPC and its filter,
    /// e.g. `ListInvestments/FAILED`).
    pub fn encode(&self, scope: &str) -> String {
        let raw = format!(
            "{VERSION}|{scope}|{}|{}",
            self.created_at.timestamp_micros(),
            self.id
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token; `Ok(None)` for the empty token (first page), `Err` for anything this
    /// service did not issue for `scope`.
    pub fn decode(token: &str, scope: &str) -> Result<Option<Cursor>, BadToken> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.len() > 256 {
            return Err(BadToken);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadToken)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| BadToken)?;
        let mut parts = raw.split('|');
        let (Some(VERSION), Some(issued_for), Some(micros), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(BadToken);
        };
        if issued_for != scope {
            return Err(BadToken);
        }
        let micros: i64 = micros.parse().map_err(|_| BadToken)?;
        // Only times PostgreSQL can compare with (a forged year -5000 would fail in SQL).
        let created_at = DateTime::from_timestamp_micros(micros)
            .filter(|t| (1970..=9999).contains(&t.year()))
            .ok_or(BadToken)?;
        let id = Uuid::parse_str(id).map_err(|_| BadToken)?;
        Ok(Some(Cursor { created_at, id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::new_v4(),
        };
        assert_eq!(
            Cursor::decode(&cursor.encode("A/x"), "A/x"),
            Ok(Some(cursor))
        );
    }

    #[test]
    fn a_token_is_refused_by_another_request() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::new_v4(),
        };
        let token = cursor.encode("ListInvestments/FAILED");
        assert_eq!(Cursor::decode(&token, "ListInvestments/ALL"), Err(BadToken));
        assert_eq!(
            Cursor::decode(&token, "ListSubscriptionBalances"),
            Err(BadToken)
        );
    }

    #[test]
    fn empty_token_is_the_first_page() {
        assert_eq!(Cursor::decode("", "A"), Ok(None));
    }

    #[test]
    fn forged_tokens_are_rejected() {
        for token in [
            "x",
            "!!!!",
            &URL_SAFE_NO_PAD.encode("v3|A|1|abc"),
            &URL_SAFE_NO_PAD.encode("v2|A|nan|x"),
            &URL_SAFE_NO_PAD.encode(format!("v1|1|{}", Uuid::nil())),
            &URL_SAFE_NO_PAD.encode(format!("v2|A|{}|{}", i64::MIN / 2, Uuid::nil())),
            &"A".repeat(500),
        ] {
            assert_eq!(Cursor::decode(token, "A"), Err(BadToken), "{token}");
        }
    }

    #[test]
    fn seek_compares_the_row_value_with_bound_cursor_and_reads_one_more() {
        use sea_orm::sea_query::{PostgresQueryBuilder, Query};
        let query = |direction, after| {
            let mut q = Query::select().column("id").from("t").to_owned();
            seek(&mut q, ("created_at", "id"), direction, after, 10);
            q.build(PostgresQueryBuilder)
        };
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::nil(),
        };
        let (sql, values) = query(Direction::NewestFirst, Some(cursor));
        assert_eq!(
            sql,
            r#"SELECT "id" FROM "t" WHERE ("created_at", "id") < ($1, $2) ORDER BY "created_at" DESC, "id" DESC LIMIT $3"#
        );
        assert_eq!(values.0.len(), 3, "cursor and limit bound: {values:?}");
        let (sql, _) = query(Direction::OldestFirst, None);
        assert_eq!(
            sql,
            r#"SELECT "id" FROM "t" ORDER BY "created_at" ASC, "id" ASC LIMIT $1"#
        );
    }

    #[test]
    fn page_sizes_default_clamp_and_reject_negative() {
        assert_eq!(page_size(0), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Some(7));
        assert_eq!(page_size(i32::MAX), Some(MAX_PAGE_SIZE));
        assert_eq!(page_size(-1), None);
    }
}
