//! `hallmark train-detector`: trains a synthetic-image detector of the discriminator's shape,
//! calibrates it and derives its domain rules.
//!
//! The network ([`DetectorNetwork`]): by default (`plain`) the model's discriminator with its
//! spectral norm folded into the weights (the same function at the start) and then fine-tuned
//! *without* the norm. Starting from the discriminator gives features that already separate
//! real from generated and that carry over to generator families the detector never sees
//! (a detector of the same shape trained from scratch scored the held-out nearest family at
//! ROC-AUC 0.78 against 0.97 started from the discriminator); dropping the norm lets the logit
//! react sharply to the few grey levels that tell a strong generator's images from real ones
//! (with it, AP on our own generator stayed at 0.70). No batch norm: an image's score never
//! depends on the rest of its batch. Robustness to JPEG and resampling comes from the
//! augmentation: half the training images (`augmented_share`) get it, the other half are seen
//! clean, since a detector that only ever sees augmented images learns little of the traces
//! that a clean upload still carries. Figures: docs/detector-evaluation.txt.
//!
//! Data: real Fashion-MNIST train images (a seeded random `validation` of them held out) vs
//! images of the shipped generator from a training latent seed (fresh ones every step), and a
//! validation set of generated images from a different seed. Both classes get the same random
//! augmentation ([`super::augment::random_augment`]) and go through the service's path
//! (decoded image → [`super::detector::detector_views`]: images a little smaller than the
//! model size, like crops, are placed on a black canvas at native scale, not upscaled). A
//! training image is one of its views drawn at random; validation, calibration, evaluation
//! and the service score the mean logit over all its views.
//!
//! Calibration: Platt scaling fitted on the validation logits (clean and augmented together).
//! Threshold: the smallest probability at which at most 0.8% of the validation real images
//! are called synthetic, clean, randomly augmented, and under each standard transform (JPEG
//! 75, 0.5x, the 10% crop: [`Transform::STANDARD`]) separately (the largest of these): 1% is
//! the target on unseen real images under each transform, and 0.2 points absorb the sampling
//! error of estimating a 1% tail from 5,000 images. The validation images come from the
//! training split; the test split is never looked at.
//!
//! Domain rules: the size rules of [`super::detector::size_rules`]; pixel ranges from real
//! training images, clean and augmented, widened by 0.1 (intensity in 0..1); chroma limit
//! 0.04 for grey models (the training data has none; JPEG colour noise of a grey image stored
//! as RGB stays far below it).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use image::{DynamicImage, GrayImage, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Reduction, Tensor};

use super::attribution::{fit_attribution, ATTRIBUTION_FILE};
use super::augment::{random_augment, Transform};
use super::detector::{
    average_precision, detector_input_random, detector_logits, domain_from_stats, image_stats,
    threshold_for_fpr, Detector, DetectorNet, ImageStats,
};
use super::mix::FakeMix;
use crate::gan::card::{
    Calibration, DetectorCard, DetectorInput, DetectorNetwork, DetectorTraining, DomainRules,
    ModelCard,
};
use crate::gan::catalog::LoadedModel;
use crate::gan::data::{Dataset, Split};
use crate::gan::plot::{self, Series, PALETTE};
use crate::gan::{GanError, CARD_FILE, DETECTOR_FILE, DISCRIMINATOR_FILE};

/// The training curve written next to the weights.
pub const DETECTOR_CURVE_FILE: &str = "detector-training.png";
/// Latent seeds of generated images: training, validation and evaluation never share one.
pub const TRAIN_SEED_BASE: u64 = 1_000_000_000;
pub const VALIDATION_SEED_BASE: u64 = 2_000_000_000;
pub const EVALUATION_SEED_BASE: u64 = 3_000_000_000;
/// Mixed into the training and validation seeds for the family head's images.
const ATTRIBUTION_SEED: u64 = 0x00fa_0000_0000;
/// Mixed into the seed of the stream that transforms the validation images for the threshold.
const TRANSFORM_SEED: u64 = 0x7a5f_0000_0000;
/// False-positive budget on validation real images (see the module docs).
pub const VALIDATION_FPR: f64 = 0.008;
/// Widening of the observed pixel-statistic ranges, and the chroma limit of grey models.
pub const DOMAIN_MARGIN: f64 = 0.1;
pub const MAX_CHROMA: f64 = 0.04;

