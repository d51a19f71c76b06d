//! Plans, not luck (issue 18): the plan PostgreSQL uses for a statement once it has gone
//! generic (after five executions of a prepared statement), checked on realistic row counts.
//!
//! PostgreSQL 15 has no `EXPLAIN (GENERIC_PLAN)`, so a statement is `PREPARE`d with the types
//! sqlx binds its values as and `EXPLAIN EXECUTE`d under `plan_cache_mode =
//! force_generic_plan`. Statements are the real ones: [`Recorded`] keeps every statement a
//! connection sent, so a test runs the service's own code and checks what it ran.

use std::sync::{Arc, Mutex};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value,
    sea_query::{PostgresQueryBuilder, QueryBuilder},
};

use crate::db::TestDb;

/// Tables at most this big may be read whole: a seq scan of a few pages is what a planner
/// should pick there.
pub const SMALL_TABLE: i64 = 1_000;

/// Every statement sent on a connection, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorded(Arc<Mutex<Vec<Statement>>>);

impl Recorded {
    /// The statements sent since the last call.
    pub fn take(&self) -> Vec<Statement> {
        std::mem::take(&mut *self.0.lock().expect("recorder lock"))
    }
}

impl TestDb {
    /// A pool whose every statement is kept, for plan checks of what the code really sent.
    pub async fn connect_recording(&self) -> (DatabaseConnection, Recorded) {
        let mut db = self.connect().await;
        let recorded = Recorded::default();
        let keep = recorded.0.clone();
        db.set_metric_callback(move |info| {
            keep.lock()
                .expect("recorder lock")
                .push(info.statement.clone());
        });
        (db, recorded)
    }
}

/// What sqlx binds `value` as: the parameter's type in the `PREPARE`.
fn pg_type(value: &Value) -> String {
    match value {
        Value::Bool(_) => "boolean".into(),
        Value::TinyInt(_) | Value::SmallInt(_) => "smallint".into(),
        Value::Int(_) => "integer".into(),
        Value::BigInt(_) | Value::BigUnsigned(_) | Value::Unsigned(_) => "bigint".into(),
        Value::Double(_) | Value::Float(_) => "double precision".into(),
        Value::Decimal(_) => "numeric".into(),
        Value::Uuid(_) => "uuid".into(),
        Value::ChronoDateTimeUtc(_) | Value::ChronoDateTimeWithTimeZone(_) => "timestamptz".into(),
        Value::ChronoDateTime(_) => "timestamp".into(),
        Value::Enum(e) => match e {
            sea_orm::sea_query::OptionEnum::Some(e) => e.type_name.to_string(),
            sea_orm::sea_query::OptionEnum::None(name) => name.to_string(),
        },
        _ => "text".into(),
    }
}

/// The generic plan of `statement` (text format, one line per node), on `db`'s current data.
/// A `FETCH` from a cursor has no plan of its own (its `DECLARE` planned the query): none.
pub async fn generic_plan(db: &DatabaseConnection, statement: &Statement) -> Vec<String> {
    if statement.sql.trim_start().starts_with("FETCH ") {
        return Vec::new();
    }
    let values = statement
        .values
        .as_ref()
        .map(|v| v.0.clone())
        .unwrap_or_default();
    let types: Vec<String> = values.iter().map(pg_type).collect();
    let args: Vec<String> = values
        .iter()
        .map(|v| PostgresQueryBuilder.value_to_string(v))
        .collect();
    let txn = db.begin().await.expect("begin");
    txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .expect("set plan_cache_mode");
    let params = if types.is_empty() {
        String::new()
    } else {
        format!("({})", types.join(", "))
    };
    // Test-only SQL from the statement under test and sea-query's own literals.
    txn.execute_unprepared(&format!("PREPARE plan_check{params} AS {}", statement.sql))
        .await
        .unwrap_or_else(|e| panic!("PREPARE failed ({e}): {}", statement.sql));
    let execute = if args.is_empty() {
        "EXPLAIN EXECUTE plan_check".to_owned()
    } else {
        format!("EXPLAIN EXECUTE plan_check({})", args.join(", "))
    };
    let rows = txn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, execute))
        .await
        .unwrap_or_else(|e| panic!("EXPLAIN failed ({e}): {}", statement.sql));
    // Prepared statements outlive a rollback.
    txn.execute_unprepared("DEALLOCATE plan_check")
        .await
        .expect("deallocate");
    txn.rollback().await.expect("rollback");
    rows.iter()
        .map(|r| r.try_get::<String>("", "QUERY PLAN").expect("plan line"))
        .collect()
}

