use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallmark::cli::service;
use hallmark::config::Settings;
use hallmark::telemetry;

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
    Keys(hallmark::cli::keys::KeysCommand),
    /// Run the HTTP service (applies migrations first unless database.migrate_on_start is false).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Prepare a first start: data directory, keys, database, migrations. Safe to run again.
    Init(service::InitArgs),
    /// Train a GAN on Fashion-MNIST or a folder of images into a model directory.
    Train(hallmark::cli::gan::TrainArgs),
    /// Generate signed, registered images with a model and write them as files.
    Generate(hallmark::cli::generate::GenerateArgs),
    /// Enhance a picture (restore, inpaint, upscale) with the model; the result is signed as an
    /// edit of it and registered.
    Enhance(hallmark::cli::enhance::EnhanceArgs),
    /// Measure a model: `--quality` gives the Fréchet distance and mode coverage.
    Evaluate(hallmark::cli::evaluate::EvaluateArgs),
    /// Train the small Fashion-MNIST classifier that `evaluate --quality` uses.
    TrainClassifier(hallmark::cli::gan::TrainClassifierArgs),
    /// Train and list the generator zoo the detector learns other generators from.
    #[command(subcommand)]
    Zoo(hallmark::cli::zoo::ZooCommand),
    /// Fine-tune and calibrate the model's synthetic-image detector (detector.safetensors + card).
    TrainDetector(hallmark::cli::detect::TrainDetectorArgs),
    /// Check image files as moderators do: Content Credentials, registry match (when the
    /// database is reachable), detector, verdict.
    Verify(hallmark::cli::verify::VerifyArgs),
    /// Score image files with the served model's calibrated synthetic-image detector.
    Detect(hallmark::cli::verify::DetectArgs),
    /// Check registry records' signatures; reports OK or TAMPERED per record.
    VerifyRecord(hallmark::cli::provenance::VerifyRecordArgs),
    /// The public transparency log: verify it end to end, print a record's offline proof or the
    /// log's verifier key.
    #[command(subcommand)]
    Log(hallmark::cli::log::LogCommand),
    /// Issue a new signing key and certificate; older images and records still verify.
    RotateKey,
    /// Put the manifest store of records made before the manifest repository into it (extracted
    /// from each stored signed image), and the ISCC code of records made before `record_iscc`
    /// (computed from it). Safe to run again.
    Backfill,
    /// Recover an image's Content Credentials through a C2PA Soft Binding Resolution API (this
    /// service's by default): find the manifest, fetch its store, validate it, print it.
    Resolve(hallmark::cli::manifests::ResolveArgs),
    /// Remove stored image bytes that no record references (left by a crash between writing an
    /// image and committing its record), once older than the grace period. Also runs when
    /// `hallmark serve` starts; safe with several replicas running.
    Gc {
        /// Minutes an unreferenced blob is left alone (its record may be about to commit).
        #[arg(long, default_value_t = 60)]
        grace_minutes: u64,
    },
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
        Command::Serve => service::serve(settings).await,
        Command::Migrate => service::migrate(&settings).await,
        Command::Init(args) => service::init(&settings, args.encrypt_key).await,
        Command::Train(args) => hallmark::cli::gan::train(&settings, args),
        Command::Generate(args) => hallmark::cli::generate::generate(&settings, args).await,
        Command::Enhance(args) => hallmark::cli::enhance::enhance(&settings, args).await,
        Command::Evaluate(args) => hallmark::cli::evaluate::evaluate(&settings, args),
        Command::TrainClassifier(args) => hallmark::cli::gan::train_classifier(&settings, args),
        Command::Zoo(command) => hallmark::cli::zoo::run(&settings, command),
        Command::TrainDetector(args) => hallmark::cli::detect::train_detector(&settings, args),
        Command::Verify(args) => hallmark::cli::verify::verify(&settings, &args).await,
        Command::Detect(args) => hallmark::cli::verify::detect(&settings, &args).await,
        Command::VerifyRecord(args) => {
            hallmark::cli::provenance::verify_records(&settings, &args).await
        }
        Command::Log(command) => hallmark::cli::log::run(&settings, command).await,
        Command::RotateKey => hallmark::cli::provenance::rotate_key(&settings).await,
        Command::Keys(command) => hallmark::cli::keys::run(&settings, command).await,
        Command::Backfill => hallmark::cli::manifests::backfill(&settings).await,
        Command::Resolve(args) => hallmark::cli::manifests::resolve(&settings, &args).await,
        Command::Gc { grace_minutes } => service::gc(&settings, grace_minutes).await,
    }
}