/// How to train the detector.
#[derive(Debug, Clone)]
pub struct DetectorTrainConfig {
    pub steps: u64,
    /// Real and generated images per step (each).
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Held-out real images, and generated validation images.
    pub validation: usize,
    /// Use at most this many real training images (tests); `None`: all.
    pub real_limit: Option<usize>,
    /// Steps between validation-accuracy points of the curve.
    pub eval_every: u64,
    /// What the network sees.
    pub input: DetectorInput,
    /// Which network: the discriminator fine-tuned with its spectral norm, or without it.
    pub network: DetectorNetwork,
    /// Share of training images that get [`random_augment`] (the rest stay clean).
    pub augmented_share: f64,
    /// Steps of the family head (0: none); it needs at least two families.
    pub attribution_steps: u64,
    pub progress: bool,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct DetectorTrainReport {
    pub card: DetectorCard,
    /// Generated images drawn per source (`own:<model>`, `zoo:<member>`): training,
    /// validation and calibration together.
    pub images_per_source: BTreeMap<String, u64>,
    /// Validation generated images the domain rules would refuse (should be ~0).
    pub generated_out_of_domain: f64,
    pub real_out_of_domain: f64,
}

fn to_images(dataset: &Dataset, indices: &[usize]) -> Vec<DynamicImage> {
    let (size, channels) = (dataset.image_size(), dataset.channels());
    indices
        .iter()
        .filter_map(|&i| {
            let bytes = dataset.image_bytes(i).to_vec();
            if channels == 1 {
                GrayImage::from_raw(size, size, bytes).map(DynamicImage::ImageLuma8)
            } else {
                let plane = (size * size) as usize;
                let mut hwc = vec![0u8; plane * 3];
                for p in 0..plane {
                    for c in 0..3 {
                        hwc[p * 3 + c] = bytes[c * plane + p];
                    }
                }
                RgbImage::from_raw(size, size, hwc).map(DynamicImage::ImageRgb8)
            }
        })
        .collect()
}

/// Real test or train images of an IDX dataset or an image folder ([`Dataset::split`]) as
/// decoded images at the model size.
///
/// # Errors
/// When the dataset cannot be read.
pub fn real_images(
    dataset_dir: &Path,
    split: Split,
    size: u32,
    channels: u32,
    limit: Option<usize>,
) -> Result<Vec<DynamicImage>, GanError> {
    let dataset = Dataset::split(dataset_dir, split, size, channels)?;
    let n = limit.map_or(dataset.len(), |l| l.min(dataset.len()));
    Ok(to_images(&dataset, &(0..n).collect::<Vec<_>>()))
}

fn forward_logits(
    net: &DetectorNet,
    images: &[DynamicImage],
    arch: &crate::gan::Architecture,
) -> Result<Vec<f64>, GanError> {
    Ok(detector_logits(net, images, arch)?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// Trains the detector of `model` against the generators of `mix` and writes
/// `detector.safetensors`, the curve and the card's `[detector]` section into the model
/// directory.
///
/// # Errors
/// Missing dataset or discriminator weights, file errors, torch failures.
pub fn train_detector(
    model: &LoadedModel,
    mix: &FakeMix<'_>,
    dataset_dir: &Path,
    config: &DetectorTrainConfig,
    device: Device,
) -> Result<DetectorTrainReport, GanError> {
    let fitted = fit_detector(model, mix, dataset_dir, config, device)?;
    let card = &fitted.report.card;
    fitted
        .detector
        .network()
        .save(&model.dir.join(DETECTOR_FILE))?;
    if let Some(head) = fitted.detector.attribution() {
        head.save(&model.dir.join(ATTRIBUTION_FILE))?;
    }
    let card_path = model.dir.join(CARD_FILE);
    let mut full = ModelCard::load(&card_path)?;
    // The detector figures of any evaluation described the old weights (`hallmark evaluate
    // --detector` makes new ones); the registry figures depend on the generator alone and stay.
    let registry_kept = full
        .detector
        .as_ref()
        .and_then(|d| d.evaluation.clone())
        .map(|mut e| {
            e.detector.clear();
            e
        });
    let mut section = card.clone();
    section.evaluation = registry_kept;
    full.detector = Some(section);
    full.save(&card_path)?;
    fitted
        .curve
        .write(&model.dir.join(DETECTOR_CURVE_FILE), config.steps)?;
    Ok(fitted.report)
}

/// A trained detector, its report and its training curve, not yet written anywhere
/// (leave-one-family-out runs keep them in memory).
pub struct FittedDetector {
    pub detector: Detector,
    pub report: DetectorTrainReport,
    pub curve: TrainingCurve,
}

/// Loss, accuracy and validation-accuracy points of a run.
pub struct TrainingCurve {
    losses: Vec<f32>,
    accs: Vec<f32>,
    val_points: Vec<(f64, f64)>,
}

impl TrainingCurve {
    /// # Errors
    /// When drawing or writing fails.
    pub fn write(&self, path: &Path, steps: u64) -> Result<(), GanError> {
        let curve = |v: &[f32]| plot::smoothed(v);
        plot::line_chart(
            path,
            "Detector fine-tuning",
            ("step", "loss / accuracy"),
            0.0..steps.max(1) as f64,
            0.0..f64::from(self.losses.iter().copied().fold(1.0_f32, f32::max)) * 1.05,
            &[
                Series {
                    label: "training loss (BCE, smoothed)".into(),
                    points: curve(&self.losses),
                    color: PALETTE[1],
                },
                Series {
                    label: "training accuracy (smoothed)".into(),
                    points: curve(&self.accs),
                    color: PALETTE[0],
                },
                Series {
                    label: "validation accuracy (logit 0, clean + augmented)".into(),
                    points: self.val_points.clone(),
                    color: PALETTE[2],
                },
            ],
        )
    }
}

/// Trains and calibrates a detector of `model` against the generators of `mix`; writes
/// nothing. The steps, in order (each draws from the one seeded stream in turn, so a seed gives
/// the same detector): the real images split ([`split_real`]), the domain rules
/// ([`fit_domain`]), the validation images ([`Validation::draw`]), the fine-tuning
/// ([`fine_tune`]), calibration and threshold ([`calibrate`]), the family head, the card.
///
/// # Errors
/// Missing dataset or discriminator weights, torch failures.
pub fn fit_detector(
    model: &LoadedModel,
    mix: &FakeMix<'_>,
    dataset_dir: &Path,
    config: &DetectorTrainConfig,
    device: Device,
) -> Result<FittedDetector, GanError> {
    let started = Instant::now();
    let arch = model.card.architecture.clone();
    config.validate()?;
    tch::manual_seed(config.seed as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let dataset = Dataset::split(dataset_dir, Split::Train, arch.image_size, arch.channels)?;
    let split = split_real(dataset.len(), config, &mut rng);
    let (train_seed, val_seed) = (
        TRAIN_SEED_BASE + config.seed,
        VALIDATION_SEED_BASE + config.seed,
    );
    let domain = fit_domain(&dataset, &split.train, &arch, &mut rng);
    let mut images_per_source = BTreeMap::new();
    let validation = Validation::draw(
        &dataset,
        &split.validation,
        mix,
        val_seed,
        &mut images_per_source,
        &mut rng,
    )?;
    let net = DetectorNet::for_training(
        &arch,
        config.input,
        config.network,
        device,
        &model.dir.join(DISCRIMINATOR_FILE),
    )?;
    let curve = fine_tune(
        &net,
        &Steps {
            dataset: &dataset,
            train: &split.train,
            mix,
            seed: train_seed,
            validation: &validation,
            arch: &arch,
            config,
            device,
        },
        &mut images_per_source,
        &mut rng,
    )?;
    let training_time_s = started.elapsed().as_secs_f64();
    let calibrated = calibrate(&net, &validation, &arch, config.seed)?;
    let attribution = fit_attribution(
        &net,
        mix,
        &arch,
        (train_seed ^ ATTRIBUTION_SEED, val_seed ^ ATTRIBUTION_SEED),
        config.attribution_steps,
        &mut rng,
        &mut images_per_source,
    )?;
    let training = training_record(
        config,
        &calibrated,
        RunFacts {
            device,
            training_time_s,
            real_train_images: split.train.len(),
            validation: split.validation.len(),
            train_seed,
            val_seed,
        },
        &images_per_source,
        mix,
    );
    let card = DetectorCard {
        weights: DETECTOR_FILE.to_owned(),
        generator_sha256: Some(model.generator_sha256.clone()),
        calibration: calibrated.calibration,
        threshold: calibrated.threshold,
        domain,
        input: config.input,
        network: config.network,
        attribution: attribution.as_ref().map(|a| a.1.clone()),
        training: Some(training),
        evaluation: None,
        leave_one_family_out: Vec::new(),
    };
    let detector =
        Detector::from_parts(net, arch, card.clone()).with_attribution(attribution.map(|a| a.0));
    let ood = |images: &[DynamicImage]| {
        images
            .iter()
            .filter(|i| detector.out_of_domain(i).is_some())
            .count() as f64
            / images.len().max(1) as f64
    };
    let generated_out_of_domain = ood(&validation.fake);
    let real_out_of_domain = ood(&validation.real);
    Ok(FittedDetector {
        detector,
        report: DetectorTrainReport {
            card,
            images_per_source,
            generated_out_of_domain,
            real_out_of_domain,
        },
        curve,
    })
}

impl DetectorTrainConfig {
    fn validate(&self) -> Result<(), GanError> {
        if self.batch_size == 0 || self.steps == 0 {
            return Err(GanError::Setting(
                "steps and batch size must be positive".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.augmented_share) {
            return Err(GanError::Setting(format!(
                "the augmented share {} is not between 0 and 1",
                self.augmented_share
            )));
        }
        Ok(())
    }
}

/// The real training images by index: a validation block and the images trained on.
struct RealSplit {
    validation: Vec<usize>,
    train: Vec<usize>,
}

/// Shuffles the dataset's indices and cuts off the validation block (at most half the images)
/// and, with `config.real_limit`, the images trained on.
fn split_real(len: usize, config: &DetectorTrainConfig, rng: &mut ChaCha8Rng) -> RealSplit {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    let validation = config.validation.min(len / 2).max(1);
    let (validation, train) = order.split_at(validation);
    let train = match config.real_limit {
        Some(limit) => train[..limit.min(train.len()).max(1)].to_vec(),
        None => train.to_vec(),
    };
    RealSplit {
        validation: validation.to_vec(),
        train,
    }
}

/// The domain rules from (at most 5,000) real training images, clean and augmented.
fn fit_domain(
    dataset: &Dataset,
    train: &[usize],
    arch: &crate::gan::Architecture,
    rng: &mut ChaCha8Rng,
) -> DomainRules {
    let sample: Vec<usize> = train.iter().copied().take(5000).collect();
    let images = to_images(dataset, &sample);
    let border_px = (arch.image_size / 16).max(1);
    let mut stats: Vec<ImageStats> = Vec::with_capacity(images.len() * 2);
    for image in &images {
        stats.push(image_stats(image, arch.image_size, border_px));
        let augmented = random_augment(image, rng);
        stats.push(image_stats(&augmented, arch.image_size, border_px));
    }
    domain_from_stats(arch, &stats, border_px, DOMAIN_MARGIN, MAX_CHROMA)
}

/// The validation images: real and generated, clean and one augmented copy of each.
struct Validation {
    real: Vec<DynamicImage>,
    real_aug: Vec<DynamicImage>,
    fake: Vec<DynamicImage>,
    fake_aug: Vec<DynamicImage>,
}

impl Validation {
    fn draw(
        dataset: &Dataset,
        indices: &[usize],
        mix: &FakeMix<'_>,
        seed: u64,
        images_per_source: &mut BTreeMap<String, u64>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, GanError> {
        let real = to_images(dataset, indices);
        let fake = mix.generate(
            seed,
            &(0..indices.len() as u64).collect::<Vec<_>>(),
            images_per_source,
        )?;
        let real_aug = real.iter().map(|i| random_augment(i, rng)).collect();
        let fake_aug = fake.iter().map(|i| random_augment(i, rng)).collect();
        Ok(Self {
            real,
            real_aug,
            fake,
            fake_aug,
        })
    }

    /// The accuracy curve's images (at most 500 of each kind, clean then augmented): real,
    /// then generated.
    fn curve_sets(&self) -> (Vec<DynamicImage>, Vec<DynamicImage>) {
        let n = self.real.len().min(500);
        let both = |clean: &[DynamicImage], augmented: &[DynamicImage]| {
            clean[..n.min(clean.len())]
                .iter()
                .chain(&augmented[..n.min(augmented.len())])
                .cloned()
                .collect()
        };
        (
            both(&self.real, &self.real_aug),
            both(&self.fake, &self.fake_aug),
        )
    }
}

/// What the fine-tuning steps draw from.
struct Steps<'a> {
    dataset: &'a Dataset,
    train: &'a [usize],
    mix: &'a FakeMix<'a>,
    seed: u64,
    validation: &'a Validation,
    arch: &'a crate::gan::Architecture,
    config: &'a DetectorTrainConfig,
    device: Device,
}

/// Fine-tunes `net`: Adam on binary cross-entropy (real = 1), the learning rate constant for
/// half the steps, then linearly down to 5%; real and generated batches augmented alike.
fn fine_tune(
    net: &DetectorNet,
    s: &Steps<'_>,
    images_per_source: &mut BTreeMap<String, u64>,
    rng: &mut ChaCha8Rng,
) -> Result<TrainingCurve, GanError> {
    let (config, arch, device) = (s.config, s.arch, s.device);
    let mut opt = nn::Adam::default().build(net.var_store(), config.learning_rate)?;
    let bar = crate::progress::bar(config.steps, "detector steps", config.progress);
    let (curve_real, curve_fake) = s.validation.curve_sets();
    let val_accuracy = |net: &DetectorNet| -> Result<f64, GanError> {
        let r = forward_logits(net, &curve_real, arch)?;
        let f = forward_logits(net, &curve_fake, arch)?;
        let right =
            r.iter().filter(|&&l| l > 0.0).count() + f.iter().filter(|&&l| l <= 0.0).count();
        Ok(right as f64 / (r.len() + f.len()) as f64)
    };
    let b = config.batch_size;
    let targets = Tensor::cat(
        &[
            Tensor::ones([b as i64], (Kind::Float, device)),
            Tensor::zeros([b as i64], (Kind::Float, device)),
        ],
        0,
    );
    let mut losses: Vec<f32> = Vec::with_capacity(config.steps as usize);
    let mut accs: Vec<f32> = Vec::with_capacity(config.steps as usize);
    let mut val_points = vec![(0.0, val_accuracy(net)?)];
    for step in 0..config.steps {
        let progress = step as f64 / config.steps as f64;
        let decay = if progress < 0.5 {
            1.0
        } else {
            1.0 - 1.9 * (progress - 0.5)
        };
        opt.set_lr(config.learning_rate * decay);
        let real_batch: Vec<usize> = (0..b)
            .map(|_| s.train[rng.gen_range(0..s.train.len())])
            .collect();
        let indices: Vec<u64> = (step * b as u64..(step + 1) * b as u64).collect();
        let fakes = s.mix.generate(s.seed, &indices, images_per_source)?;
        let batch: Vec<DynamicImage> = to_images(s.dataset, &real_batch)
            .iter()
            .chain(&fakes)
            .map(|i| {
                if rng.gen_bool(config.augmented_share) {
                    random_augment(i, rng)
                } else {
                    i.clone()
                }
            })
            .collect();
        let size = i64::from(arch.image_size);
        let x = Tensor::f_from_slice(&detector_input_random(&batch, arch, rng))?
            .f_view([2 * b as i64, i64::from(arch.channels), size, size])?
            .f_to_device(device)?;
        let logits = net.forward_t(&x, true);
        let loss = logits.f_binary_cross_entropy_with_logits::<Tensor>(
            &targets,
            None,
            None,
            Reduction::Mean,
        )?;
        opt.backward_step(&loss);
        let acc = tch::no_grad(|| {
            logits
                .gt(0.0)
                .to_kind(Kind::Float)
                .eq_tensor(&targets)
                .to_kind(Kind::Float)
                .mean(Kind::Float)
        });
        losses.push(loss.f_double_value(&[])? as f32);
        accs.push(acc.f_double_value(&[])? as f32);
        if (step + 1) % config.eval_every.max(1) == 0 || step + 1 == config.steps {
            let a = val_accuracy(net)?;
            val_points.push(((step + 1) as f64, a));
            bar.set_message(format!(
                "loss {:.3}, val acc {:.3}",
                losses[losses.len() - 1],
                a
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(TrainingCurve {
        losses,
        accs,
        val_points,
    })
}

/// Calibration and threshold, fitted on the whole validation set.
struct Calibrated {
    calibration: Calibration,
    threshold: f64,
    /// Calibrated probabilities: real clean, real augmented, generated clean, generated
    /// augmented.
    real: Vec<f64>,
    real_aug: Vec<f64>,
    fake: Vec<f64>,
    fake_aug: Vec<f64>,
    /// The real validation images under each standard transform but the first (clean).
    by_transform: Vec<(String, Vec<f64>)>,
}

/// Platt scaling on the validation logits, then the threshold: the highest of the real images'
/// thresholds for [`VALIDATION_FPR`], clean, augmented and under each standard transform the
/// product promises a false-positive rate for (JPEG 75, 0.5x, the 10% crop; drawn from a
/// stream of their own, so the other draws stay as they were).
fn calibrate(
    net: &DetectorNet,
    validation: &Validation,
    arch: &crate::gan::Architecture,
    seed: u64,
) -> Result<Calibrated, GanError> {
    let lr = forward_logits(net, &validation.real, arch)?;
    let lra = forward_logits(net, &validation.real_aug, arch)?;
    let lf = forward_logits(net, &validation.fake, arch)?;
    let lfa = forward_logits(net, &validation.fake_aug, arch)?;
    let all: Vec<f64> = lr
        .iter()
        .chain(&lra)
        .chain(&lf)
        .chain(&lfa)
        .copied()
        .collect();
    let labels: Vec<bool> = std::iter::repeat_n(false, lr.len() + lra.len())
        .chain(std::iter::repeat_n(true, lf.len() + lfa.len()))
        .collect();
    let calibration = Calibration::fit_platt(&all, &labels)?;
    let p = |l: &[f64]| -> Vec<f64> { l.iter().map(|&x| calibration.probability(x)).collect() };
    let mut transform_rng = ChaCha8Rng::seed_from_u64(seed ^ TRANSFORM_SEED);
    let mut by_transform = Vec::new();
    for t in Transform::STANDARD.iter().skip(1) {
        let images: Vec<DynamicImage> = validation
            .real
            .iter()
            .map(|i| t.apply(i, &mut transform_rng))
            .collect();
        by_transform.push((t.name(), p(&forward_logits(net, &images, arch)?)));
    }
    let (real, real_aug) = (p(&lr), p(&lra));
    let threshold = by_transform
        .iter()
        .map(|(_, v)| threshold_for_fpr(v, VALIDATION_FPR))
        .fold(
            threshold_for_fpr(&real, VALIDATION_FPR)
                .max(threshold_for_fpr(&real_aug, VALIDATION_FPR)),
            f64::max,
        )
        .clamp(1e-6, 1.0 - 1e-6);
    Ok(Calibrated {
        real,
        real_aug,
        fake: p(&lf),
        fake_aug: p(&lfa),
        calibration,
        threshold,
        by_transform,
    })
}

/// Facts of a run the card records.
struct RunFacts {
    device: Device,
    training_time_s: f64,
    real_train_images: usize,
    validation: usize,
    train_seed: u64,
    val_seed: u64,
}

/// The card's `[detector.training]`: the recipe, the run and the validation figures at the
/// chosen threshold.
fn training_record(
    config: &DetectorTrainConfig,
    c: &Calibrated,
    run: RunFacts,
    images_per_source: &BTreeMap<String, u64>,
    mix: &FakeMix<'_>,
) -> DetectorTraining {
    let rate =
        |v: &[f64]| v.iter().filter(|&&x| x >= c.threshold).count() as f64 / v.len().max(1) as f64;
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    let all_p: Vec<f64> = c
        .real
        .iter()
        .chain(&c.real_aug)
        .chain(&c.fake)
        .chain(&c.fake_aug)
        .copied()
        .collect();
    let labels: Vec<bool> = std::iter::repeat_n(false, c.real.len() + c.real_aug.len())
        .chain(std::iter::repeat_n(true, c.fake.len() + c.fake_aug.len()))
        .collect();
    let tpr_all: Vec<f64> = c.fake.iter().chain(&c.fake_aug).copied().collect();
    let b = config.batch_size;
    DetectorTraining {
        method: format!(
            "{} (all layers, Adam, binary cross-entropy, \
             real = 1; learning rate constant for half the steps, then linearly down to 5%) on real train images vs generated images (with a zoo: every other one from the model's generator, the rest from the zoo members in turn), both augmented alike; input {}; inputs with sides of 3/4 to 1x the model size placed on a black canvas at native scale (one random whole-pixel placement in training, the mean logit over all of them otherwise), others resized",
            match config.network {
                DetectorNetwork::Discriminator => format!("fine-tune of {DISCRIMINATOR_FILE}"),
                DetectorNetwork::Plain => format!("fine-tune of {DISCRIMINATOR_FILE} without its spectral norm (each weight divided by it at the start)"),
            },
            config.input.name()
        ),
        steps: config.steps,
        batch_size: b as u32,
        learning_rate: config.learning_rate,
        seed: config.seed,
        device: crate::device::DeviceName(run.device).to_string(),
        training_time_s: round(run.training_time_s, 1),
        real_train_images: run.real_train_images as u64,
        generated_train_images: config.steps * b as u64,
        generated_train_seed: run.train_seed,
        real_validation_images: run.validation as u64,
        generated_validation_images: run.validation as u64,
        generated_validation_seed: run.val_seed,
        augmented_share: config.augmented_share,
        augmentation: "per augmented image, p=0.6 crop 0-15% of each side at a random offset; p=1/4 \
                       Gaussian blur sigma 0.3-1.2; p=1/2 downscale x0.4-1.0 (random \
                       filter); p=1/2 JPEG quality 50-95. Validation: clean + one \
                       augmented copy of each image"
            .into(),
        validation_ap: round(average_precision(&all_p, &labels), 5),
        validation_fpr_clean: round(rate(&c.real), 5),
        validation_fpr_augmented: round(rate(&c.real_aug), 5),
        validation_tpr: round(rate(&tpr_all), 5),
        validation_fpr_by_transform: c
            .by_transform
            .iter()
            .map(|(name, v)| (name.clone(), round(rate(v), 5)))
            .collect(),
        generated_sources: images_per_source.clone(),
        held_out_families: mix.held_out().iter().map(ToString::to_string).collect(),
    }
}
