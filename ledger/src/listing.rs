//! Pages of investments, newest first, for any scope: one user's (ListInvestments) or
//! everyone's failed ones (ListFailedAllocations).

use entity::prelude::*;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryTrait,
};
use service_kit::{
    page::{self, Cursor, Direction},
    status::{Invalid, Violations},
};

/// A validated list request: which investments, from where, how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this allocation status, or all.
    pub allocation_status: Option<AllocationStatus>,
    /// Start after this position (newest first).
    pub after: Option<Cursor>,
    /// Page size.
    pub size: u64,
    /// What its page tokens are bound to: the RPC and the filter.
    pub token_scope: String,
}

impl ListQuery {
    /// Validates page size, page token and status filter of a request to `rpc` (a token must
    /// come from the same RPC with the same filter). `status` is `Err(value)` for a value the
    /// API does not define.
    pub fn parse(
        rpc: &str,
        page_size: i32,
        page_token: &str,
        status: Result<Option<AllocationStatus>, i32>,
    ) -> Result<Self, Invalid> {
        let mut v = Violations::default();
        let token_scope = match status {
            Ok(Some(s)) => format!("{rpc}/{}", sea_orm::ActiveEnum::to_value(&s)),
            Ok(None) => format!("{rpc}/all"),
            Err(value) => format!("{rpc}/{value}"),
        };
        let (size, after) = page::parse(page_size, page_token, &token_scope, &mut v);
        let allocation_status = status.unwrap_or_else(|_| {
            v.add("allocation_status", "unknown value");
            None
        });
        v.finish()?;
        Ok(Self {
            allocation_status,
            after,
            size,
            token_scope,
        })
    }

    /// The `next_page_token` for the page that ended at `next`.
    pub fn next_token(&self, next: Option<Cursor>) -> String {
        page::next_token(next, &self.token_scope)
    }
}

/// A page of investments matching `scope`, newest first, and the next page's cursor.
pub async fn list(
    db: &DatabaseConnection,
    scope: Condition,
    query: &ListQuery,
) -> Result<(Vec<investment::Model>, Option<Cursor>), DbErr> {
    use investment::Column;
    let mut select = Investment::find().filter(scope);
    if let Some(status) = query.allocation_status {
        select = select.filter(Column::AllocationStatus.eq(status));
    }
    page::seek(
        QueryTrait::query(&mut select),
        (
            (investment::Entity, Column::CreatedAt),
            (investment::Entity, Column::Id),
        ),
        Direction::NewestFirst,
        query.after,
        query.size,
    );
    let mut rows = select.all(db).await?;
    let next = page::split(&mut rows, query.size, |r| Cursor {
        created_at: r.created_at,
        id: r.id,
    });
    Ok((rows, next))
}
