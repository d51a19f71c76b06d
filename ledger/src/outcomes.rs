//! The outcomes of an allocation attempt over a whole micro-batch, in one statement: each
//! investment's row moves to its new status and both of its new events are logged, however
//! many investments the batch holds.
//!
//! An attempt on a `pending` investment passes through `processing` inside the attempt's own
//! transaction: the row is updated once (`status_version + 2`) and the log gets the
//! `processing` event at `+1` and the outcome at `+2`, so watchers still see
//! `processing` before `completed`, `failed` or a retry's `pending` (invariant 6), and no
//! committed row is ever left `processing` by an attempt that failed.
//!
//! The statement takes arrays (`unnest`), so one prepared statement serves every batch size.

use entity::prelude::*;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, Statement, Value};

/// One investment's outcome, decided under the row lock of `row`.
#[derive(Clone, Debug)]
pub struct Change {
    /// The locked row as it was read in this transaction.
    pub row: investment::Model,
    /// Its new allocation status.
    pub status: AllocationStatus,
    /// The error to show (`None` clears it).
    pub error: Option<String>,
    /// Why it failed: `Some` exactly when `status` is `Failed` (the table's CHECK).
    pub failure: Option<AllocationFailure>,
    /// Attempts counted so far, after this one.
    pub attempts: i32,
}

/// A row after [`apply`], with the `processing` state it passed through.
#[derive(Clone, Debug)]
pub struct Changed {
    /// `processing` as logged on the way (a pending row): announce it first.
    pub via: Option<investment::Model>,
    /// The row as it is now.
    pub row: investment::Model,
}

/// Updates every row of `changes` and logs its events: one statement. The rows must be locked
/// in this transaction. Returns them in no particular order.
pub async fn apply(txn: &impl ConnectionTrait, changes: &[Change]) -> Result<Vec<Changed>, DbErr> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let via = |c: &Change| c.row.allocation_status == AllocationStatus::Pending;
    let column = |f: &dyn Fn(&Change) -> Value| -> Value {
        Value::Array(
            array_type(&f(&changes[0])),
            Some(Box::new(changes.iter().map(f).collect())),
        )
    };
    let values = vec![
        column(&|c| c.row.id.into()),
        column(&|c| sea_orm::ActiveEnum::to_value(&c.status).into()),
        column(&|c| c.error.clone().unwrap_or_default().into()),
        column(&|c| c.attempts.into()),
        column(&|c| via(c).into()),
        column(&|c| c.row.allocation_error.clone().unwrap_or_default().into()),
        column(&|c| c.row.allocation_attempts.into()),
        column(&|c| {
            c.failure
                .map(|f| sea_orm::ActiveEnum::to_value(&f))
                .unwrap_or_default()
                .into()
        }),
    ];
    let rows = Investment::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            APPLY,
            values,
        ))
        .all(txn)
        .await?;
    let before: std::collections::HashMap<_, _> = changes.iter().map(|c| (c.row.id, c)).collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let via = before
                .get(&row.id)
                .filter(|c| via(c))
                .map(|c| processing(&c.row, &row));
            Changed { via, row }
        })
        .collect())
}

/// `before` as it was logged on its way to `after`: `processing`, one version earlier.
fn processing(before: &investment::Model, after: &investment::Model) -> investment::Model {
    investment::Model {
        allocation_status: AllocationStatus::Processing,
        status: AllocationStatus::Processing.investment_status(),
        status_version: after.status_version - 1,
        updated_at: after.updated_at,
        allocated_at: None,
        ..before.clone()
    }
}

fn array_type(value: &Value) -> sea_orm::sea_query::ArrayType {
    use sea_orm::sea_query::ArrayType;
    match value {
        Value::Uuid(_) => ArrayType::Uuid,
        Value::Int(_) => ArrayType::Int,
        Value::Bool(_) => ArrayType::Bool,
        _ => ArrayType::String,
    }
}

/// `$1` ids, `$2` new statuses, `$3` errors ('' for none), `$4` attempts, `$5` whether the
/// row passes through `processing`, `$6`/`$7` the error and attempts it had then, `$8` the
/// failures ('' for none; a row passing through `processing` was pending, so had none). The
/// investment status follows the allocation status as `AllocationStatus::investment_status`
/// says; `allocated_at` is set exactly when completed (the table's CHECK).
const APPLY: &str = r#"
WITH c AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bool[],
                         $6::text[], $7::int[], $8::text[])
        AS c(id, status, error, attempts, via, via_error, via_attempts, failure)
), upd AS (
    UPDATE investments i SET
        allocation_status = c.status::allocation_status,
        status = (CASE c.status WHEN 'completed' THEN 'active' WHEN 'failed' THEN 'failed'
                  ELSE 'pending' END)::investment_status,
        status_version = i.status_version + CASE WHEN c.via THEN 2 ELSE 1 END,
        updated_at = now(),
        allocated_at = CASE WHEN c.status = 'completed' THEN now() END,
        allocation_error = nullif(c.error, ''),
        allocation_failure = nullif(c.failure, ''),
        allocation_attempts = c.attempts
    FROM c
    WHERE i.id = ANY($1::uuid[]) AND i.id = c.id
    RETURNING i.*, c.via, c.via_error, c.via_attempts
), logged AS (
    INSERT INTO allocation_events
        (investment_id, version, user_id, deal_id, allocation_status, attempt, error, failure)
    SELECT id, status_version - 1, user_id, deal_id, 'processing', via_attempts,
           nullif(via_error, ''), NULL
    FROM upd WHERE via
    UNION ALL
    SELECT id, status_version, user_id, deal_id, allocation_status, allocation_attempts,
           allocation_error, allocation_failure
    FROM upd
)
SELECT * FROM upd
"#;
