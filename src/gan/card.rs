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

/// What it takes to rebuild the networks the weights belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// Always "dcgan" for now: transposed-conv generator with batch norm, conv discriminator
    /// with spectral norm.
    pub family: String,
    /// Square images of this many pixels a side: a power of two from 16 to 256.
    pub image_size: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u32,
    pub latent_dim: u32,
    /// Channels of the generator's last hidden layer; each layer nearer the latent doubles it.
    pub g_width: u32,
    /// Channels of the discriminator's first layer; each later layer doubles it.
    pub d_width: u32,
    /// "non-saturating" or "hinge".
    pub loss: String,
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

/// Settings of the discriminator used as a synthetic-image detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorCard {
    /// Logit at or below which an image is called generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Anything else the detection work records.
    #[serde(flatten)]
    pub extra: toml::Table,
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
        if self.family != "dcgan" {
            return Err(format!(
                "architecture.family {:?} is not \"dcgan\"",
                self.family
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
        if self.loss != "non-saturating" && self.loss != "hinge" {
            return Err(format!(
                "architecture.loss {:?} is not \"non-saturating\" or \"hinge\"",
                self.loss
            ));
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
