//! The `train-detector` subcommand, and the zoo a detector trains or is evaluated against.

use std::path::PathBuf;

use clap::Args;
use tch::Device;

use super::gan::{device, FASHION_MNIST_DIR};
use crate::config::Settings;
use crate::detect::mix::FakeMix;
use crate::detect::train::{self as detector_train, DetectorTrainConfig};
use crate::device::DeviceName;
use crate::gan::card::{DetectorInput, DetectorNetwork};
use crate::gan::catalog::load_model;
use crate::gan::zoo::{load_zoo, Family, ZooGenerator};
use crate::gan::CARD_FILE;
use crate::gan::DETECTOR_FILE;

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
pub(crate) fn open_zoo(
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
