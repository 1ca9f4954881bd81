//! The `train`, `generate`, `evaluate`, `train-classifier` and `train-detector` subcommands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use tch::Device;

use crate::config::Settings;
use crate::detect::augment::Transform;
use crate::detect::eval as detector_eval;
use crate::detect::lofo::{self, LofoConfig};
use crate::detect::mix::FakeMix;
use crate::detect::train::{self as detector_train, DetectorTrainConfig};
use crate::device::{DeviceChoice, DeviceName};
use crate::gan::card::{ArchFamily, Loss};
use crate::gan::card::{Architecture, ModelCard};
use crate::gan::card::{DetectorInput, DetectorNetwork};
use crate::gan::catalog::load_model;
use crate::gan::data::Dataset;
use crate::gan::data::Split;
use crate::gan::progressive::Schedule;
use crate::gan::quality::{self, Classifier};
use crate::gan::train::{self, model_dir, TrainConfig};
use crate::gan::zoo::{load_zoo, Family, ZooGenerator};
use crate::gan::CARD_FILE;
use crate::gan::DETECTOR_FILE;

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
pub struct EvaluateArgs {
    /// Compute the Fréchet distance and label spread with the Fashion-MNIST classifier.
    #[arg(long)]
    pub quality: bool,
    /// Measure the synthetic-image detector (AP, ROC-AUC, TPR at 1% FPR, accuracy and FPR at
    /// the card's threshold) and the pHash registry match, clean and under JPEG 75, 0.5x
    /// resize and 10% crop; writes the ROC plots into the model directory.
    #[arg(long)]
    pub detector: bool,
    /// Only the registry study (needs no detector): pHash candidates and both confirmation
    /// tiers under every edit of `registry::study::Edit::ALL`, thresholds chosen on a
    /// calibration split of training images, false matches counted on held-out real images.
    #[arg(long)]
    pub registry: bool,
    /// Leave one generator family out: for each zoo family, train a detector with the served
    /// detector's recipe on all other families and score it on the held-out one (AUC, AP,
    /// TPR and FPR at its calibrated threshold, clean and under each transform); ROC plots
    /// `detector-lofo-<family>.png` in the model directory.
    #[arg(long)]
    pub leave_one_out: bool,
    /// Zoo for --leave-one-out; default: <models dir>/zoo.
    #[arg(long)]
    pub zoo: Option<PathBuf>,
    /// Training steps of each held-out detector; default: the served detector's.
    #[arg(long)]
    pub lofo_steps: Option<u64>,
    /// Evaluation images per generator of a held-out family.
    #[arg(long, default_value_t = 1000)]
    pub per_generator: usize,
    /// Hold out only these families (comma-separated; default: every family of the zoo);
    /// --write-card then replaces only their rows.
    #[arg(long, value_delimiter = ',')]
    pub lofo_families: Vec<String>,
    /// Held-out detectors trained at the same time (--leave-one-out), each on its own thread
    /// with its own copy of the model and the zoo; give each one torch thread (`--threads 1`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Write the --leave-one-out report here too.
    #[arg(long)]
    pub lofo_out: Option<PathBuf>,
    /// CPU threads for torch; default: torch's choice.
    #[arg(long)]
    pub threads: Option<i32>,
    /// With --detector: measure the detector alone (the registry study takes far longer);
    /// --write-card then keeps the card's registry figures.
    #[arg(long, conflicts_with = "registry")]
    pub no_registry: bool,
    /// With --detector --no-registry: score the detector on images of another model of the
    /// catalogue (an older checkpoint, another generator trained on the same data) instead of
    /// its own generator's: how it does on a generator it never saw. The card is left alone;
    /// the ROC plot is `detector-roc-<model>.png` in the detector's model directory.
    #[arg(long, requires = "no_registry", conflicts_with = "write_card")]
    pub images_from: Option<String>,
    /// Real test images for --detector/--registry; default: all (10,000 for Fashion-MNIST). In
    /// the registry study they are held out (false matches are counted on them).
    #[arg(long)]
    pub real: Option<usize>,
    /// Registry study: the first this many training images are the calibration split, on which
    /// the confirmation thresholds are chosen (never counted as held out).
    #[arg(long, default_value_t = 20_000)]
    pub calibration: usize,
    /// Registry study: training images after the calibration split that are held out beside
    /// the test images; default: all the rest (40,000 for Fashion-MNIST).
    #[arg(long)]
    pub held_out_train: Option<usize>,
    /// Fresh generated images for --detector/--registry (also the number registered).
    #[arg(long, default_value_t = 10_000)]
    pub generated: usize,
    /// pHash distance the registry figures are for; default: settings verify.phash_max_distance.
    #[arg(long)]
    pub max_distance: Option<u32>,
    /// Write the full pHash study report here too.
    #[arg(long)]
    pub study_out: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
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
    /// Seed of the generated images (--detector/--registry use latent seed 3e9 + this).
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

#[derive(Debug, Args)]
pub struct TrainDetectorArgs {
    /// Model name; default: settings model.name.
    #[arg(long)]
    pub model: Option<String>,
    /// Fashion-MNIST style IDX directory with the model's real training images.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    pub dataset: PathBuf,
    #[arg(long, default_value_t = 4000)]
    pub steps: u64,
    /// Real and generated images per step (each).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The network: plain (the model's discriminator fine-tuned without its spectral norm:
    /// each weight divided by it at the start) or discriminator (fine-tuned with it). Plain by
    /// default: on the served model's images it reached AP 0.99+ where the spectrally
    /// normalised one stayed at 0.70 (docs/detector-evaluation.txt).
    #[arg(long, default_value = "plain")]
    pub network: String,
    /// Share of training images given the random augmentation (crop, blur, downscale, JPEG);
    /// the rest are seen clean.
    #[arg(long, default_value_t = 0.5)]
    pub augmented_share: f64,
    /// Held-out real images (and as many generated validation images).
    #[arg(long, default_value_t = 5000)]
    pub validation: usize,
    /// Use at most this many real training images (quick runs).
    #[arg(long)]
    pub real_limit: Option<usize>,
    /// Steps between validation points of the training curve.
    #[arg(long, default_value_t = 100)]
    pub eval_every: u64,
    /// Generator zoo to train against as well (`hallmark zoo train`); default: <models
    /// dir>/zoo when it exists.
    #[arg(long)]
    pub zoo: Option<PathBuf>,
    /// Train against the model's own generator only.
    #[arg(long, conflicts_with = "zoo")]
    pub no_zoo: bool,
    /// Leave these generator families out of training (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub hold_out: Vec<String>,
    /// What the network sees: pixels, or pixels-residual (pixels and their
    /// neighbouring-pixel residual). Pixels by default: leave-one-family-out scored it higher
    /// (mean held-out ROC-AUC 0.917 against 0.895, docs/detector-evaluation.txt).
    #[arg(long, default_value = "pixels")]
    pub input: String,
    /// Steps of the family head that names a synthetic image's nearest generator family
    /// (needs a zoo; 0: none).
    #[arg(long, default_value_t = 300)]
    pub attribution_steps: u64,
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for torch; default: torch's choice.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `hallmark train-detector`.
///
/// # Errors
/// Unknown model, missing dataset, torch failures.
pub fn train_detector(settings: &Settings, args: TrainDetectorArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let device = device(settings, args.device.as_deref())?;
    let name = args.model.as_deref().unwrap_or(&settings.model.name);
    let model = load_model(&settings.model.dir, name, device)?;
    eprintln!(
        "training the detector of {} for {} steps on {}",
        model.dir.display(),
        args.steps,
        DeviceName(device)
    );
    let config = DetectorTrainConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        validation: args.validation,
        real_limit: args.real_limit,
        eval_every: args.eval_every,
        input: parse_input(&args.input)?,
        network: DetectorNetwork::parse(&args.network).map_err(anyhow::Error::msg)?,
        augmented_share: args.augmented_share,
        attribution_steps: args.attribution_steps,
        progress: !args.quiet,
    };
    let zoo = open_zoo(settings, args.zoo.as_ref(), args.no_zoo, device)?;
    let held_out = Family::parse_list(&args.hold_out)?;
    let mix = FakeMix::new(&model, &zoo, &held_out)?;
    eprintln!("generated images from: {}", mix.source_list());
    let report = detector_train::train_detector(&model, &mix, &args.dataset, &config, device)?;
    let card = &report.card;
    if let Some(t) = &card.training {
        println!(
            "detector of {name} trained in {:.0} s ({} steps): validation AP {:.4}, FPR {:.2}% clean / {:.2}% augmented, TPR {:.2}% at threshold {:.4}",
            t.training_time_s,
            t.steps,
            t.validation_ap,
            t.validation_fpr_clean * 100.0,
            t.validation_fpr_augmented * 100.0,
            t.validation_tpr * 100.0,
            card.threshold
        );
        for (transform, fpr) in &t.validation_fpr_by_transform {
            println!("  validation FPR under {transform}: {:.2}%", fpr * 100.0);
        }
    }
    println!(
        "calibration p = sigmoid({:.4} * logit + {:.4}); domain: border {:?}, mean {:?}, std {:?}; validation images out of domain: real {:.2}%, generated {:.2}%",
        card.calibration.a,
        card.calibration.b,
        card.domain.border_mean,
        card.domain.mean,
        card.domain.std,
        report.real_out_of_domain * 100.0,
        report.generated_out_of_domain * 100.0
    );
    println!(
        "wrote {}, {} and the [detector] section of {}",
        model.dir.join(DETECTOR_FILE).display(),
        model
            .dir
            .join(detector_train::DETECTOR_CURVE_FILE)
            .display(),
        model.dir.join(CARD_FILE).display()
    );
    Ok(())
}

/// The detector input named on the command line.
fn parse_input(name: &str) -> anyhow::Result<DetectorInput> {
    match name {
        "pixels" => Ok(DetectorInput::Pixels),
        "pixels-residual" => Ok(DetectorInput::PixelsResidual),
        other => anyhow::bail!("unknown detector input {other:?}: pixels or pixels-residual"),
    }
}

/// The zoo a detector trains or is evaluated against: `--zoo`, else `<models dir>/zoo` when it
/// holds members, else none.
fn open_zoo(
    settings: &Settings,
    dir: Option<&PathBuf>,
    none: bool,
    device: Device,
) -> anyhow::Result<Vec<ZooGenerator>> {
    if none {
        return Ok(Vec::new());
    }
    let path = super::zoo::zoo_dir(settings, dir);
    if dir.is_none() && !path.is_dir() {
        return Ok(Vec::new());
    }
    let zoo = load_zoo(&path, device)?;
    if dir.is_some() && zoo.is_empty() {
        anyhow::bail!(
            "{} holds no zoo members: run `hallmark zoo train`",
            path.display()
        );
    }
    Ok(zoo)
}

/// `evaluate --detector` / `--registry`.
fn evaluate_detector(settings: &Settings, args: &EvaluateArgs) -> anyhow::Result<()> {
    let device = device(settings, args.device.as_deref())?;
    let name = args.model.as_deref().unwrap_or(&settings.model.name);
    let model = load_model(&settings.model.dir, name, device)?;
    let arch = &model.card.architecture;
    let max_distance = args
        .max_distance
        .unwrap_or(settings.verify.phash_max_distance);
    let loaded_detector =
        crate::detect::Detector::load(&model.dir, &model.card, &model.generator_sha256, device)?;
    let detector = if args.detector {
        Some(loaded_detector.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "model {name} has no [detector] section: run `hallmark train-detector` first"
            )
        })?)
    } else {
        None
    };
    let real = detector_train::real_images(
        &args.dataset,
        Split::Test,
        arch.image_size,
        arch.channels,
        args.real,
    )?;
    let seed = detector_train::EVALUATION_SEED_BASE + args.seed;
    let indices: Vec<u64> = (0..args.generated as u64).collect();
    let source = match &args.images_from {
        Some(other) => {
            let source = load_model(&settings.model.dir, other, device)?;
            if source.card.architecture.image_size != arch.image_size
                || source.card.architecture.channels != arch.channels
            {
                anyhow::bail!("model {other} makes images of another size or colour than {name}");
            }
            Some(source)
        }
        None => None,
    };
    let generator = source.as_ref().unwrap_or(&model);
    let mut generated = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(500) {
        generated.extend(generator.generate(seed, chunk)?);
    }
    let per_pass = (real.len() + generated.len()) as u64 * Transform::STANDARD.len() as u64;
    let registry_study = !(args.no_registry && detector.is_some());
    let passes = 1 + u64::from(detector.is_some()) + u64::from(registry_study);
    let bar = crate::progress::bar(per_pass * passes, "evaluating", !args.quiet);
    let images = detector_eval::build_images(&real, &generated, seed, &bar);
    let detector_study = match detector {
        Some(d) => Some(detector_eval::detector_study(d, &images, &bar)?),
        None => None,
    };
    let studies = if registry_study {
        let study = detector_eval::phash_study(&images, &bar);
        bar.finish_and_clear();
        let mut verify_settings = settings.verify.clone();
        verify_settings.phash_max_distance = max_distance;
        let matching = registry_match_study(args, arch, &real, &generated, &verify_settings, seed)?;
        Some((study, matching))
    } else {
        None
    };
    bar.finish_and_clear();
    println!(
        "model {name}: {} real test images ({}) vs {} images generated by {} (latent seed {seed}), all written as PNG and decoded",
        real.len(),
        args.dataset.display(),
        generated.len(),
        generator.card.name
    );
    println!("transforms:");
    for t in Transform::STANDARD {
        println!("  {}", t.definition());
    }
    println!();
    if let (Some(d), Some(ds)) = (detector, &detector_study) {
        print!(
            "{}",
            detector_eval::detector_table(&ds.scores, d.threshold())
        );
        if let Some(other) = &source {
            let roc = model
                .dir
                .join(format!("detector-roc-{}.png", other.card.name));
            detector_eval::write_roc(ds, &roc, None)?;
            println!("ROC plot: {}\n", roc.display());
        } else {
            let roc = model.dir.join(detector_eval::ROC_FILE);
            let zoom = model.dir.join(detector_eval::ROC_ZOOM_FILE);
            detector_eval::write_roc(ds, &roc, Some(&zoom))?;
            println!("ROC plots: {} and {}\n", roc.display(), zoom.display());
        }
    }
    let Some((study, matching)) = studies else {
        if args.write_card {
            let path = model.dir.join(CARD_FILE);
            let mut card = ModelCard::load(&path)?;
            let section = card
                .detector
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("{} has no [detector] section", path.display()))?;
            // The registry figures depend on the generator alone: those measured before stay
            // (none yet for a new model: `evaluate --registry --write-card` adds them).
            let kept = section.evaluation.as_ref().and_then(|e| e.registry.clone());
            if let Some(ds) = &detector_study {
                section.evaluation = Some(detector_eval::evaluation_card(
                    ds,
                    (real.len(), generated.len()),
                    real_source(args),
                    seed,
                    kept,
                ));
            }
            card.save(&path)?;
            println!(
                "detector evaluation written to {} (registry figures kept)",
                path.display()
            );
        }
        return Ok(());
    };
    let mut report = study.report(max_distance);
    report.push('\n');
    report.push_str(&matching.report());
    print!("{report}");
    if let Some(path) = &args.study_out {
        std::fs::write(path, &report)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if args.write_card {
        let path = model.dir.join(CARD_FILE);
        let mut card = ModelCard::load(&path)?;
        let section = card
            .detector
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("{} has no [detector] section", path.display()))?;
        let mut registry = study.evaluation(max_distance);
        registry.confirmed = Some(matching.confirmed());
        match (detector_study, section.evaluation.as_mut()) {
            (Some(ds), _) => {
                section.evaluation = Some(detector_eval::evaluation_card(
                    &ds,
                    (real.len(), generated.len()),
                    real_source(args),
                    seed,
                    Some(registry),
                ));
            }
            // `--registry --write-card` refreshes only the registry figures.
            (None, Some(evaluation)) => evaluation.registry = Some(registry),
            (None, None) => {
                anyhow::bail!("--write-card needs a detector evaluation to add to: pass --detector")
            }
        }
        card.save(&path)?;
        println!("detector evaluation written to {}", path.display());
    }
    Ok(())
}

