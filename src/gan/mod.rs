//! The GAN: a DCGAN-family generator and a spectrally normalised discriminator in `tch`,
//! their datasets, training, checkpoints, model cards (including the detector's section, which
//! the card file holds), the model catalogue and the offline quality metric. The detector built
//! from the discriminator is its own room, `detect` (`src/detect/`).
//!
//! Threading: `tch` tensors stay on the thread that made them. Everything a caller on another
//! thread needs is expressed in plain values: latents are `Vec<f32>` ([`latents_for`]), images
//! are [`image::DynamicImage`], discriminator logits are `Vec<f32>`.

pub mod adam;
pub mod card;
pub mod catalog;
pub mod data;
pub mod model;
pub(crate) mod plot;
pub mod progressive;
pub mod quality;
pub mod train;
pub mod zoo;

use std::path::{Path, PathBuf};

pub use card::{
    ArchFamily, Architecture, Calibration, CalibrationMethod, DetectorCard, DetectorEvaluation,
    DomainRules, MetricsCard, ModelCard, TrainingCard,
};
pub use catalog::{load_model, LoadedModel};
pub use model::{
    images_to_input, latents_for, tensor_to_images, Discriminator, GanNets, Generator,
};

/// File names inside a model directory.
pub const CARD_FILE: &str = "model.toml";
pub const GENERATOR_FILE: &str = "generator.safetensors";
pub const DISCRIMINATOR_FILE: &str = "discriminator.safetensors";
/// The synthetic-image detector's weights (a fine-tuned copy of the discriminator).
pub const DETECTOR_FILE: &str = "detector.safetensors";
pub const SAMPLES_FILE: &str = "samples.png";
/// With a moving average of the generator, the trained (not averaged) generator, for
/// `--resume`.
pub const TRAINED_GENERATOR_FILE: &str = "generator-trained.safetensors";
/// Adam's moments of the generator and the discriminator, for `--resume`.
pub const OPTIMIZER_G_FILE: &str = "optimizer-g.safetensors";
pub const OPTIMIZER_D_FILE: &str = "optimizer-d.safetensors";
pub const LOSS_FILE: &str = "loss.png";

/// Everything that can go wrong loading, training or running a model. Each variant that
/// concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum GanError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model {name:?} not found in {dir} (available: {available})")]
    UnknownModel {
        name: String,
        dir: PathBuf,
        available: String,
    },
    #[error("invalid model card {path}: {message}")]
    Card { path: PathBuf, message: String },
    #[error("invalid weights file {path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("dataset {path}: {message}")]
    Dataset { path: PathBuf, message: String },
    /// An architecture that cannot be built, or weights and networks of different architectures.
    #[error("architecture: {0}")]
    Architecture(String),
    /// A setting of a training, zoo or detector command outside what it accepts.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// Tensors, images or buffers whose dimensions do not fit each other.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A plot that could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot { path: PathBuf, message: String },
    /// Training state or a card that could not be serialised.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The model thread or a worker thread that failed to start or died.
    #[error("thread: {0}")]
    Thread(String),
    /// A broken invariant of the training code (a bug, not bad input).
    #[error("internal: {0}")]
    Internal(String),
    #[error("cannot write image {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl GanError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
