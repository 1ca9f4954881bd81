//! The `train` and `train-classifier` subcommands, and the device flag they share with the other
//! model commands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use tch::Device;

use crate::config::Settings;
use crate::device::{DeviceChoice, DeviceName};
use crate::gan::card::{ArchFamily, Loss};
use crate::gan::card::{Architecture, ModelCard};
use crate::gan::data::Dataset;
use crate::gan::progressive::Schedule;
use crate::gan::quality;
use crate::gan::train::{self, model_dir, TrainConfig};
use crate::gan::CARD_FILE;

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
    pub loss: Loss,
    /// Total training steps (a resumed run continues up to this count).
    #[arg(long, default_value_t = 5000)]
    pub steps: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam's learning rate (default: 2e-4 DCGAN, 1e-3 progressive).
    #[arg(long)]
    pub lr: Option<f64>,
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
    /// Grow the networks progressively (ProGAN): from 4x4 up to --size, each resolution
    /// fading in over --fade-steps and training for --stage-steps; equalised learning rate,
    /// pixel norm, minibatch standard deviation, non-saturating loss with R1. Default
    /// learning rate 1e-3 (Adam beta1 0, beta2 0.99).
    #[arg(long)]
    pub progressive: bool,
    /// Steps per resolution (progressive); default: --steps / (2 x resolutions).
    #[arg(long)]
    pub stage_steps: Option<u64>,
    /// Steps per fade-in (progressive); default: as --stage-steps.
    #[arg(long)]
    pub fade_steps: Option<u64>,
    /// Serve an exponential moving average of the generator's weights with this decay per
    /// step (0: serve the trained weights). Default 0.999 for a new model; a resumed one
    /// keeps its card's (an older card without one starts averaging only if this is given).
    #[arg(long)]
    pub ema: Option<f64>,
    /// Weight of the R1 penalty on the discriminator (default: 0.1 progressive, 0 DCGAN,
    /// whose discriminator is spectrally normalised).
    #[arg(long)]
    pub r1_gamma: Option<f64>,
    /// Train in full precision on CUDA (default: autocast to half precision with a dynamic
    /// loss scale there; the CPU always trains in full precision).
    #[arg(long)]
    pub full_precision: bool,
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

pub(crate) fn device(settings: &Settings, flag: Option<&str>) -> anyhow::Result<Device> {
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
    let config = train_config(&args, &dir)?;
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
    let report = train::train(&dataset, &dir, &config, device, &interrupt_flag())?;
    print_training_report(&dir, &report, &config);
    Ok(())
}

/// The training configuration the arguments ask for; with `--resume`, the card in `dir` decides
/// the architecture, the schedule and the hyper-parameters.
fn train_config(args: &TrainArgs, dir: &Path) -> anyhow::Result<TrainConfig> {
    let architecture = Architecture {
        family: if args.progressive {
            ArchFamily::Progressive
        } else {
            ArchFamily::Dcgan
        },
        image_size: args.size,
        channels: args.channels,
        latent_dim: args.latent_dim,
        g_width: args.g_width,
        d_width: args.d_width,
        loss: args.loss,
    };
    architecture
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !args.progressive && (args.stage_steps.is_some() || args.fade_steps.is_some()) {
        anyhow::bail!("--stage-steps and --fade-steps are for --progressive training");
    }
    let defaults = TrainConfig::new(&args.model, architecture, args.steps);
    let mut config = TrainConfig {
        batch_size: args.batch_size,
        learning_rate: args.lr.unwrap_or(defaults.learning_rate),
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        progress: !args.quiet,
        ema_decay: Some(args.ema.unwrap_or(0.999)).filter(|d| *d > 0.0),
        r1_gamma: args.r1_gamma.unwrap_or(defaults.r1_gamma),
        schedule: defaults.schedule.map(|s| Schedule {
            stage_steps: args.stage_steps.unwrap_or(s.stage_steps),
            fade_steps: args.fade_steps.or(args.stage_steps).unwrap_or(s.fade_steps),
            ..s
        }),
        mixed_precision: !args.full_precision,
        ..defaults
    };
    if args.resume {
        let card = ModelCard::load(&dir.join(CARD_FILE))?;
        let t = &card.training;
        config.schedule = match (card.architecture.family, t.stage_steps, t.fade_steps) {
            (ArchFamily::Progressive, Some(stage_steps), Some(fade_steps)) => Some(Schedule {
                levels: card.architecture.stages() + 1,
                stage_steps,
                fade_steps,
            }),
            (ArchFamily::Progressive, ..) => {
                anyhow::bail!("{}: a progressive card without its schedule", dir.display())
            }
            (ArchFamily::Dcgan, ..) => None,
        };
        config.seed = t.seed;
        config.batch_size = t.batch_size as usize;
        config.learning_rate = t.learning_rate;
        config.ema_decay = t.ema_decay.or(args.ema).filter(|d| *d > 0.0);
        config.r1_gamma = t.r1_gamma.unwrap_or(0.0);
        config.architecture = card.architecture;
    }
    config
        .architecture
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

/// A flag that Ctrl-C raises (when a tokio runtime is running), so that training writes a
/// checkpoint and stops.
fn interrupt_flag() -> Arc<AtomicBool> {
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
    stop
}

fn print_training_report(dir: &Path, report: &train::TrainReport, config: &TrainConfig) {
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
    if let Some(g) = report.growth {
        println!(
            "grown to {}{}",
            Schedule::phase_name(g),
            if g.alpha < 1.0 {
                format!(
                    " (alpha {:.3}; served upsampled to {}x{})",
                    g.alpha, config.architecture.image_size, config.architecture.image_size
                )
            } else {
                String::new()
            }
        );
    }
}

/// `hallmark train-classifier`.
///
/// # Errors
/// Missing dataset or labels, torch failures.
pub fn train_classifier(settings: &Settings, args: TrainClassifierArgs) -> anyhow::Result<()> {
    let device = device(settings, args.device.as_deref())?;
    let out = model_dir(&settings.model.dir, &args.name)?;
    let card = quality::train_classifier(&args.dataset, &out, args.epochs, args.seed, device)?;
    println!(
        "classifier {} trained in {:.0} s: test accuracy {:.2}%",
        out.display(),
        card.training_time_s,
        card.test_accuracy * 100.0
    );
    Ok(())
}
