//! Finding and loading a model directory: `model.toml` + generator and discriminator weights.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use tch::Device;

use super::card::ModelCard;
use super::model::{images_to_input, latents_for, Discriminator, Generator};
use super::train::model_dir;
use super::{GanError, CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE};

/// A model ready to run: card, generator (inference mode) and discriminator (its detector is
/// loaded beside it: `inference::ServedModel`).
/// Holds tensors: keep it on one thread and talk to it in images and `Vec<f32>`.
#[derive(Debug)]
pub struct LoadedModel {
    pub name: String,
    pub dir: PathBuf,
    pub card: ModelCard,
    pub generator: Generator,
    pub discriminator: Discriminator,
    /// SHA-256 (hex) of the generator weights: the model version images are stamped with, and
    /// what a detector must have been trained against. Hashed once, at load.
    pub generator_sha256: String,
}

/// The names of the model directories (those with a `model.toml`) under `models_dir`.
#[must_use]
pub fn list_models(models_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(models_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(CARD_FILE).is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Loads model `name` from `models_dir/name/`, checking that the weights match the card.
///
/// # Errors
/// An unknown name (listing the available ones), a missing or invalid card, or missing,
/// corrupt or mismatched weights; each error names the file.
pub fn load_model(models_dir: &Path, name: &str, device: Device) -> Result<LoadedModel, GanError> {
    let dir = model_dir(models_dir, name)?;
    let card_path = dir.join(CARD_FILE);
    if !card_path.is_file() {
        let available = list_models(models_dir);
        return Err(GanError::UnknownModel {
            name: name.to_owned(),
            dir: models_dir.to_owned(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        });
    }
    let card = ModelCard::load(&card_path)?;
    let generator_path = dir.join(GENERATOR_FILE);
    let generator_sha256 = generator_sha256(&generator_path)?;
    let generator = Generator::load(&card.architecture, device, &generator_path)?;
    let discriminator =
        Discriminator::load(&card.architecture, device, &dir.join(DISCRIMINATOR_FILE))?;
    Ok(LoadedModel {
        name: name.to_owned(),
        dir,
        card,
        generator,
        discriminator,
        generator_sha256,
    })
}

/// SHA-256 (hex) of a weights file: what a detector records of the generator it was trained
/// against.
///
/// # Errors
/// When the file cannot be read.
pub fn generator_sha256(path: &Path) -> Result<String, GanError> {
    let bytes = std::fs::read(path).map_err(|e| GanError::io(path, e))?;
    Ok(hex::encode(crate::fingerprint::sha256(&bytes)))
}

impl LoadedModel {
    #[must_use]
    pub fn latent_dim(&self) -> usize {
        self.card.architecture.latent_dim as usize
    }

    #[must_use]
    pub fn image_size(&self) -> u32 {
        self.card.architecture.image_size
    }

    /// Images `indices` of a request with `seed`, each from [`latents_for`]`(seed, index)`.
    ///
    /// # Errors
    /// When torch fails.
    pub fn generate(&self, seed: u64, indices: &[u64]) -> Result<Vec<DynamicImage>, GanError> {
        let dim = self.latent_dim();
        let latents: Vec<f32> = indices
            .iter()
            .flat_map(|&i| latents_for(seed, i, dim))
            .collect();
        self.generator.generate_flat(&latents)
    }

    /// Raw discriminator logits (higher: more like the training data, lower: generated).
    ///
    /// # Errors
    /// When torch fails.
    pub fn detector_logits(&self, images: &[DynamicImage]) -> Result<Vec<f32>, GanError> {
        self.discriminator.logits(&self.detector_input(images))
    }

    /// The discriminator's input for images: resized, centre-cropped, `[-1, 1]`, NCHW.
    #[must_use]
    pub fn detector_input(&self, images: &[DynamicImage]) -> Vec<f32> {
        images_to_input(images, &self.card.architecture)
    }
}
