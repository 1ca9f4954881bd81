//! The `train`, `generate`, `evaluate` and `train-classifier` subcommands.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use tch::Device;

use super::card::{Architecture, ModelCard};
use super::classifier::{self, Classifier};
use super::data::Dataset;
use super::registry::load_model;
use super::train::{self, model_dir, TrainConfig};
use super::CARD_FILE;
use crate::config::Settings;
use crate::device::{DeviceChoice, DeviceName};

/// Where Debian's dataset-fashion-mnist package installs the IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Name of the model directory under the models directory (settings: model.dir).
    #[arg(long)]
    pub model: String,
    /// Write the model here instead of <models dir>/<model>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A directory with Fashion-MNIST IDX files, an IDX images file, or a folder of images.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    pub dataset: PathBuf,
    /// Image size (a power of two, 16 to 256).
    #[arg(long, default_value_t = 32)]
    pub size: u32,
    /// 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    pub channels: u32,
    #[arg(long, default_value_t = 64)]
    pub latent_dim: u32,
    /// Generator width: channels of its last hidden layer.
    #[arg(long, default_value_t = 32)]
    pub g_width: u32,
    /// Discriminator width: channels of its first layer.
    #[arg(long, default_value_t = 32)]
    pub d_width: u32,
    /// "non-saturating" or "hinge".
    #[arg(long, default_value = "non-saturating")]
    pub loss: String,
    /// Total training steps (a resumed run continues up to this count).
    #[arg(long, default_value_t = 5000)]
    pub steps: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the model in the directory (its card's architecture and seed are used).
    #[arg(long)]
    pub resume: bool,
    /// Torch device (auto, cpu, cuda, cuda:N); default: settings model.device.
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for torch; default: torch's choice.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Compute the Fréchet distance and label spread with the Fashion-MNIST classifier.
    #[arg(long)]
    pub quality: bool,
    /// Model name; default: settings model.name.
    #[arg(long)]
    pub model: Option<String>,
    /// Classifier model directory name under the models directory.
    #[arg(long, default_value = "fashion-classifier")]
    pub classifier: String,
    /// Images on each side.
    #[arg(long, default_value_t = 5000)]
    pub samples: usize,
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    pub dataset: PathBuf,
    /// Seed of the generated images.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Record the metrics in the model's card.
    #[arg(long)]
    pub write_card: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct TrainClassifierArgs {
    /// Directory name under the models directory.
    #[arg(long, default_value = "fashion-classifier")]
    pub name: String,
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    pub dataset: PathBuf,
    #[arg(long, default_value_t = 2)]
    pub epochs: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub device: Option<String>,
}

fn device(settings: &Settings, flag: Option<&str>) -> anyhow::Result<Device> {
    let choice: DeviceChoice = flag.unwrap_or(&settings.model.device).parse()?;
    Ok(choice.resolve()?)
}

/// `hallmark train`.
///
/// # Errors
/// Bad arguments, unreadable data, file errors, torch failures.
pub fn train(settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let device = device(settings, args.device.as_deref())?;
    let dir = match &args.out {
        Some(out) => out.clone(),
        None => model_dir(&settings.model.dir, &args.model)?,
    };
    let mut config = TrainConfig {
        name: args.model.clone(),
        architecture: Architecture {
            family: "dcgan".into(),
            image_size: args.size,
            channels: args.channels,
            latent_dim: args.latent_dim,
            g_width: args.g_width,
            d_width: args.d_width,
            loss: args.loss.clone(),
        },
        steps: args.steps,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        progress: !args.quiet,
    };
    if args.resume {
        let card = ModelCard::load(&dir.join(CARD_FILE))?;
        config.architecture = card.architecture;
        config.seed = card.training.seed;
        config.batch_size = card.training.batch_size as usize;
        config.learning_rate = card.training.learning_rate;
    }
    config
        .architecture
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let arch = &config.architecture;
    let dataset = Dataset::open(&args.dataset, arch.image_size, arch.channels)?;
    if dataset.skipped > 0 {
        eprintln!(
            "warning: skipped {} unreadable file(s) in {}",
            dataset.skipped,
            args.dataset.display()
        );
    }
    eprintln!(
        "training {} on {} images ({}) on {}",
        dir.display(),
        dataset.len(),
        dataset.description,
        DeviceName(device)
    );
    let stop = Arc::new(AtomicBool::new(false));
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let stop = Arc::clone(&stop);
        handle.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: writing a checkpoint");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let report = train::train(&dataset, &dir, &config, device, &stop)?;
    println!(
        "{} {} at step {} ({:.0} s this run, {:.0} images/s; D loss {:.3}, G loss {:.3})",
        if report.interrupted {
            "saved"
        } else {
            "trained"
        },
        dir.display(),
        report.steps,
        report.run_seconds,
        report.images_per_s,
        report.last_d_loss,
        report.last_g_loss
    );
    Ok(())
}

/// `hallmark evaluate --quality`.
///
/// # Errors
/// Unknown model or classifier, missing dataset, torch failures.
pub fn evaluate(settings: &Settings, args: EvaluateArgs) -> anyhow::Result<()> {
    if !args.quality {
        anyhow::bail!("nothing to evaluate: pass --quality");
    }
    let device = device(settings, args.device.as_deref())?;
    let name = args.model.as_deref().unwrap_or(&settings.model.name);
    let model = load_model(&settings.model.dir, name, device)?;
    let classifier_dir = classifier::classifier_dir(&settings.model.dir, &args.classifier);
    let classifier = Classifier::load(&classifier_dir, device)?;
    let report = classifier::evaluate_quality(
        &model,
        &classifier,
        &args.classifier,
        &args.dataset,
        args.samples,
        args.seed,
    )?;
    let m = &report.metrics;
    println!(
        "model {name}: {} generated vs {} real test images",
        m.samples, m.samples
    );
    println!("  FD (generated vs test)      {:>10.3}", m.fd);
    println!("  FD floor (train vs test)    {:>10.3}", m.fd_floor);
    println!(
        "  label entropy               {:>10.3} bits (uniform: {:.3})",
        m.label_entropy_bits,
        (report.classes.len() as f64).log2()
    );
    println!(
        "  classes covered (>= 2%)     {:>10} of {}",
        m.classes_covered,
        report.classes.len()
    );
    for (class, share) in report.classes.iter().zip(&m.label_distribution) {
        println!("    {class:<12} {:>6.1}%", share * 100.0);
    }
    if args.write_card {
        let path = model.dir.join(CARD_FILE);
        let mut card = ModelCard::load(&path)?;
        card.metrics = Some(report.metrics);
        card.save(&path)?;
        println!("metrics written to {}", path.display());
    }
    Ok(())
}

/// `hallmark train-classifier`.
///
/// # Errors
/// Missing dataset or labels, torch failures.
pub fn train_classifier(settings: &Settings, args: TrainClassifierArgs) -> anyhow::Result<()> {
    let device = device(settings, args.device.as_deref())?;
    let out = model_dir(&settings.model.dir, &args.name)?;
    let card = classifier::train_classifier(&args.dataset, &out, args.epochs, args.seed, device)?;
    println!(
        "classifier {} trained in {:.0} s: test accuracy {:.2}%",
        out.display(),
        card.training_time_s,
        card.test_accuracy * 100.0
    );
    Ok(())
}