/// The registry study of `evaluate --registry` (and `--detector`): our generated images, the
/// test images (held out) and the training split, cut into a calibration block and a held-out
/// rest ([`crate::registry::study::RealSplits`]).
fn registry_match_study(
    args: &EvaluateArgs,
    arch: &crate::gan::Architecture,
    test: &[image::DynamicImage],
    generated: &[image::DynamicImage],
    settings: &crate::config::VerifySettings,
    seed: u64,
) -> anyhow::Result<crate::registry::study::MatchStudy> {
    use crate::registry::study::{match_study, Edit, RealSplits, StudyImages};
    // Only as many training images as the two parts use (all of them by default).
    let needed = args
        .held_out_train
        .map(|n| args.calibration.saturating_add(n));
    let train = detector_train::real_images(
        &args.dataset,
        Split::Train,
        arch.image_size,
        arch.channels,
        needed,
    )?;
    let splits = RealSplits::new(
        train.len(),
        test.len(),
        args.calibration,
        args.held_out_train,
        None,
    );
    anyhow::ensure!(splits.disjoint(), "calibration and held-out images overlap");
    let held_out: Vec<image::DynamicImage> = test[splits.test.clone()]
        .iter()
        .chain(&train[splits.held_out_train.clone()])
        .cloned()
        .collect();
    let images = StudyImages {
        generated,
        calibration: &train[splits.calibration.clone()],
        held_out: &held_out,
        splits: splits.clone(),
    };
    let queries = (generated.len() + splits.calibration.len() + held_out.len()) * Edit::ALL.len();
    let bar = crate::progress::bar(queries as u64, "registry study", !args.quiet);
    let study = match_study(&images, settings, seed, &bar);
    bar.finish_and_clear();
    Ok(study)
}

