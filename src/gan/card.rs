//! `model.toml`: the model card stored next to the weights.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::GanError;

/// The card of a GAN model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: String,
    pub architecture: Architecture,
    pub training: TrainingCard,
    /// Filled by `hallmark evaluate --quality --write-card`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsCard>,
    /// Filled by the synthetic-image detection work (threshold on the discriminator logit etc.).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorCard>,
}

/// How the networks are built (`architecture.family`, lower case in the card). A new kind of
/// network is a new variant: the compiler then names every place that must handle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchFamily {
    /// A transposed-conv generator with batch norm, a conv discriminator with spectral norm.
    Dcgan,
    /// ProGAN: grown from 4x4, equalised learning rate, pixel norm, minibatch standard
    /// deviation; see `gan::progressive`.
    Progressive,
}

impl ArchFamily {
    /// The card's name for it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dcgan => "dcgan",
            Self::Progressive => "progressive",
        }
    }
}

impl std::fmt::Display for ArchFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The adversarial loss a GAN is trained with (`architecture.loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// `non-saturating`: softplus on the logits (the original GAN loss, generator side
    /// non-saturating).
    NonSaturating,
    /// `hinge`: max(0, 1 - D(real)) + max(0, 1 + D(fake)) for the discriminator, -D(fake) for
    /// the generator.
    Hinge,
}

impl Loss {
    /// The card's name for it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NonSaturating => "non-saturating",
            Self::Hinge => "hinge",
        }
    }
}

impl std::str::FromStr for Loss {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::NonSaturating, Self::Hinge]
            .into_iter()
            .find(|loss| loss.name() == name)
            .ok_or_else(|| format!("loss {name:?} is not \"non-saturating\" or \"hinge\""))
    }
}

/// What it takes to rebuild the networks the weights belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    pub family: ArchFamily,
    /// Square images of this many pixels a side: a power of two from 16 to 256.
    pub image_size: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u32,
    pub latent_dim: u32,
    /// Channels of the generator's last hidden layer; each layer nearer the latent doubles it.
    pub g_width: u32,
    /// Channels of the discriminator's first layer; each later layer doubles it.
    pub d_width: u32,
    pub loss: Loss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingCard {
    /// Where the images came from (a path) and what kind of dataset it was.
    pub dataset: String,
    pub dataset_images: u64,
    pub steps: u64,
    pub batch_size: u32,
    pub learning_rate: f64,
    pub seed: u64,
    pub device: String,
    /// Wall-clock training time over all runs (resumes add up), seconds.
    pub training_time_s: f64,
    /// Training images per second of the last run (real images seen by D).
    #[serde(default)]
    pub images_per_s: f64,
    /// The served generator is an exponential moving average of the trained one's weights
    /// with this decay per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Weight of the R1 penalty on the discriminator's gradient at real images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r1_gamma: Option<f64>,
    /// A progressive model's schedule: steps per resolution, and per fade-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fade_steps: Option<u64>,
    /// Mixed precision (autocast, with a dynamic loss scale) on CUDA.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mixed_precision: bool,
}

/// The offline quality metric (see `hallmark evaluate --quality`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsCard {
    /// Fréchet distance between classifier features of generated and real test images.
    pub fd: f64,
    /// Fréchet distance between real train and real test images: the best reachable.
    pub fd_floor: f64,
    /// Images on each side.
    pub samples: u64,
    pub classifier: String,
    /// Entropy of the classifier's labels of generated images, bits (uniform over 10: 3.32).
    pub label_entropy_bits: f64,
    /// Classes that got at least 2% of the generated images.
    pub classes_covered: u32,
    /// Share of generated images per class, in class order.
    #[serde(default)]
    pub label_distribution: Vec<f64>,
}

/// The synthetic-image detector (`hallmark train-detector`): a fine-tuned copy of the
/// discriminator in its own weights file, its calibration, decision threshold and domain rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorCard {
    /// Weights file in the model directory (a discriminator-shaped network).
    #[serde(default = "default_detector_weights")]
    pub weights: String,
    /// SHA-256 (hex) of the generator weights the detector was trained against: a detector
    /// whose generator has changed since is refused when loading (absent in hand-made cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_sha256: Option<String>,
    /// Maps the network's logit (high: real) to a probability of "synthetic".
    pub calibration: Calibration,
    /// Calibrated probability at or above which an image is called likely synthetic.
    pub threshold: f64,
    /// Which uploads the detector may score at all.
    pub domain: DomainRules,
    /// What the network sees: the pixels, or the pixels and their neighbouring-pixel
    /// residual (absent in older cards: pixels).
    #[serde(default)]
    pub input: DetectorInput,
    /// The network: the model's discriminator fine-tuned with its spectral norm, or without it
    /// (absent in older cards: the former).
    #[serde(default)]
    pub network: DetectorNetwork,
    /// Which generator family a synthetic image is nearest to (absent: not trained, e.g. no
    /// zoo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<AttributionCard>,
    /// How the detector was trained (absent for hand-made cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<DetectorTraining>,
    /// Filled by `hallmark evaluate --detector --write-card`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<DetectorEvaluation>,
    /// Filled by `hallmark evaluate --leave-one-out --write-card`: each zoo family scored by a
    /// detector trained without it, with this detector's recipe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leave_one_family_out: Vec<FamilyScore>,
}

/// The family-attribution head of a detector: a linear softmax over the detector's last
/// hidden features, one class per generator family it was trained against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionCard {
    /// Weights file in the model directory.
    pub weights: String,
    /// Class order of the head (family names).
    pub families: Vec<String>,
    /// The nearest family is named only at or above this probability.
    pub min_probability: f64,
    /// Validation images (clean and augmented) whose family was the head's first choice.
    pub validation_accuracy: f64,
    pub steps: u64,
}

/// The detector network's input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorInput {
    /// The image's channels, in [-1, 1].
    #[default]
    Pixels,
    /// The image's channels, and beside each its neighbouring-pixel residual: the image minus
    /// its nearest-neighbour 2x down-then-up copy (NPR, Tan et al. 2024), which isolates the
    /// traces upsampling layers leave between neighbouring pixels.
    PixelsResidual,
}

impl DetectorInput {
    /// The name on the command line and in the card.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Pixels => "pixels",
            Self::PixelsResidual => "pixels-residual",
        }
    }

    /// Network input channels for images of `channels` channels.
    #[must_use]
    pub fn channels(self, channels: u32) -> u32 {
        match self {
            Self::Pixels => channels,
            Self::PixelsResidual => 2 * channels,
        }
    }
}

/// The detector network's kind. Both have the discriminator's shape (4x4 convolutions of
/// stride 2 doubling in width, leaky ReLU, a 4x4 convolution to one logit, no batch norm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorNetwork {
    /// A copy of the model's discriminator, spectrally normalised, fine-tuned.
    #[default]
    Discriminator,
    /// The same convolutions without spectral norm: they start as the discriminator (each
    /// weight divided by its spectral norm) and are fine-tuned free of the Lipschitz bound
    /// that keeps a GAN's training stable but keeps a detector from separating images that
    /// differ by a few grey levels (see `docs/detector-evaluation.txt`).
    Plain,
}

impl DetectorNetwork {
    /// The name on the command line and in the card.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Discriminator => "discriminator",
            Self::Plain => "plain",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "discriminator" => Ok(Self::Discriminator),
            "plain" => Ok(Self::Plain),
            other => Err(format!(
                "unknown detector network {other:?}: discriminator or plain"
            )),
        }
    }
}

fn default_detector_weights() -> String {
    super::DETECTOR_FILE.to_owned()
}

/// Platt scaling: `p(synthetic) = sigmoid(a * logit + b)`; `a` is negative because the
/// network's logit is high for real images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub method: CalibrationMethod,
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationMethod {
    Platt,
}

/// Rules that mark an upload out of the model's domain instead of scoring it. Pixel statistics
/// are on the image resized to the model size (`fit_square`, grey, 0..1); the ranges come from
/// the real training images (clean and augmented like in training), widened by `margin`, the
/// low ends of `mean` and `std` never below half the observed 0.1st percentile (see
/// `hallmark train-detector`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRules {
    /// Shorter side below this many pixels: too small to say anything.
    pub min_side: u32,
    /// Longer side above this many pixels: far larger than anything the model makes.
    pub max_side: u32,
    /// Longer side / shorter side above this: a crop would discard too much.
    pub max_aspect: f64,
    /// For a grey model: mean chroma (max - min of R, G, B, 0..1) above this means a colour
    /// image. Not checked for colour models.
    pub max_chroma: f64,
    /// Width in pixels (at model size) of the border ring whose mean intensity is checked.
    pub border_px: u32,
    /// Allowed [low, high] mean intensity of the border ring.
    pub border_mean: [f64; 2],
    /// Allowed [low, high] mean intensity of the image.
    pub mean: [f64; 2],
    /// Allowed [low, high] standard deviation of the intensity.
    pub std: [f64; 2],
    /// How much the observed training ranges were widened (0..1 intensity units).
    #[serde(default)]
    pub margin: f64,
}

/// Facts of a `train-detector` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorTraining {
    /// "fine-tune of discriminator.safetensors" and the augmentation.
    pub method: String,
    pub steps: u64,
    /// Real and generated images per step (each).
    pub batch_size: u32,
    pub learning_rate: f64,
    pub seed: u64,
    pub device: String,
    pub training_time_s: f64,
    /// Real training images used (validation ones excluded).
    pub real_train_images: u64,
    /// Generated training images seen (fresh every step).
    pub generated_train_images: u64,
    /// Latent seed of the generated training images (`latents_for(seed, index)`).
    pub generated_train_seed: u64,
    pub real_validation_images: u64,
    pub generated_validation_images: u64,
    pub generated_validation_seed: u64,
    pub augmentation: String,
    /// Share of training images (real and generated alike) that get the random augmentation;
    /// the rest stay clean (absent in older cards: all of them).
    #[serde(default = "all")]
    pub augmented_share: f64,
    /// Validation (clean and augmented together): average precision, positive = synthetic.
    pub validation_ap: f64,
    /// Validation real images called synthetic at the threshold, clean and augmented.
    pub validation_fpr_clean: f64,
    pub validation_fpr_augmented: f64,
    /// Validation real images called synthetic under each standard transform (`jpeg75`,
    /// `resize0.5x`, `crop10%`), each at most 0.8% by the threshold rule.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub validation_fpr_by_transform: std::collections::BTreeMap<String, f64>,
    /// Validation generated images called synthetic at the threshold (clean and augmented).
    pub validation_tpr: f64,
    /// The generators of the generated images (`own:<model>`, `zoo:<member>`) and how many
    /// training images each gave (absent in older cards: only the model's own generator).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub generated_sources: std::collections::BTreeMap<String, u64>,
    /// Families held out of training (leave-one-family-out evaluation runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_out_families: Vec<String>,
}

fn all() -> f64 {
    1.0
}

/// `hallmark evaluate --detector` results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorEvaluation {
    pub real_images: u64,
    pub real_source: String,
    pub generated_images: u64,
    pub generated_seed: u64,
    /// How each transform is defined.
    pub transforms: String,
    pub detector: Vec<DetectorScore>,
    /// `None` until `hallmark evaluate --registry --write-card` (or `--detector` without
    /// `--no-registry`) has measured the registry for this generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryEvaluation>,
}

/// One family's figures under one transform, from a detector that never saw the family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyScore {
    pub family: String,
    /// Zoo members (and our own generator for its family) whose images were scored.
    pub generators: Vec<String>,
    /// The generators whose images trained that detector (none of `generators`).
    pub trained_on: Vec<String>,
    pub transform: String,
    pub roc_auc: f64,
    pub ap: f64,
    /// The family's images called likely synthetic at that detector's calibrated threshold.
    pub tpr_at_threshold: f64,
    /// Real test images called likely synthetic at that threshold.
    pub fpr_real: f64,
    /// The threshold (calibrated probability) of the held-out detector.
    pub threshold: f64,
    /// The same figures for each of `generators` alone (absent in older cards): a family's
    /// figure pools generators of very different strength, e.g. our own generator and small
    /// zoo members of its family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_generator: Vec<GeneratorScore>,
}

/// One held-out generator's images against the real test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorScore {
    pub generator: String,
    pub roc_auc: f64,
    pub ap: f64,
}

/// Detector figures under one transform (positive = synthetic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorScore {
    pub transform: String,
    pub ap: f64,
    pub roc_auc: f64,
    pub tpr_at_1pct_fpr: f64,
    /// Accuracy of `likely_synthetic` over real and generated images.
    pub accuracy: f64,
    /// Real images called likely synthetic.
    pub fpr_real: f64,
    /// Generated images called likely synthetic.
    pub tpr: f64,
    /// Images (of both kinds) the domain rules refused.
    pub out_of_domain: u64,
}

/// Perceptual-hash registry match under the transforms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEvaluation {
    pub registered: u64,
    /// The distance the figures are for (settings verify.phash_max_distance).
    pub max_distance: u32,
    pub recall: Vec<TransformRate>,
    /// Real test images (clean and under every transform) within the distance of a
    /// registered hash.
    pub false_matches: u64,
    pub real_images_checked: u64,
    /// The smallest distance with at least 99% recall under every transform, if any.
    pub recommended_max_distance: Option<u32>,
    /// The service's actual match: pHash candidates confirmed by aligning the original's pixels
    /// (the figures above are for the pHash alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<ConfirmedMatch>,
}

/// Registry match in two stages (`src/fingerprint/align.rs`), as `/v1/verify` runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmedMatch {
    pub max_candidates: u64,
    /// The confirmation thresholds the figures are for: chosen on the calibration split (see
    /// `splits`), and shipped as settings verify.min_similarity[_downscaled] and
    /// verify.min_reenacted_similarity[_downscaled] (cards measured before the split: the
    /// configured values, chosen in-sample).
    pub min_similarity: f64,
    pub min_similarity_downscaled: f64,
    /// Transformed generated images matched to their own original.
    pub recall: Vec<TransformRate>,
    /// Share of transformed generated images whose original was among the candidates.
    pub candidate_recall: Vec<TransformRate>,
    /// Held-out real images (counted once over clean and every edit) matched to any registered
    /// image.
    pub false_matches: u64,
    /// The smallest thresholds with no false match on the calibration split (before the
    /// calibration split existed: in this run's real images, in-sample).
    pub recommended_min_similarity: f64,
    pub recommended_min_similarity_downscaled: f64,
    /// The re-enactment tier's threshold (settings verify.min_reenacted_similarity) and the one
    /// the calibration split chose; absent from cards measured before re-enactment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reenacted_similarity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reenacted_similarity_downscaled: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align_from: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_min_reenacted_similarity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_min_reenacted_similarity_downscaled: Option<f64>,
    /// Which real images chose the thresholds and which judged them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<RegistrySplits>,
}

/// The registry study's real images: a calibration split the thresholds are chosen on, and a
/// disjoint held-out split the false matches (`ConfirmedMatch::false_matches`) are counted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrySplits {
    pub calibration: String,
    pub calibration_images: u64,
    pub held_out: String,
    pub held_out_images: u64,
    /// Calibration images matched at the configured thresholds.
    pub calibration_false_matches: u64,
    /// Each configured threshold minus the highest held-out real image's score in its tier.
    pub margin_reenacted: f64,
    pub margin_reenacted_downscaled: f64,
    pub margin_aligned: f64,
    pub margin_aligned_downscaled: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformRate {
    pub transform: String,
    pub rate: f64,
}

impl Architecture {
    /// Number of stride-2 stages between 4x4 and the image size.
    #[must_use]
    pub fn stages(&self) -> u32 {
        self.image_size.trailing_zeros().saturating_sub(2)
    }

    /// Checks that the numbers describe networks we can build.
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.family == ArchFamily::Progressive && self.loss != Loss::NonSaturating {
            return Err(format!(
                "architecture.loss {:?}: a progressive model is trained with the non-saturating loss",
                self.loss.name()
            ));
        }
        if !self.image_size.is_power_of_two() || !(16..=256).contains(&self.image_size) {
            return Err(format!(
                "architecture.image_size {} is not a power of two from 16 to 256",
                self.image_size
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(format!(
                "architecture.channels {} is not 1 or 3",
                self.channels
            ));
        }
        if !(1..=4096).contains(&self.latent_dim) {
            return Err(format!(
                "architecture.latent_dim {} is not in 1..=4096",
                self.latent_dim
            ));
        }
        for (field, width) in [("g_width", self.g_width), ("d_width", self.d_width)] {
            let top = u64::from(width) << (self.stages() - 1);
            if width == 0 || top > 8192 {
                return Err(format!(
                    "architecture.{field} {width} gives layers of 0 or more than 8192 channels"
                ));
            }
        }
        Ok(())
    }
}

impl ModelCard {
    /// Reads and validates a card.
    ///
    /// # Errors
    /// When the file is missing, not TOML, lacks a field, or describes impossible networks.
    pub fn load(path: &Path) -> Result<Self, GanError> {
        let text = std::fs::read_to_string(path).map_err(|e| GanError::io(path, e))?;
        let card: Self = toml::from_str(&text).map_err(|e| GanError::Card {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        card.architecture
            .validate()
            .map_err(|message| GanError::Card {
                path: path.to_owned(),
                message,
            })?;
        Ok(card)
    }

    /// Writes the card (atomically: a temporary file renamed over the old one).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        let text = toml::to_string_pretty(self).map_err(|e| GanError::Card {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        write_atomic(path, text.as_bytes())
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GanError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| GanError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| GanError::io(path, e))
}
