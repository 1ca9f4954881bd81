//! PostgreSQL (the pool, migrations, API keys, records, the transparency log) and the blob store for image bytes.

pub mod api_keys;
pub mod blob_journal;
pub mod blobs;
pub mod checks;
pub mod log;
pub mod record_hashes;
pub mod record_iscc;
pub mod records;
pub mod signing_keys;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::config::DatabaseSettings;

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A pool that connects on first use, so the service starts (and `/readyz` reports) while the
/// database is still down.
///
/// # Errors
/// When the URL cannot be parsed.
pub fn lazy_pool(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        .connect_lazy_with(settings.connect_options()?))
}

/// Applies every pending migration; applying twice is a no-op.
///
/// # Errors
/// When the database is unreachable or a migration fails.
#[tracing::instrument(skip_all)]
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// A cheap round trip, for readiness.
///
/// # Errors
/// When the database is unreachable.
#[tracing::instrument(skip_all)]
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
