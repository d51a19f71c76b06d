//! Filter values the planner must see: written into the SQL as constants, not bound.
//!
//! PostgreSQL switches a prepared statement to a generic plan after five executions, and a
//! generic plan knows neither a bound value's frequency nor whether it satisfies a partial
//! index's predicate: `status = $1` never proves `WHERE status = 'paid'`, so the index is
//! skipped and the table scanned (issue 18). Fixed values (a status, a flag) are therefore
//! constants of the statement; only what varies per call (ids, cursors) is bound.

use sea_orm::{
    ActiveEnum,
    sea_query::{Expr, ExprTrait},
};

/// `'value'::type_name` for a PostgreSQL enum value, inline.
pub fn constant<E: ActiveEnum<Value = String>>(value: E) -> Expr {
    Expr::Constant(value.to_value().into()).cast_as(E::name())
}

/// The constants of `values`, for `IN (...)`.
pub fn constants<E: ActiveEnum<Value = String>>(values: impl IntoIterator<Item = E>) -> Vec<Expr> {
    values.into_iter().map(constant).collect()
}