/// Tables of more than [`SMALL_TABLE`] rows that `plan` reads with a sequential scan.
pub async fn seq_scans(db: &DatabaseConnection, plan: &[String]) -> Vec<(String, i64)> {
    let mut scanned = Vec::new();
    for line in plan {
        let Some((_, rest)) = line.split_once("Seq Scan on ") else {
            continue;
        };
        let table = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT 1 AS n FROM pg_class WHERE relname = $1 AND relkind = 'r'",
                [table.clone().into()],
            ))
            .await
            .expect("table lookup");
        if row.is_none() {
            continue;
        }
        // Rows now, not the planner's estimate: the point is what a scan would read.
        let n: i64 = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM \"{}\"", table.replace('"', "")),
            ))
            .await
            .expect("count")
            .expect("a count")
            .try_get("", "n")
            .expect("n");
        if n > SMALL_TABLE && !scanned.iter().any(|(t, _)| *t == table) {
            scanned.push((table, n));
        }
    }
    scanned
}

/// Panics, with the plan, if the generic plan of `statement` scans a table of more than
/// [`SMALL_TABLE`] rows sequentially, other than the `whole` tables it is meant to read in
/// full (an audit of every row). Returns the plan.
pub async fn assert_indexed(
    db: &DatabaseConnection,
    what: &str,
    statement: &Statement,
    whole: &[&str],
) -> Vec<String> {
    let plan = generic_plan(db, statement).await;
    let scans: Vec<_> = seq_scans(db, &plan)
        .await
        .into_iter()
        .filter(|(table, _)| !whole.contains(&table.as_str()))
        .collect();
    // What each statement scans, for `--nocapture` runs.
    let first = statement
        .sql
        .split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("[plan] {what}: {first} ...");
    for line in plan.iter().filter(|l| l.contains(" Scan ")) {
        eprintln!(
            "[plan]     {}",
            line.split("  (cost").next().unwrap_or(line).trim()
        );
    }
    assert!(
        scans.is_empty(),
        "{what}: the generic plan scans {scans:?} sequentially\n{}\n{}",
        statement.sql,
        plan.join("\n")
    );
    plan
}

/// The data plans are checked on: thousands of rows per table, statuses in realistic
/// proportions (most investments completed, most payments paid), then `ANALYZE`. Returns a
/// user with ten subscriptions.
pub async fn seed(db: &DatabaseConnection) -> Seeded {
    db.execute_unprepared(SEED).await.expect("seed");
    db.execute_unprepared("ANALYZE").await.expect("analyze");
    let id = |sql: &str| {
        let sql = sql.to_owned();
        async move {
            db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .expect("seeded id")
                .expect("a seeded row")
                .try_get::<uuid::Uuid>("", "id")
                .expect("id")
        }
    };
    Seeded {
        user: id("SELECT md5('user7')::uuid AS id").await,
        subscription: id("SELECT md5('sub7')::uuid AS id").await,
        deal: id("SELECT md5('deal7')::uuid AS id").await,
        pending: id(
            "SELECT id FROM investments WHERE allocation_status = 'pending' ORDER BY id LIMIT 1",
        )
        .await,
    }
}

/// Ids in the seeded data.
#[derive(Clone, Copy, Debug)]
pub struct Seeded {
    /// A user with ten subscriptions (`sub7`, `sub307`, ...).
    pub user: uuid::Uuid,
    /// One of them, active.
    pub subscription: uuid::Uuid,
    /// An open deal with inventory left.
    pub deal: uuid::Uuid,
    /// A pending investment.
    pub pending: uuid::Uuid,
}