/// `evaluate --leave-one-out`.
fn evaluate_leave_one_out(settings: &Settings, args: &EvaluateArgs) -> anyhow::Result<()> {
    let device = device(settings, args.device.as_deref())?;
    let name = args.model.as_deref().unwrap_or(&settings.model.name);
    let model = load_model(&settings.model.dir, name, device)?;
    let arch = &model.card.architecture;
    let zoo = open_zoo(settings, args.zoo.as_ref(), false, device)?;
    if zoo.is_empty() {
        anyhow::bail!("--leave-one-out needs a generator zoo: run `hallmark zoo train` first");
    }
    let section = model.card.detector.as_ref().ok_or_else(|| {
        anyhow::anyhow!("model {name} has no [detector] section: run `hallmark train-detector`")
    })?;
    let recipe = section.training.as_ref().ok_or_else(|| {
        anyhow::anyhow!("the detector of {name} records no training recipe to repeat")
    })?;
    let only = Family::parse_list(&args.lofo_families)?;
    let config = LofoConfig {
        only,
        train: DetectorTrainConfig {
            steps: args.lofo_steps.unwrap_or(recipe.steps),
            batch_size: recipe.batch_size as usize,
            learning_rate: recipe.learning_rate,
            seed: recipe.seed,
            validation: recipe.real_validation_images as usize,
            real_limit: None,
            eval_every: 100,
            input: section.input,
            network: section.network,
            augmented_share: recipe.augmented_share,
            // The held-out detectors are scored on their logits alone.
            attribution_steps: 0,
            progress: !args.quiet,
        },
        per_generator: args.per_generator,
        seed: args.seed,
    };
    let real = detector_train::real_images(
        &args.dataset,
        Split::Test,
        arch.image_size,
        arch.channels,
        args.real,
    )?;
    let zoo_dir = super::zoo::zoo_dir(settings, args.zoo.as_ref());
    let results = lofo::leave_one_family_out(
        &lofo::LofoSources {
            models_dir: &settings.model.dir,
            model: name,
            zoo_dir: &zoo_dir,
        },
        &args.dataset,
        &real,
        &config,
        Some(&model.dir),
        device,
        usize::from(args.jobs),
    )?;
    let mut report = format!(
        "model {name}: {} real test images ({}); {} evaluation images per generator (latent seed {}); each held-out detector: {} steps, batch {}, learning rate {}, network {}, input {}, {:.0}% of training images augmented\ntransforms:\n",
        real.len(),
        args.dataset.display(),
        args.per_generator,
        detector_train::EVALUATION_SEED_BASE + args.seed,
        config.train.steps,
        config.train.batch_size,
        config.train.learning_rate,
        config.train.network.name(),
        config.train.input.name(),
        config.train.augmented_share * 100.0
    );
    for t in Transform::STANDARD {
        report.push_str(&format!("  {}\n", t.definition()));
    }
    report.push_str(&lofo::table(&results));
    print!("{report}");
    if let Some(path) = &args.lofo_out {
        std::fs::write(path, &report)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if args.write_card {
        let path = model.dir.join(CARD_FILE);
        let mut card = ModelCard::load(&path)?;
        let section = card
            .detector
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("{} has no [detector] section", path.display()))?;
        // Rows of families this run did not hold out stay; those it did are replaced.
        let redone: Vec<String> = results.iter().map(|r| r.family.to_string()).collect();
        section
            .leave_one_family_out
            .retain(|row| !redone.contains(&row.family));
        section
            .leave_one_family_out
            .extend(results.iter().flat_map(lofo::FamilyResult::scores));
        // `Family` orders as `Family::ALL`; a name it does not know sorts last.
        section.leave_one_family_out.sort_by_key(|row| {
            Family::parse(&row.family).map_or((true, None), |f| (false, Some(f)))
        });
        card.save(&path)?;
        println!("leave-one-family-out figures written to {}", path.display());
    }
    Ok(())
}

