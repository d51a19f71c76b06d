//! `investctl migrate` over TLS: every connection it opens, the one to the server's
//! `postgres` database (to create the invest database) included, keeps `sslmode=verify-full`
//! and `sslrootcert` from DATABASE_URL.

use std::process::{Command, Output};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use testkit::{pg_server::PgServer, tls_certs::TestCa};

fn verify_full(ca: &TestCa) -> String {
    format!("sslmode=verify-full&sslrootcert={}", ca.ca_file().display())
}

fn migrate(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_investctl"))
        .args(["migrate", &format!("--database-url={url}")])
        .output()
        .expect("running investctl")
}

async fn database_exists(admin: &DatabaseConnection, name: &str) -> bool {
    admin
        .query_one_raw(Statement::from_sql_and_values(
            admin.get_database_backend(),
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .expect("pg_database")
        .is_some()
}

#[tokio::test]
async fn migrate_creates_and_migrates_over_verify_full() {
    let ca = TestCa::new("pg test CA");
    let server = PgServer::tls(&ca, &["localhost"]).await;

    let migrated = migrate(&server.url("localhost", "invest", &verify_full(&ca)));
    assert!(
        migrated.status.success(),
        "investctl migrate: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let db = Database::connect(server.url("localhost", "invest", &verify_full(&ca)))
        .await
        .expect("verify-full");
    service_kit::db::ensure_migrated::<migration::Migrator>(&db)
        .await
        .expect("every migration applied");
}

#[tokio::test]
async fn migrate_verifies_the_server_before_creating_the_database() {
    let ca = TestCa::new("pg test CA");
    let other = TestCa::new("another CA");
    let server = PgServer::tls(&ca, &["localhost"]).await;

    let refused = migrate(&server.url("localhost", "invest", &verify_full(&other)));
    assert!(!refused.status.success(), "migrated trusting another CA");
    // Had the `postgres` connection dropped the TLS settings, it would have connected
    // unverified and created the database before the verified connection failed.
    let admin = Database::connect(server.url("localhost", "postgres", &verify_full(&ca)))
        .await
        .expect("verify-full with the server's CA");
    assert!(
        !database_exists(&admin, "invest").await,
        "the database was created over an unverified connection"
    );
}
