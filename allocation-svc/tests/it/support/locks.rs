//! Row locks a test holds, as a long transaction elsewhere would.

use super::{Investor, Options, Stack, ms, stack_with};

/// A stack that gives up after three quick attempts and an investor (50 units) whose batches
/// the test holds locked: every attempt times out, so an investment ends FAILED with its
/// attempts exhausted once the test lets it.
pub async fn exhausting_attempts() -> (Stack, Investor, sea_orm::DatabaseTransaction) {
    let stack = stack_with(Options {
        backoff: vec![ms(50)],
        max_attempts: 3,
        ..Options::default()
    })
    .await;
    let investor = stack.investor("12000.00", "1.00", &[50]).await;
    let lock = hold(&stack, &investor, Hold::Batches).await;
    (stack, investor, lock)
}

/// Which rows a test holds locked, as a long transaction elsewhere would.
pub enum Hold {
    /// The deal row, as allocators lock it: allocation of the pool cannot start.
    Deal,
    /// The deal's batches: allocation gets to `PROCESSING`, then waits.
    Batches,
}

/// Locks the rows until the returned transaction ends (dropped or rolled back).
pub async fn hold(stack: &Stack, investor: &Investor, what: Hold) -> sea_orm::DatabaseTransaction {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let deal = investor.deal.id;
    let sql = match what {
        Hold::Deal => format!("SELECT 1 FROM deals WHERE id = '{deal}' FOR NO KEY UPDATE"),
        Hold::Batches => {
            format!("SELECT 1 FROM bulk_purchases WHERE deal_id = '{deal}' FOR UPDATE")
        }
    };
    let txn = stack.db.begin().await.expect("begin");
    txn.execute_unprepared(&sql).await.expect("lock");
    txn
}

/// The server process id behind a transaction's connection (to spare it in an outage).
pub async fn backend_pid(txn: &sea_orm::DatabaseTransaction) -> i32 {
    use sea_orm::ConnectionTrait;
    let row = txn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .expect("pid")
        .expect("a row");
    row.try_get("", "pid").expect("pid column")
}