/// How the card names the real images an evaluation used.
fn real_source(args: &EvaluateArgs) -> String {
    format!("{} (t10k split)", args.dataset.display())
}

/// `hallmark evaluate --quality` / `--detector` / `--registry`.
///
/// # Errors
/// Unknown model or classifier, missing dataset, torch failures.
pub fn evaluate(settings: &Settings, args: EvaluateArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    if !args.quality && !args.detector && !args.registry && !args.leave_one_out {
        anyhow::bail!(
            "nothing to evaluate: pass --quality, --detector, --registry or --leave-one-out"
        );
    }
    if args.leave_one_out {
        evaluate_leave_one_out(settings, &args)?;
        if !args.quality && !args.detector && !args.registry {
            return Ok(());
        }
    }
    if args.detector || args.registry {
        evaluate_detector(settings, &args)?;
        if !args.quality {
            return Ok(());
        }
    }
    let device = device(settings, args.device.as_deref())?;
    let name = args.model.as_deref().unwrap_or(&settings.model.name);
    let model = load_model(&settings.model.dir, name, device)?;
    let classifier_dir = quality::classifier_dir(&settings.model.dir, &args.classifier);
    let classifier = Classifier::load(&classifier_dir, device)?;
    let report = quality::evaluate_quality(
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
    let card = quality::train_classifier(&args.dataset, &out, args.epochs, args.seed, device)?;
    println!(
        "classifier {} trained in {:.0} s: test accuracy {:.2}%",
        out.display(),
        card.training_time_s,
        card.test_accuracy * 100.0
    );
    Ok(())
}