/// 300 users, 3,000 subscriptions, 30,000 payments, 5,000 batches, 30,000 investments (1 %
/// pending, 1 % processing, 3 % failed), their allocations and events.
const SEED: &str = r#"
INSERT INTO plans (id, name, monthly_amount, duration_months)
SELECT md5('plan' || g)::uuid, 'plan ' || g, 100, 12 FROM generate_series(0, 19) g;
INSERT INTO subscriptions (id, user_id, plan_id, status, created_at)
SELECT md5('sub' || g)::uuid, md5('user' || (g % 300))::uuid, md5('plan' || (g % 20))::uuid,
       (CASE g % 10 WHEN 0 THEN 'cancelled' WHEN 1 THEN 'paused' WHEN 2 THEN 'completed'
        ELSE 'active' END)::subscription_status,
       now() - g * interval '1 minute'
FROM generate_series(1, 3000) g;
INSERT INTO payments (id, subscription_id, user_id, amount, status, paid_at)
SELECT gen_random_uuid(), md5('sub' || (g % 3000 + 1))::uuid,
       md5('user' || ((g % 3000 + 1) % 300))::uuid, 100,
       (CASE g % 10 WHEN 0 THEN 'pending' WHEN 1 THEN 'failed' WHEN 2 THEN 'refunded'
        ELSE 'paid' END)::payment_status,
       CASE WHEN g % 10 > 2 THEN now() END
FROM generate_series(1, 30000) g;
INSERT INTO deals (id, name, price_per_share, status)
SELECT md5('deal' || g)::uuid, 'deal ' || g, 10,
       (CASE WHEN g % 5 = 0 THEN 'closed' ELSE 'open' END)::deal_status
FROM generate_series(0, 49) g;
INSERT INTO bulk_purchases (id, deal_id, units_total, units_remaining, purchased_at)
SELECT md5('bp' || g)::uuid, md5('deal' || (g % 50))::uuid, 100,
       CASE WHEN g >= 4900 THEN 100 ELSE 0 END, now() - (5000 - g) * interval '1 minute'
FROM generate_series(0, 4999) g;
INSERT INTO investments (id, user_id, subscription_id, deal_id, shares, price_per_share,
                         total_amount, status, allocation_status, allocated_at,
                         allocation_failure, created_at, updated_at)
SELECT md5('inv' || g)::uuid, md5('user' || ((g % 3000 + 1) % 300))::uuid,
       md5('sub' || (g % 3000 + 1))::uuid, md5('deal' || (g % 50))::uuid, 1, 10, 10,
       (CASE WHEN g % 100 < 2 THEN 'pending' WHEN g % 100 < 5 THEN 'failed'
        ELSE 'active' END)::investment_status,
       (CASE WHEN g % 100 = 0 THEN 'pending' WHEN g % 100 = 1 THEN 'processing'
        WHEN g % 100 < 5 THEN 'failed' ELSE 'completed' END)::allocation_status,
       CASE WHEN g % 100 >= 5 THEN now() END,
       CASE WHEN g % 100 BETWEEN 2 AND 4 THEN 'insufficient_inventory' END,
       now() - (30000 - g) * interval '1 second', now() - (30000 - g) * interval '1 second'
FROM generate_series(1, 30000) g;
INSERT INTO user_investments (id, user_id, subscription_id, investment_id, deal_id,
                              bulk_purchase_id, units_allocated, value_allocated, is_reversed)
SELECT gen_random_uuid(), i.user_id, i.subscription_id, i.id, i.deal_id,
       md5('bp' || (g % 4900))::uuid, 1, 10, g % 50 = 0
FROM generate_series(1, 30000) g JOIN investments i ON i.id = md5('inv' || g)::uuid
WHERE i.allocation_status = 'completed';
INSERT INTO allocation_events (investment_id, version, user_id, deal_id, allocation_status,
                               attempt, failure, created_at)
SELECT id, 1, user_id, deal_id, allocation_status, 0, allocation_failure, created_at
FROM investments;
"#;
