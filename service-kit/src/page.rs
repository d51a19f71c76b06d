//! Keyset pagination shared by every list RPC: page sizes and opaque page tokens.
//!
//! A token is the sort key of the last row served, `(created_at, id)`, so pages stay stable
//! while rows are added. Tokens are only position markers: queries are scoped to the caller
//! whatever the token says, so a forged token can at worst skip rows of the caller's own.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Datelike, Utc};
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

/// Reads a request's `page_size` and `page_token`, recording what is wrong in `v`.
pub fn parse(page_size: i32, page_token: &str, v: &mut Violations) -> (u64, Option<Cursor>) {
    let size = self::page_size(page_size).unwrap_or_else(|| {
        v.add("page_size", "must not be negative");
        DEFAULT_PAGE_SIZE
    });
    let after = Cursor::decode(page_token).unwrap_or_else(|BadToken| {
        v.add("page_token", "not a token from this service");
        None
    });
    (size, after)
}

/// Position after which the next page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last row served.
    pub created_at: DateTime<Utc>,
    /// `id` of the last row served (ties on `created_at`).
    pub id: Uuid,
}

const VERSION: &str = "v1";

/// A page token this service did not issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a page token from this service")]
pub struct BadToken;

impl Cursor {
    /// The opaque token for this position.
    pub fn encode(&self) -> String {
        let raw = format!(
            "{VERSION}|{}|{}",
            self.created_at.timestamp_micros(),
            self.id
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token; `Ok(None)` for the empty token (first page), `Err` for anything this
    /// service did not issue.
    pub fn decode(token: &str) -> Result<Option<Cursor>, BadToken> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.len() > 128 {
            return Err(BadToken);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadToken)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| BadToken)?;
        let mut parts = raw.split('|');
        let (Some(VERSION), Some(micros), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadToken);
        };
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
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(Some(cursor)));
    }

    #[test]
    fn empty_token_is_the_first_page() {
        assert_eq!(Cursor::decode(""), Ok(None));
    }

    #[test]
    fn forged_tokens_are_rejected() {
        for token in [
            "x",
            "!!!!",
            &URL_SAFE_NO_PAD.encode("v2|1|abc"),
            &URL_SAFE_NO_PAD.encode("v1|nan|x"),
            &URL_SAFE_NO_PAD.encode(format!("v1|{}|{}", i64::MIN / 2, Uuid::nil())),
            &"A".repeat(500),
        ] {
            assert_eq!(Cursor::decode(token), Err(BadToken), "{token}");
        }
    }

    #[test]
    fn page_sizes_default_clamp_and_reject_negative() {
        assert_eq!(page_size(0), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Some(7));
        assert_eq!(page_size(i32::MAX), Some(MAX_PAGE_SIZE));
        assert_eq!(page_size(-1), None);
    }
}
