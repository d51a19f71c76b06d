//! A database that answers read-only (SQLSTATE 25006: a primary demoted by a failover, or an
//! endpoint pointing at a standby) is unavailable, not broken: creates answer UNAVAILABLE,
//! change nothing, and succeed again once the endpoint is writable.

use entity::prelude::*;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use tonic::Code;

use crate::support::*;

/// Sets the test database read-only (or back) for new sessions and ends every other session
/// of it, so the service's pool reconnects under the new setting, as after a failover.
async fn read_only(app: &TestApp, on: bool) {
    let setting = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    app.db
        .execute_unprepared(&format!(
            // Read-write explicitly: this pooled session may be a read-only one already.
            "BEGIN TRANSACTION READ WRITE; ALTER DATABASE \"{}\" {setting}; COMMIT; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            app.test_db.name
        ))
        .await
        .expect("database setting");
}

#[tokio::test]
async fn a_read_only_database_answers_unavailable_changes_nothing_and_recovers() {
    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "1.00").await;
    let mut client = app.client(investor.user_id).await;
    read_only(&app, true).await;

    // What PostgreSQL answers a write now, and how it is classified.
    let fresh = app.test_db.connect().await;
    let refused = fresh
        .execute_unprepared("CREATE TABLE read_only_probe (x int)")
        .await
        .expect_err("a read-only session refuses writes");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    assert!(service_kit::status::is_unavailable(&refused), "{refused:?}");

    // Three tries: after the first, the pool's connections are all new (read-only) ones.
    for attempt in 1..=3 {
        let status = client
            .create_investment(create_request(&investor, 2, &format!("ro-{attempt}")))
            .await
            .expect_err("refused while read-only");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "attempt {attempt}: {status:?}"
        );
    }
    assert_eq!(Investment::find().count(&fresh).await.expect("count"), 0);
    let subscription = Subscription::find_by_id(investor.subscription.id)
        .one(&fresh)
        .await
        .expect("query")
        .expect("subscription");
    assert_eq!(
        subscription.committed_amount,
        investor.subscription.committed_amount
    );

    read_only(&app, false).await;
    client
        .create_investment(create_request(&investor, 2, "ro-1"))
        .await
        .expect("writable again: the retried create is accepted");
}
