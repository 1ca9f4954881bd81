use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallmark::config::Settings;
use hallmark::store::api_keys::{self, Role};
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
    /// Manage API keys: create (prints the key once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the HTTP service (applies migrations first unless database.migrate_on_start is false).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Prepare a first start: data directory, database, migrations. Safe to run again.
    Init,
    /// Train a GAN on Fashion-MNIST or a folder of images into a model directory.
    Train(hallmark::cli::gan::TrainArgs),
    /// Generate signed, registered images with a model and write them as files.
    Generate(hallmark::cli::generate::GenerateArgs),
    /// Measure a model: `--quality` gives the Fréchet distance and mode coverage.
    Evaluate(hallmark::cli::gan::EvaluateArgs),
    /// Train the small Fashion-MNIST classifier that `evaluate --quality` uses.
    TrainClassifier(hallmark::cli::gan::TrainClassifierArgs),
    /// Fine-tune and calibrate the model's synthetic-image detector (detector.safetensors + card).
    TrainDetector(hallmark::cli::gan::TrainDetectorArgs),
    /// Check image files as moderators do: Content Credentials, registry match (when the
    /// database is reachable), detector, verdict.
    Verify(hallmark::cli::verify::VerifyArgs),
    /// Score image files with the served model's calibrated synthetic-image detector.
    Detect(hallmark::cli::verify::DetectArgs),
    /// Check registry records' signatures; reports OK or TAMPERED per record.
    VerifyRecord(hallmark::cli::provenance::VerifyRecordArgs),
    /// Issue a new signing key and certificate; older images and records still verify.
    RotateKey,
    /// Remove stored image bytes that no record references (left by a crash between writing an
    /// image and committing its record), once older than the grace period. Also runs when
    /// `hallmark serve` starts; safe with several replicas running.
    Gc {
        /// Minutes an unreferenced blob is left alone (its record may be about to commit).
        #[arg(long, default_value_t = 60)]
        grace_minutes: u64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once and only its hash is stored.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id or by its shown prefix (e.g. hm_1a2b3c4d).
    Revoke { key: String },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
        Command::Train(args) => hallmark::cli::gan::train(&settings, args),
        Command::Generate(args) => hallmark::cli::generate::generate(&settings, args).await,
        Command::Evaluate(args) => hallmark::cli::gan::evaluate(&settings, args),
        Command::TrainClassifier(args) => hallmark::cli::gan::train_classifier(&settings, args),
        Command::TrainDetector(args) => hallmark::cli::gan::train_detector(&settings, args),
        Command::Verify(args) => hallmark::cli::verify::verify(&settings, &args).await,
        Command::Detect(args) => hallmark::cli::verify::detect(&settings, &args).await,
        Command::VerifyRecord(args) => {
            hallmark::cli::provenance::verify_records(&settings, &args).await
        }
        Command::RotateKey => hallmark::cli::provenance::rotate_key(&settings).await,
        Command::Keys(command) => keys(&settings, command).await,
        Command::Gc { grace_minutes } => gc(&settings, grace_minutes).await,
    }
}

async fn gc(settings: &Settings, grace_minutes: u64) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    let blobs = store::blobs::Blobs::from_settings(&settings.storage)?;
    let grace = std::time::Duration::from_secs(grace_minutes.saturating_mul(60));
    let report = store::blobs::collect_garbage(&pool, &blobs, grace).await?;
    println!(
        "{} blobs: {} referenced, {} unreferenced but younger than {grace_minutes} min, {} removed",
        report.blobs, report.referenced, report.young, report.removed
    );
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    if settings.database.migrate_on_start {
        migrate(&settings).await?;
    }
    // Records name the key that signed them, so the current key must be registered first.
    let identity = hallmark::provenance::SigningIdentity::load(&settings)?;
    let pool = store::lazy_pool(&settings.database)?;
    hallmark::store::signing_keys::register(&pool, &identity).await?;
    let app = Application::build_with_pool(settings.clone(), pool.clone())?;
    // Orphan blobs from an earlier crash, in the background (replicas may do the same at once).
    let blobs = store::blobs::Blobs::from_settings(&settings.storage)?;
    tokio::spawn(async move {
        let grace = std::time::Duration::from_secs(3600);
        match store::blobs::collect_garbage(&pool, &blobs, grace).await {
            Ok(report) => tracing::info!(?report, "blob garbage collection"),
            Err(error) => tracing::warn!(error = %error, "blob garbage collection failed"),
        }
    });
    tracing::info!(
        address = %settings.server.host,
        port = app.port(),
        "hallmark listening"
    );
    app.run_until_stopped().await?;
    tracing::info!("hallmark stopped");
    Ok(())
}

async fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    match command {
        KeysCommand::Create { role, name } => {
            let name = name.trim();
            anyhow::ensure!(
                (1..=200).contains(&name.len()),
                "--name must be 1 to 200 characters"
            );
            let key = api_keys::create(&pool, name, role).await?;
            eprintln!(
                "created {} key {:?} (id {}); it is shown only now:",
                key.info.role.0, key.info.name, key.info.id
            );
            println!("{}", key.secret.expose_secret());
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<11}  {:<9}  {:<25}  {:<8}  name",
                "id", "prefix", "role", "created", "state"
            );
            for key in api_keys::list(&pool).await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<36}  {:<11}  {:<9}  {:<25}  {:<8}  {}",
                    key.id,
                    key.prefix,
                    key.role.0,
                    key.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    state,
                    key.name
                );
            }
        }
        KeysCommand::Revoke { key } => {
            anyhow::ensure!(
                api_keys::revoke(&pool, key.trim()).await?,
                "no active key {key:?} (give its id, or a prefix that names exactly one key)"
            );
            println!("revoked {key}");
        }
    }
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
    let identity = hallmark::cli::provenance::init_keys(settings)?;
    let url = settings.database.url.expose_secret();
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("database created");
    }
    migrate(settings).await?;
    let pool = store::lazy_pool(&settings.database)?;
    hallmark::cli::provenance::register_key(&pool, &identity).await?;
    println!(
        "hallmark is initialised: data in {}",
        settings.storage.data_dir.display()
    );
    Ok(())
}
