//! PostgreSQL over TLS: `service_kit::db::connect` with `sslmode` and `sslrootcert` in
//! DATABASE_URL against a TLS-only cluster whose certificate names `localhost` only.

use clap::Parser;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use service_kit::config::DbArgs;
use service_kit::db::DbSetupError;
use testkit::{pg_server::PgServer, tls_certs::TestCa};

#[derive(Parser)]
struct Db {
    #[command(flatten)]
    db: DbArgs,
}

/// Connects the way the services do.
async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let args = Db::try_parse_from(["test", &format!("--database-url={url}")])
        .expect("database settings")
        .db;
    match service_kit::db::connect(&args).await {
        Ok(db) => Ok(db),
        Err(DbSetupError::Db(e)) => Err(e),
        Err(other) => panic!("not a database error: {other}"),
    }
}

fn verify_full(ca: &TestCa) -> String {
    format!("sslmode=verify-full&sslrootcert={}", ca.ca_file().display())
}

/// Whether this session is encrypted, as the server sees it.
async fn session_uses_tls(db: &DatabaseConnection) -> bool {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .expect("pg_stat_ssl")
        .expect("a row for this session");
    row.try_get("", "ssl").expect("ssl column")
}

fn refused(result: Result<DatabaseConnection, DbErr>, what: &str, server: &PgServer) -> String {
    match result {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{what}: connected; server log:\n{}", server.log()),
    }
}

#[tokio::test]
async fn postgres_verify_full_with_the_ca_migrates_and_queries() {
    let ca = TestCa::new("pg test CA");
    let server = PgServer::tls(&ca, &["localhost"]).await;
    let admin = connect(&server.url("localhost", "postgres", &verify_full(&ca)))
        .await
        .expect("verify-full with the server's CA");
    admin
        .execute_unprepared("CREATE DATABASE invest")
        .await
        .expect("create database");

    let db = connect(&server.url("localhost", "invest", &verify_full(&ca)))
        .await
        .expect("verify-full to the invest database");
    Migrator::up(&db, None).await.expect("migrate over TLS");
    service_kit::db::ensure_migrated::<Migrator>(&db)
        .await
        .expect("migrated");
    assert!(session_uses_tls(&db).await, "the session is encrypted");
}

#[tokio::test]
async fn postgres_refuses_plaintext_connections() {
    let ca = TestCa::new("pg test CA");
    let server = PgServer::tls(&ca, &["localhost"]).await;

    let error = refused(
        connect(&server.url("127.0.0.1", "postgres", "sslmode=disable")).await,
        "sslmode=disable",
        &server,
    );
    assert!(
        error.contains("pg_hba.conf rejects") && error.contains("no encryption"),
        "refused by the server's hostnossl rule: {error}"
    );
    // Control: the same address with TLS (no verification) is accepted.
    let db = connect(&server.url("127.0.0.1", "postgres", "sslmode=require"))
        .await
        .expect("sslmode=require");
    assert!(session_uses_tls(&db).await);
}

#[tokio::test]
async fn postgres_verify_full_refuses_a_server_certificate_of_another_ca() {
    let ca = TestCa::new("pg test CA");
    let other = TestCa::new("another CA");
    let server = PgServer::tls(&ca, &["localhost"]).await;

    let error = refused(
        connect(&server.url("localhost", "postgres", &verify_full(&other))).await,
        "verify-full with another CA",
        &server,
    );
    assert!(error.contains("UnknownIssuer"), "{error}");
    // Control: the server's own CA is accepted on the same name.
    connect(&server.url("localhost", "postgres", &verify_full(&ca)))
        .await
        .expect("verify-full with the server's CA");
}

#[tokio::test]
async fn postgres_verify_full_refuses_a_host_name_the_certificate_does_not_name() {
    let ca = TestCa::new("pg test CA");
    // The certificate names `localhost`; dialling 127.0.0.1 is another name.
    let server = PgServer::tls(&ca, &["localhost"]).await;

    let error = refused(
        connect(&server.url("127.0.0.1", "postgres", &verify_full(&ca))).await,
        "verify-full to 127.0.0.1",
        &server,
    );
    assert!(error.contains("not valid for name"), "{error}");
    // Control: verify-ca (the chain, not the name) accepts the same address and CA.
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={}", ca.ca_file().display());
    connect(&server.url("127.0.0.1", "postgres", &verify_ca))
        .await
        .expect("verify-ca to 127.0.0.1");
}
