//! Running the service and preparing its home: `serve`, `migrate`, `init`, `gc`.

use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;

use crate::config::Settings;
use crate::{store, Application};

/// `hallmark serve`.
///
/// # Errors
/// As the command reports them.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    if settings.database.migrate_on_start {
        migrate(&settings).await?;
    }
    // Records name the key that signed them, so the current key must be registered first.
    let identity = crate::provenance::SigningIdentity::load(&settings)?;
    crate::cli::provenance::warn_of_plaintext_keys(&settings)?;
    let pool = store::lazy_pool(&settings.database)?;
    crate::store::signing_keys::register(&pool, &identity).await?;
    // Blobs a crash left only in the journal are rewritten before anything is served.
    let blobs = store::blobs::Blobs::from_settings(&settings.storage)?;
    store::blob_journal::recover(&pool, &blobs).await?;
    let app = Application::build_with_pool(settings.clone(), pool)?;
    app.collect_garbage_in_background();
    tracing::info!(
        address = %settings.server.host,
        port = app.port(),
        "hallmark listening"
    );
    match app.metrics_port() {
        Some(port) => tracing::info!(
            address = %settings.metrics.listen,
            port,
            on_public_port = settings.metrics.on_public_port,
            "metrics listening"
        ),
        None => tracing::info!(
            on_public_port = settings.metrics.on_public_port,
            "no metrics listener (metrics.listen is empty)"
        ),
    }
    app.run_until_stopped().await?;
    tracing::info!("hallmark stopped");
    Ok(())
}

/// `hallmark migrate`.
///
/// # Errors
/// As the command reports them.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    store::migrate(&pool)
        .await
        .map_err(|error| anyhow::anyhow!("migrations failed: {error}"))?;
    tracing::info!("migrations applied");
    Ok(())
}

/// `hallmark init`'s options.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Rewrite the keys directory's plaintext private keys encrypted under the key passphrase
    /// (`provenance.key_passphrase_file` or HALLMARK_KEY_PASSPHRASE), which must be set. New keys
    /// are encrypted whenever a passphrase is set.
    #[arg(long)]
    pub encrypt_key: bool,
}

/// `hallmark init`.
///
/// # Errors
/// As the command reports them.
pub async fn init(settings: &Settings, encrypt_keys: bool) -> anyhow::Result<()> {
    let mut dirs = vec![
        settings.storage.data_dir.clone(),
        settings.storage.keys_dir(),
    ];
    // With an object store the blobs live there: no local directory that would stay empty.
    if settings.storage.blob_backend == crate::config::BlobBackend::Local {
        dirs.push(settings.storage.blobs_dir());
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    }
    let identity = crate::cli::provenance::init_keys(settings, encrypt_keys)?;
    let log_key = crate::provenance::pki::load_log_key(settings)?;
    let log_signer = crate::tlog::LogSigner::new(&settings.transparency_log.origin, log_key)?;
    println!(
        "transparency log: verifier key {} (publish it; `hallmark log key` prints it again)",
        log_signer.verifier_key()
    );
    let url = settings.database.url.expose_secret();
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("database created");
    }
    migrate(settings).await?;
    let pool = store::lazy_pool(&settings.database)?;
    crate::cli::provenance::register_key(&pool, &identity).await?;
    println!(
        "hallmark is initialised: data in {}",
        settings.storage.data_dir.display()
    );
    Ok(())
}

/// `hallmark gc`.
///
/// # Errors
/// As the command reports them.
pub async fn gc(settings: &Settings, grace_minutes: u64) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    let blobs = store::blobs::Blobs::from_settings(&settings.storage)?;
    let grace = std::time::Duration::from_secs(grace_minutes.saturating_mul(60));
    let report = store::blobs::collect_garbage(&pool, &blobs, grace).await?;
    println!(
        "{} blobs: {} referenced, {} unreferenced but younger than {grace_minutes} min, {} removed; \
         {} unfinished writes removed",
        report.blobs, report.referenced, report.young, report.removed, report.staging_removed
    );
    Ok(())
}
