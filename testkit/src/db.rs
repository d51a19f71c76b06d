//! A fresh PostgreSQL database per test, cloned from a template migrated once per schema
//! version, and dropped when the test ends (pass or fail).

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

/// Advisory lock key serializing template creation and cloning across test processes.
const LOCK_KEY: i64 = 0x1a7e_57db;

/// The superuser URL tests create databases with.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `admin_url` with its database name replaced.
fn url_for(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |j| j + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// The template's name changes with the migrations (their names and SQL), so a changed
/// schema gets a new template.
fn template_name() -> String {
    let mut hasher = DefaultHasher::new();
    for m in Migrator::migrations() {
        m.name().hash(&mut hasher);
    }
    migration::fingerprint().hash(&mut hasher);
    format!("invest_template_{:016x}", hasher.finish())
}

async fn admin_connection(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    // One connection: the advisory lock belongs to a session.
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| "connecting to DATABASE_URL (run the tests with scripts/test)")
}

/// A database that exists for one test.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// URL to connect to it.
    pub url: String,
    admin_url: String,
}

impl TestDb {
    /// A database outage, for real: refuses new connections to the database (`reachable:
    /// false`) and cuts every existing session but `spare`'s, waiting until they have ended; or
    /// allows connections again. Sparing a session lets a test keep holding a lock so that the
    /// transaction waiting on it is cut first and cannot slip through when the lock goes.
    pub async fn set_reachable(&self, reachable: bool, spare: Option<i32>) {
        let admin = Database::connect(&self.admin_url)
            .await
            .expect("admin connection");
        let name = &self.name;
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS {reachable}"
            ))
            .await
            .expect("alter database");
        if reachable {
            return;
        }
        let spare = spare.unwrap_or(0);
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> {spare}"
            ))
            .await
            .expect("cut connections");
        // Termination is a signal: wait until the sessions are really gone.
        let remaining = format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{name}' AND pid <> {spare}"
        );
        self.until_count(&admin, remaining, "the cut sessions to end", |n| n == 0)
            .await;
    }

    /// Waits until a session of this database waits on a lock (a transaction the test blocked
    /// with a lock of its own is now inside, waiting).
    pub async fn lock_waiter(&self) {
        let admin = Database::connect(&self.admin_url)
            .await
            .expect("admin connection");
        let sql = format!(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = '{}' AND wait_event_type = 'Lock'",
            self.name
        );
        self.until_count(&admin, sql, "a session to wait on a lock", |n| n > 0)
            .await;
    }

    /// Waits until `sql` (a `count(*) AS n`) satisfies `done`.
    async fn until_count(
        &self,
        admin: &DatabaseConnection,
        sql: String,
        what: &str,
        done: impl Fn(i64) -> bool,
    ) {
        crate::eventually(std::time::Duration::from_secs(20), what, || {
            let (admin, sql) = (admin.clone(), sql.clone());
            let done = &done;
            async move {
                let row = admin
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        sql,
                    ))
                    .await
                    .ok()??;
                let n: i64 = row.try_get("", "n").ok()?;
                done(n).then_some(())
            }
        })
        .await;
    }

    /// Creates a migrated, empty database on the server of `DATABASE_URL`.
    pub async fn create() -> anyhow::Result<TestDb> {
        TestDb::create_on(&admin_url()).await
    }

    /// Creates a migrated, empty database on the server of `admin_url` (a superuser URL; the
    /// template is made there the first time).
    pub async fn create_on(admin_url: &str) -> anyhow::Result<TestDb> {
        let admin = admin_connection(admin_url).await?;
        admin
            .execute_unprepared(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
            .await?;
        let result = Self::create_locked(&admin, admin_url).await;
        admin
            .execute_unprepared(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
            .await?;
        admin.close().await?;
        result
    }

    async fn create_locked(admin: &DatabaseConnection, admin_url: &str) -> anyhow::Result<TestDb> {
        let template = template_name();
        let exists = admin
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [template.clone().into()],
            ))
            .await?
            .is_some();
        if !exists {
            // Built under another name and renamed when complete, so a crash mid-way never
            // leaves a half-migrated template behind.
            let building = format!("{template}_building");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {building}"))
                .await?;
            let db = Database::connect(url_for(admin_url, &building)).await?;
            Migrator::up(&db, None)
                .await
                .context("migrating the template")?;
            db.close().await?;
            admin
                .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                .await?;
        }
        let name = format!("invest_test_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await?;
        Ok(TestDb {
            url: url_for(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// A connection pool to this database.
    pub async fn connect(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(&self.url);
        options.max_connections(20).sqlx_logging(false);
        Database::connect(options)
            .await
            .expect("connecting to the test database")
    }

    /// A pool whose every statement is counted: how the N+1 regression test sees what a
    /// handler really sent.
    pub async fn connect_counting(&self) -> (DatabaseConnection, StatementCounter) {
        let mut db = self.connect().await;
        let counter = StatementCounter::default();
        let count = counter.0.clone();
        db.set_metric_callback(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        });
        (db, counter)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let admin = Database::connect(&admin_url).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Counts statements sent on a connection.
#[derive(Clone, Debug, Default)]
pub struct StatementCounter(Arc<AtomicUsize>);

impl StatementCounter {
    /// Statements sent so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Statements sent while `f` ran.
    pub async fn during<T>(&self, f: impl Future<Output = T>) -> (T, usize) {
        let before = self.get();
        let value = f.await;
        (value, self.get() - before)
    }
}

#[cfg(test)]
mod tests {
    use super::url_for;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            url_for("postgres://postgres@127.0.0.1:55432/postgres", "x"),
            "postgres://postgres@127.0.0.1:55432/x"
        );
        assert_eq!(
            url_for("postgres://u:p@h:1/db?sslmode=disable", "x"),
            "postgres://u:p@h:1/x?sslmode=disable"
        );
        assert_eq!(url_for("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
