//! Plans, not luck (issue 18): every statement investment-svc runs keeps its index access under
//! the generic plan PostgreSQL switches a prepared statement to after five executions. The
//! statements are the ones the code really sent (recorded on the connection), checked on
//! thousands of rows per table.

use std::time::Duration;

use entity::prelude::*;
use investment_svc::{config::SweeperArgs, investments, sweeper};
use ledger::{audit, balance, deals};
use sea_orm::{DatabaseConnection, Statement};
use service_kit::page::Cursor;
use testkit::{
    db::TestDb,
    plans::{self, Recorded},
};

/// A seeded database: the recording connection the code under test runs on, and a plain one
/// for the checks.
struct Seeded {
    _test_db: TestDb,
    db: DatabaseConnection,
    checker: DatabaseConnection,
    recorded: Recorded,
    ids: plans::Seeded,
}

impl Seeded {
    /// Checks every statement recorded since the last call (on `checker`, a connection that
    /// records nothing).
    async fn check(&self, what: &str, whole: &[&str]) {
        let statements: Vec<Statement> = self.recorded.take();
        assert!(!statements.is_empty(), "{what}: nothing was sent");
        for statement in &statements {
            plans::assert_indexed(&self.checker, what, statement, whole).await;
        }
    }
}

async fn seeded() -> Seeded {
    let test_db = TestDb::create().await.expect("test database");
    let (db, recorded) = test_db.connect_recording().await;
    let checker = test_db.connect().await;
    let ids = plans::seed(&checker).await;
    Seeded {
        _test_db: test_db,
        db,
        checker,
        recorded,
        ids,
    }
}

#[tokio::test]
async fn balances_use_their_partial_indexes_under_a_generic_plan() {
    let s = seeded().await;
    let user = balance::Scope::User(UserId(s.ids.user));
    let (_, next) = balance::page(&s.db, user, None, 5).await.expect("page 1");
    assert!(next.is_some(), "the user has a second page");
    balance::page(&s.db, user, next, 5).await.expect("page 2");
    s.check("ListSubscriptionBalances", &[]).await;

    // The audit pages every subscription through the same statement.
    let (_, next) = balance::page(&s.db, balance::Scope::All, None, 100)
        .await
        .expect("all, page 1");
    balance::page(&s.db, balance::Scope::All, next, 100)
        .await
        .expect("all, page 2");
    s.check("balances of every subscription", &[]).await;
}

#[tokio::test]
async fn the_audit_reads_by_index_except_where_it_reads_every_row() {
    let s = seeded().await;
    audit::run(&s.db, Duration::from_secs(3600))
        .await
        .expect("audit");
    // Invariants 1, 2, 6 and 8 are over every batch, investment and allocation: a full read,
    // for which a sequential scan is the right plan.
    let whole = [
        "bulk_purchases",
        "user_investments",
        "investments",
        "allocation_events",
        "subscriptions",
    ];
    s.check("audit", &whole).await;
}

#[tokio::test]
async fn deals_create_and_reads_keep_their_indexes_under_a_generic_plan() {
    let s = seeded().await;
    let (_, next) = deals::open_page(&s.db, None, 5).await.expect("deals");
    deals::open_page(&s.db, next, 5)
        .await
        .expect("deals, page 2");
    s.check("ListDeals", &[]).await;

    let new = investments::NewInvestment {
        subscription_id: SubscriptionId(s.ids.subscription),
        deal_id: DealId(s.ids.deal),
        shares: 1,
        request_id: Some("plans-1".into()),
    };
    let (created, _) = investments::create(&s.db, UserId(s.ids.user), &new)
        .await
        .expect("create");
    // A replay reads the earlier investment by its request id too.
    investments::create(&s.db, UserId(s.ids.user), &new)
        .await
        .expect("replay");
    investments::get(&s.db, UserId(s.ids.user), InvestmentId(created.id))
        .await
        .expect("get");
    s.check("CreateInvestment / GetInvestment", &[]).await;

    let query = ledger::listing::ListQuery {
        allocation_status: Some(AllocationStatus::Pending),
        after: Some(Cursor {
            created_at: created.created_at,
            id: created.id,
        }),
        size: 20,
        token_scope: String::new(),
    };
    let scope = sea_orm::Condition::all().add(sea_orm::ColumnTrait::eq(
        &investment::Column::UserId,
        s.ids.user,
    ));
    ledger::listing::list(&s.db, scope, &query)
        .await
        .expect("list");
    s.check("ListInvestments", &[]).await;
}

#[tokio::test]
async fn the_sweepers_claim_uses_the_status_index_under_a_generic_plan() {
    let s = seeded().await;
    let args = SweeperArgs {
        sweep_interval: Duration::from_secs(15),
        sweep_min_age: Duration::from_secs(60),
        sweep_stuck_age: Duration::from_secs(900),
        sweep_batch: 500,
    };
    plans::assert_indexed(
        &s.checker,
        "sweeper claim",
        &sweeper::claim_statement(&args),
        &[],
    )
    .await;
}

/// The check itself: a partial index a bound filter value cannot prove is skipped.
#[tokio::test]
async fn a_bound_filter_value_loses_the_partial_index() {
    let s = seeded().await;
    let bound = Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT sum(amount) FROM payments WHERE subscription_id = $1 AND status = $2::payment_status",
        [s.ids.subscription.into(), "paid".into()],
    );
    let plan = plans::generic_plan(&s.checker, &bound).await;
    assert_eq!(
        plans::seq_scans(&s.checker, &plan).await.len(),
        1,
        "expected a seq scan of payments:\n{}",
        plan.join("\n")
    );
}
