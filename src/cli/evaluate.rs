//! The `evaluate` subcommand: the generator's quality (`--quality`), the detector and the
//! registry on held-out images (`--detector`, `--registry`), and the detector on generator
//! families it never trained on (`--leave-one-out`). The measuring is done in `detect` and
//! `registry`; this file reads the arguments, prints and writes the card.

use std::path::PathBuf;

use clap::Args;

use super::detect::open_zoo;
use super::gan::{device, FASHION_MNIST_DIR};
use crate::config::Settings;
use crate::detect::augment::Transform;
use crate::detect::eval::{self as detector_eval, EvaluationSet};
use crate::detect::lofo::{self, LofoConfig};
use crate::detect::train::{self as detector_train, DetectorTrainConfig};
use crate::enhance::study as enhance_study;
use crate::gan::card::ModelCard;
use crate::gan::catalog::{load_model, LoadedModel};
use crate::gan::data::Split;
use crate::gan::quality::{self, Classifier};
use crate::gan::zoo::Family;
use crate::gan::CARD_FILE;

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
    /// Enhancement (restore, inpaint, upscale) on held-out test images: PSNR and SSIM against
    /// the originals, next to simple baselines measured in the same run; a picture grid.
    #[arg(long)]
    pub enhancement: bool,
    /// Test images that judge each enhancement condition.
    #[arg(long, default_value_t = 1000)]
    pub enhancement_images: usize,
    /// Test images before them that tune the baselines (the blur's σ).
    #[arg(long, default_value_t = 200)]
    pub enhancement_tuning: usize,
    /// Random starts per picture (default: the service's `enhancement.starts`).
    #[arg(long)]
    pub starts: Option<usize>,
    /// Optimisation steps (default: the service's `enhancement.steps`).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Pictures inverted together.
    #[arg(long, default_value_t = 16)]
    pub enhancement_batch: usize,
    /// Write the enhancement table to this file and its picture grid beside it (`.png`).
    #[arg(long)]
    pub enhancement_out: Option<PathBuf>,
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
    let set = EvaluationSet::load(
        &args.dataset,
        arch,
        args.real,
        generator,
        args.generated,
        args.seed,
    )?;
    let per_pass = (set.real.len() + set.generated.len()) as u64 * Transform::STANDARD.len() as u64;
    let registry_study = !(args.no_registry && detector.is_some());
    let passes = 1 + u64::from(detector.is_some()) + u64::from(registry_study);
    let bar = crate::progress::bar(per_pass * passes, "evaluating", !args.quiet);
    let images = detector_eval::build_images(&set.real, &set.generated, set.seed, &bar);
    let detector_study = match detector {
        Some(d) => Some(detector_eval::detector_study(d, &images, &bar)?),
        None => None,
    };
    let phash = registry_study.then(|| detector_eval::phash_study(&images, &bar));
    bar.finish_and_clear();
    println!(
        "model {name}: {} real test images ({}) vs {} images generated by {} (latent seed {}), all written as PNG and decoded",
        set.real.len(),
        args.dataset.display(),
        set.generated.len(),
        generator.card.name,
        set.seed
    );
    println!("transforms:");
    for t in Transform::STANDARD {
        println!("  {}", t.definition());
    }
    println!();
    if let (Some(d), Some(ds)) = (detector, &detector_study) {
        print_detector_study(&model, source.as_ref(), d, ds)?;
    }
    let registry = match phash {
        Some(study) => {
            let mut verify_settings = settings.verify.clone();
            verify_settings.phash_max_distance = max_distance;
            let matching = registry_match_study(args, arch, &set, &verify_settings)?;
            let mut report = study.report(max_distance);
            report.push('\n');
            report.push_str(&matching.report());
            print!("{report}");
            if let Some(path) = &args.study_out {
                std::fs::write(path, &report)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            let mut registry = study.evaluation(max_distance);
            registry.confirmed = Some(matching.confirmed());
            Some(registry)
        }
        None => None,
    };
    if args.write_card {
        let path = model.dir.join(CARD_FILE);
        let mut card = ModelCard::load(&path)?;
        let section = card
            .detector
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("{} has no [detector] section", path.display()))?;
        detector_eval::record_evaluation(
            section,
            detector_study.as_ref(),
            &set,
            real_source(args),
            registry,
        )?;
        card.save(&path)?;
        println!("detector evaluation written to {}", path.display());
    }
    Ok(())
}

