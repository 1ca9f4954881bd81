//! Which generator family a synthetic image's traces are nearest to: a linear softmax head on
//! the detector's last hidden features (the detector itself frozen), trained after the
//! detector on generated images of each family it was trained against, with the same
//! augmentation. It only ever names families the detector saw; a verdict names one only when
//! the image is called likely synthetic and the head is at least `min_probability` sure, so an
//! image unlike all of them is not given a confident but meaningless family.

use std::collections::BTreeMap;
use std::path::Path;

use image::DynamicImage;
use rand::Rng;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::augment::random_augment;
use super::detector::{detector_features, detector_input_random, DetectorNet};
use super::mix::FakeMix;
use crate::gan::card::{Architecture, AttributionCard};
use crate::gan::zoo::Family;
use crate::gan::GanError;

/// The head's weights file in the model directory.
pub const ATTRIBUTION_FILE: &str = "detector-families.safetensors";
/// Probability at or above which the nearest family is named.
pub const MIN_PROBABILITY: f64 = 0.6;
/// Images per family and step, and validation images per family.
const BATCH_PER_FAMILY: usize = 24;
const VALIDATION_PER_FAMILY: usize = 100;

/// A loaded head.
#[derive(Debug)]
pub struct Attribution {
    vs: nn::VarStore,
    head: nn::Linear,
    families: Vec<Family>,
    min_probability: f64,
}

impl Attribution {
    fn build(width: i64, families: Vec<Family>, min_probability: f64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let head = nn::linear(
            vs.root() / "head",
            width,
            families.len() as i64,
            Default::default(),
        );
        Self {
            vs,
            head,
            families,
            min_probability,
        }
    }

    /// # Errors
    /// When the card names an unknown family, or the weights do not load.
    pub fn load(
        dir: &Path,
        card: &AttributionCard,
        width: i64,
        device: Device,
    ) -> Result<Self, GanError> {
        let families = card
            .families
            .iter()
            .map(|f| Family::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut head = Self::build(width, families, card.min_probability, device);
        crate::gan::model::load_weights(&mut head.vs, &dir.join(&card.weights))?;
        Ok(head)
    }

    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        crate::gan::model::save_weights(&self.vs, path)
    }

    /// The most likely family of each row of `features` and its probability.
    ///
    /// # Errors
    /// When torch fails.
    pub fn nearest(&self, features: &Tensor) -> Result<Vec<(Family, f64)>, GanError> {
        let probs = tch::no_grad(|| self.head.forward(features).softmax(-1, Kind::Float));
        let (best, index) = probs.f_max_dim(1, false)?;
        let best = Vec::<f64>::try_from(&best.f_to_kind(Kind::Double)?)?;
        let index = Vec::<i64>::try_from(&index)?;
        Ok(index
            .into_iter()
            .zip(best)
            .map(|(i, p)| (self.families[i as usize], p))
            .collect())
    }

    #[must_use]
    pub fn min_probability(&self) -> f64 {
        self.min_probability
    }
}

/// Trains the head of `net` on the families of `mix`; `None` when the mix has fewer than two.
///
/// # Errors
/// When a generator or torch fails.
pub fn fit_attribution(
    net: &DetectorNet,
    mix: &FakeMix<'_>,
    arch: &Architecture,
    (train_seed, val_seed): (u64, u64),
    steps: u64,
    rng: &mut impl Rng,
    counts: &mut BTreeMap<String, u64>,
) -> Result<Option<(Attribution, AttributionCard)>, GanError> {
    let families = mix.families();
    if families.len() < 2 || steps == 0 {
        return Ok(None);
    }
    let device = net.device();
    let head = Attribution::build(
        net.feature_width(),
        families.clone(),
        MIN_PROBABILITY,
        device,
    );
    let mut opt = nn::Adam::default().build(&head.vs, 5e-3)?;
    let size = i64::from(arch.image_size);
    let b = BATCH_PER_FAMILY as u64;
    for step in 0..steps {
        let mut images: Vec<DynamicImage> = Vec::new();
        let mut labels: Vec<i64> = Vec::new();
        for (k, &family) in families.iter().enumerate() {
            let indices: Vec<u64> = (step * b..(step + 1) * b).collect();
            for image in mix.generate_family(family, train_seed, &indices, counts)? {
                images.push(random_augment(&image, rng));
                labels.push(k as i64);
            }
        }
        let x = Tensor::f_from_slice(&detector_input_random(&images, arch, rng))?
            .f_view([images.len() as i64, i64::from(arch.channels), size, size])?
            .f_to_device(device)?;
        let features = tch::no_grad(|| net.features_t(&x));
        let targets = Tensor::f_from_slice(&labels)?.f_to_device(device)?;
        let loss = head
            .head
            .forward(&features)
            .cross_entropy_for_logits(&targets);
        opt.backward_step(&loss);
    }
    // Validation: clean and one augmented copy of fresh images of each family.
    let mut right = 0usize;
    let mut total = 0usize;
    for (k, &family) in families.iter().enumerate() {
        let indices: Vec<u64> = (0..VALIDATION_PER_FAMILY as u64).collect();
        let clean = mix.generate_family(family, val_seed, &indices, counts)?;
        let augmented: Vec<DynamicImage> = clean.iter().map(|i| random_augment(i, rng)).collect();
        for set in [&clean, &augmented] {
            let nearest = head.nearest(&detector_features(net, set, arch)?)?;
            right += nearest.iter().filter(|(f, _)| *f == families[k]).count();
            total += nearest.len();
        }
    }
    let accuracy = right as f64 / total.max(1) as f64;
    let card = AttributionCard {
        weights: ATTRIBUTION_FILE.to_owned(),
        families: families.iter().map(ToString::to_string).collect(),
        min_probability: MIN_PROBABILITY,
        validation_accuracy: (accuracy * 1e4).round() / 1e4,
        steps,
    };
    Ok(Some((head, card)))
}
