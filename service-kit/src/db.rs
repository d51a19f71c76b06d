//! PostgreSQL connection pool and the start-up schema check.

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use sea_orm_migration::MigratorTrait;

use crate::config::{DbArgs, SecretUrl};

/// Why the database is not ready for a service.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// DATABASE_URL does not parse as a PostgreSQL URL (shown redacted: sea-orm's own error
    /// for this case would quote it, password included).
    #[error(
        "DATABASE_URL {0} is not a PostgreSQL URL (postgres://user:password@host:port/database)"
    )]
    BadUrl(String),
    /// Cannot connect or query.
    #[error("database error")]
    Db(#[from] DbErr),
    /// The schema is behind this build: the operator runs `investctl migrate` first.
    #[error("{0} migration(s) not applied ({1}); run `investctl migrate`")]
    Pending(usize, String),
}

/// Fails, with the URL redacted, unless `url` is one sea-orm will take as PostgreSQL: its own
/// error for a URL it cannot parse or place prints the URL as it is.
pub fn check_url(url: &SecretUrl) -> Result<(), DbSetupError> {
    let postgres = url::Url::parse(url.expose())
        .is_ok_and(|u| matches!(u.scheme(), "postgres" | "postgresql"));
    if postgres {
        Ok(())
    } else {
        Err(DbSetupError::BadUrl(url.redacted()))
    }
}

/// Opens the pool described by `args`.
pub async fn connect(args: &DbArgs) -> Result<DatabaseConnection, DbSetupError> {
    check_url(&args.database_url)?;
    let mut options = ConnectOptions::new(args.database_url.expose());
    options
        .max_connections(args.database_max_connections)
        .min_connections(1)
        .acquire_timeout(args.database_acquire_timeout)
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// Fails unless every migration of `M` (the caller's schema, as this build knows it) is
/// applied. Services never migrate by themselves: replicas starting together must not race
/// on DDL.
pub async fn ensure_migrated<M: MigratorTrait>(
    db: &DatabaseConnection,
) -> Result<(), DbSetupError> {
    let pending = M::get_pending_migrations(db).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let names: Vec<_> = pending.iter().map(|m| m.name().to_owned()).collect();
    Err(DbSetupError::Pending(names.len(), names.join(", ")))
}
