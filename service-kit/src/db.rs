//! PostgreSQL connection pool and the start-up schema check.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::DbArgs;

/// Why the database is not ready for a service.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// Cannot connect or query.
    #[error("database error")]
    Db(#[from] DbErr),
    /// The schema is behind this build: the operator runs `investctl migrate` first.
    #[error("{0} migration(s) not applied ({1}); run `investctl migrate`")]
    Pending(usize, String),
}

/// Opens the pool described by `args`.
pub async fn connect(args: &DbArgs) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(args.database_url.expose());
    options
        .max_connections(args.database_max_connections)
        .min_connections(1)
        .acquire_timeout(args.database_acquire_timeout)
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Fails unless every migration of this build is applied. Services never migrate by
/// themselves: replicas starting together must not race on DDL.
pub async fn ensure_migrated(db: &DatabaseConnection) -> Result<(), DbSetupError> {
    let pending = Migrator::get_pending_migrations(db).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let names: Vec<_> = pending.iter().map(|m| m.name().to_owned()).collect();
    Err(DbSetupError::Pending(names.len(), names.join(", ")))
}
