use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallmark::config::Settings;
use hallmark::device::{DeviceChoice, DeviceName};
use hallmark::{store, telemetry, Application};
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;

/// Hallmark: GAN images with signed Content Credentials, a tamper-evident registry, and AI-origin checks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, env = "HALLMARK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (applies migrations first unless database.migrate_on_start is false).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Prepare a first start: data directory, database, migrations. Safe to run again.
    Init,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: cannot load settings: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::Init => init(&settings).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let choice: DeviceChoice = settings.model.device.parse()?;
    let device = choice.resolve()?;
    tracing::info!(device = %DeviceName(device), cuda = tch::Cuda::is_available(), "torch device");
    if settings.database.migrate_on_start {
        migrate(&settings).await?;
    }
    let app = Application::build(settings.clone())?;
    tracing::info!(
        address = %settings.server.host,
        port = app.port(),
        "hallmark listening"
    );
    app.run_until_stopped().await?;
    tracing::info!("hallmark stopped");
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    store::migrate(&pool)
        .await
        .map_err(|error| anyhow::anyhow!("migrations failed: {error}"))?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn init(settings: &Settings) -> anyhow::Result<()> {
    for dir in [
        settings.storage.data_dir.clone(),
        settings.storage.keys_dir(),
        settings.storage.blobs_dir(),
    ] {
        std::fs::create_dir_all(&dir)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    }
    let url = settings.database.url.expose_secret();
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("database created");
    }
    migrate(settings).await?;
    println!(
        "hallmark is initialised: data in {}",
        settings.storage.data_dir.display()
    );
    Ok(())
}