/// The detector's table and its ROC plots (named after the other model when its images were
/// scored).
fn print_detector_study(
    model: &LoadedModel,
    source: Option<&LoadedModel>,
    detector: &crate::detect::Detector,
    study: &detector_eval::DetectorStudy,
) -> anyhow::Result<()> {
    print!(
        "{}",
        detector_eval::detector_table(&study.scores, detector.threshold())
    );
    if let Some(other) = source {
        let roc = model
            .dir
            .join(format!("detector-roc-{}.png", other.card.name));
        detector_eval::write_roc(study, &roc, None)?;
        println!("ROC plot: {}\n", roc.display());
    } else {
        let roc = model.dir.join(detector_eval::ROC_FILE);
        let zoom = model.dir.join(detector_eval::ROC_ZOOM_FILE);
        detector_eval::write_roc(study, &roc, Some(&zoom))?;
        println!("ROC plots: {} and {}\n", roc.display(), zoom.display());
    }
    Ok(())
}

/// The registry study of `evaluate --registry` (and `--detector`): our generated images, the
/// test images (held out) and the training split, cut into a calibration block and a held-out
/// rest ([`crate::registry::study::RealSplits`]).
fn registry_match_study(
    args: &EvaluateArgs,
    arch: &crate::gan::Architecture,
    set: &EvaluationSet,
    settings: &crate::config::VerifySettings,
) -> anyhow::Result<crate::registry::study::MatchStudy> {
    use crate::registry::study::{match_study, Edit, RealSplits, StudyImages};
    let (test, generated, seed) = (&set.real, &set.generated, set.seed);
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

/// `evaluate --enhancement`.
fn evaluate_enhancement(settings: &Settings, args: &EvaluateArgs) -> anyhow::Result<()> {
    let device = device(settings, args.device.as_deref())?;
    let name = args.model.as_deref().unwrap_or(&settings.model.name);
    let model = load_model(&settings.model.dir, name, device)?;
    let mut inversion = settings.enhancement;
    inversion.starts = args.starts.unwrap_or(inversion.starts);
    inversion.steps = args.steps.unwrap_or(inversion.steps);
    let config = enhance_study::StudyConfig {
        images: args.enhancement_images,
        tuning: args.enhancement_tuning,
        seed: args.seed,
        settings: inversion,
        batch: args.enhancement_batch,
        progress: !args.quiet,
    };
    let study = enhance_study::run(&model, &args.dataset, &config)?;
    let report = format!(
        "model {name}: enhancement on {} (t10k split), torch threads {}, {inversion:?}\n{}",
        args.dataset.display(),
        tch::get_num_threads(),
        study.report()
    );
    print!("{report}");
    if let Some(path) = &args.enhancement_out {
        std::fs::write(path, &report)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        let grid = path.with_extension("png");
        crate::gan::plot::save_png(&crate::gan::plot::grid(&study.grid, 8, 3), &grid)?;
        println!("wrote {} and {}", path.display(), grid.display());
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
    if !args.quality && !args.detector && !args.registry && !args.leave_one_out && !args.enhancement
    {
        anyhow::bail!(
            "nothing to evaluate: pass --quality, --detector, --registry, --leave-one-out or --enhancement"
        );
    }
    if args.enhancement {
        evaluate_enhancement(settings, &args)?;
        if !args.quality && !args.detector && !args.registry && !args.leave_one_out {
            return Ok(());
        }
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
