//! A small Fashion-MNIST classifier, and the quality metric built on it: the Fréchet distance
//! between its penultimate features of generated and real images, and the spread of its labels
//! over generated images (mode coverage).

use std::path::{Path, PathBuf};

use image::DynamicImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::card::{ArchFamily, Architecture, Loss, MetricsCard};
use super::catalog::LoadedModel;
use super::data::{Dataset, Split};
use super::model::{images_to_input, latents_for, load_weights};
use super::GanError;

pub const CLASSIFIER_CARD: &str = "classifier.toml";
pub const CLASSIFIER_WEIGHTS: &str = "classifier.safetensors";
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const FEATURES: i64 = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierCard {
    pub name: String,
    pub image_size: u32,
    pub channels: u32,
    pub classes: Vec<String>,
    pub feature_dim: u32,
    pub dataset: String,
    pub epochs: u32,
    pub seed: u64,
    pub test_accuracy: f64,
    pub training_time_s: f64,
}

/// Three conv + pool blocks, a 128-wide feature layer, and a linear layer over the classes.
#[derive(Debug)]
pub struct Classifier {
    vs: nn::VarStore,
    pub card: ClassifierCard,
    convs: Vec<nn::Conv2D>,
    fc: nn::Linear,
    head: nn::Linear,
}

impl Classifier {
    fn build(card: ClassifierCard, device: Device) -> Result<Self, GanError> {
        if card.image_size != 32
            || !(card.channels == 1 || card.channels == 3)
            || card.classes.is_empty()
        {
            return Err(GanError::Shape(
                "the classifier takes 32x32 images, 1 or 3 channels".into(),
            ));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut convs = Vec::new();
        let mut in_c = i64::from(card.channels);
        for (i, out_c) in [32, 64, 128].into_iter().enumerate() {
            convs.push(nn::conv2d(&root / format!("conv{i}"), in_c, out_c, 3, cfg));
            in_c = out_c;
        }
        let fc = nn::linear(&root / "fc", 128 * 4 * 4, FEATURES, Default::default());
        let head = nn::linear(
            &root / "head",
            FEATURES,
            card.classes.len() as i64,
            Default::default(),
        );
        Ok(Self {
            vs,
            card,
            convs,
            fc,
            head,
        })
    }

    /// Penultimate features `[N, 128]` of images `[N, C, 32, 32]` in [-1, 1].
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for conv in &self.convs {
            x = conv.forward(&x).relu().max_pool2d_default(2);
        }
        x.flatten(1, -1).apply(&self.fc).relu().dropout(0.3, train)
    }

    /// Loads `dir/classifier.toml` and `dir/classifier.safetensors`.
    ///
    /// # Errors
    /// When either file is missing, corrupt or mismatched.
    pub fn load(dir: &Path, device: Device) -> Result<Self, GanError> {
        let card_path = dir.join(CLASSIFIER_CARD);
        let text = std::fs::read_to_string(&card_path).map_err(|e| GanError::io(&card_path, e))?;
        let card: ClassifierCard = toml::from_str(&text).map_err(|e| GanError::Card {
            path: card_path.clone(),
            message: e.to_string(),
        })?;
        let mut classifier = Self::build(card, device).map_err(|e| GanError::Card {
            path: card_path,
            message: e.to_string(),
        })?;
        load_weights(&mut classifier.vs, &dir.join(CLASSIFIER_WEIGHTS))?;
        Ok(classifier)
    }

    fn save(&self, dir: &Path) -> Result<(), GanError> {
        std::fs::create_dir_all(dir).map_err(|e| GanError::io(dir, e))?;
        let weights = dir.join(CLASSIFIER_WEIGHTS);
        let named: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.to_device(Device::Cpu)))
            .collect();
        Tensor::write_safetensors(&named, &weights).map_err(|e| GanError::Weights {
            path: weights.clone(),
            message: e.to_string(),
        })?;
        let card_path = dir.join(CLASSIFIER_CARD);
        let text =
            toml::to_string_pretty(&self.card).map_err(|e| GanError::Encode(e.to_string()))?;
        std::fs::write(&card_path, text).map_err(|e| GanError::io(&card_path, e))
    }

    /// Features and predicted labels of flat NCHW input, in batches.
    fn run(&self, input: &[f32], n: usize) -> Result<(Tensor, Vec<i64>), GanError> {
        let per = input.len() / n.max(1);
        let mut feats = Vec::new();
        let mut labels = Vec::new();
        tch::no_grad(|| -> Result<(), GanError> {
            for chunk in input.chunks(per * 500) {
                let m = (chunk.len() / per) as i64;
                let x = Tensor::f_from_slice(chunk)?
                    .f_view([m, i64::from(self.card.channels), 32, 32])?
                    .f_to_device(self.vs.device())?;
                let f = self.features_t(&x, false);
                let pred = f.apply(&self.head).argmax(1, false).to_device(Device::Cpu);
                labels.extend(Vec::<i64>::try_from(&pred)?);
                feats.push(f.to_device(Device::Cpu).to_kind(Kind::Double));
            }
            Ok(())
        })?;
        Ok((Tensor::f_cat(&feats, 0)?, labels))
    }

    fn input_arch(&self) -> Architecture {
        Architecture {
            family: ArchFamily::Dcgan,
            image_size: 32,
            channels: self.card.channels,
            latent_dim: 1,
            g_width: 1,
            d_width: 1,
            loss: Loss::NonSaturating,
        }
    }
}

fn dataset_input(data: &Dataset, count: usize) -> Vec<f32> {
    (0..count.min(data.len()))
        .flat_map(|i| {
            data.image_bytes(i)
                .iter()
                .map(|&b| f32::from(b) / 127.5 - 1.0)
        })
        .collect()
}

/// Trains the classifier on the train split of an IDX dataset and reports test accuracy.
///
/// # Errors
/// When the dataset lacks labels, on file errors, or when torch fails.
pub fn train_classifier(
    data_dir: &Path,
    out: &Path,
    epochs: u32,
    seed: u64,
    device: Device,
) -> Result<ClassifierCard, GanError> {
    let started = std::time::Instant::now();
    let train = Dataset::idx_split(data_dir, Split::Train, 32, 1)?;
    let test = Dataset::idx_split(data_dir, Split::Test, 32, 1)?;
    let (Some(train_labels), Some(test_labels)) = (train.labels.clone(), test.labels.clone())
    else {
        return Err(GanError::Dataset {
            path: data_dir.to_owned(),
            message: "the classifier needs the labels files".into(),
        });
    };
    tch::manual_seed(seed as i64);
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("classifier")
        .to_owned();
    let classifier = Classifier::build(
        ClassifierCard {
            name,
            image_size: 32,
            channels: 1,
            classes: FASHION_CLASSES.iter().map(|s| (*s).to_owned()).collect(),
            feature_dim: FEATURES as u32,
            dataset: train.description.clone(),
            epochs,
            seed,
            test_accuracy: 0.0,
            training_time_s: 0.0,
        },
        device,
    )?;
    let mut opt = nn::Adam::default().build(&classifier.vs, 1e-3)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 0..epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for (b, chunk) in order.chunks(128).enumerate() {
            let x = train.batch(chunk, device)?;
            let y: Vec<i64> = chunk.iter().map(|&i| i64::from(train_labels[i])).collect();
            let y = Tensor::f_from_slice(&y)?.f_to_device(device)?;
            let loss = classifier
                .features_t(&x, true)
                .apply(&classifier.head)
                .cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            total += loss.f_double_value(&[])?;
            if (b + 1) % 100 == 0 {
                tracing::info!(
                    epoch,
                    batch = b + 1,
                    loss = total / (b + 1) as f64,
                    "classifier"
                );
            }
        }
    }
    let (_, predicted) = classifier.run(&dataset_input(&test, test.len()), test.len())?;
    let correct = predicted
        .iter()
        .zip(&test_labels)
        .filter(|(p, l)| **p == i64::from(**l))
        .count();
    let mut classifier = classifier;
    classifier.card.test_accuracy =
        (correct as f64 / test.len() as f64 * 10000.0).round() / 10000.0;
    classifier.card.training_time_s = started.elapsed().as_secs_f64().round();
    classifier.save(out)?;
    Ok(classifier.card)
}

/// Mean and covariance of features `[N, D]` (f64).
fn moments(f: &Tensor) -> (Tensor, Tensor) {
    let n = f.size()[0] as f64;
    let mu = f.mean_dim(0, false, Kind::Double);
    let centred = f - &mu;
    let cov = centred.tr().matmul(&centred) / (n - 1.0);
    (mu, cov)
}

fn sqrtm_psd(m: &Tensor) -> Result<Tensor, GanError> {
    let (e, v) = m.f_linalg_eigh("L")?;
    let s = e.clamp_min(0.0).sqrt();
    Ok((&v * s.unsqueeze(0)).matmul(&v.tr()))
}

/// The Fréchet distance between Gaussians fitted to two feature sets.
///
/// # Errors
/// When torch fails.
pub fn frechet_distance(a: &Tensor, b: &Tensor) -> Result<f64, GanError> {
    let (mu1, s1) = moments(a);
    let (mu2, s2) = moments(b);
    let r1 = sqrtm_psd(&s1)?;
    let m = r1.matmul(&s2).matmul(&r1);
    let m = (&m + m.tr()) / 2.0;
    let tr_cross = m
        .f_linalg_eigvalsh("L")?
        .clamp_min(0.0)
        .sqrt()
        .sum(Kind::Double);
    let d = (&mu1 - &mu2).square().sum(Kind::Double) + s1.trace() + s2.trace() - tr_cross * 2.0;
    Ok(d.f_double_value(&[])?)
}

/// The quality of a model, see [`MetricsCard`].
#[derive(Debug, Clone)]
pub struct QualityReport {
    pub metrics: MetricsCard,
    pub classes: Vec<String>,
}

/// Generates `samples` images (seed `seed`) and compares them with `samples` real test images;
/// the floor compares `samples` real train images with the same test images.
///
/// # Errors
/// On file errors or when torch fails.
pub fn evaluate_quality(
    model: &LoadedModel,
    classifier: &Classifier,
    classifier_name: &str,
    data_dir: &Path,
    samples: usize,
    seed: u64,
) -> Result<QualityReport, GanError> {
    let arch = classifier.input_arch();
    let channels = classifier.card.channels;
    let test = Dataset::idx_split(data_dir, Split::Test, 32, channels)?;
    let train = Dataset::idx_split(data_dir, Split::Train, 32, channels)?;
    let n = samples.min(test.len()).min(train.len()).max(2);
    let (test_f, _) = classifier.run(&dataset_input(&test, n), n)?;
    let (train_f, _) = classifier.run(&dataset_input(&train, n), n)?;
    let mut input = Vec::with_capacity(n * 1024 * channels as usize);
    let dim = model.latent_dim();
    for start in (0..n).step_by(256) {
        let end = (start + 256).min(n);
        let latents: Vec<f32> = (start..end)
            .flat_map(|i| latents_for(seed, i as u64, dim))
            .collect();
        let images: Vec<DynamicImage> = model.generator.generate_flat(&latents)?;
        input.extend(images_to_input(&images, &arch));
    }
    let (gen_f, labels) = classifier.run(&input, n)?;
    let fd = frechet_distance(&gen_f, &test_f)?;
    let fd_floor = frechet_distance(&train_f, &test_f)?;
    let classes = classifier.card.classes.clone();
    let mut counts = vec![0usize; classes.len()];
    for l in labels {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    let dist: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let entropy = -dist
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.log2())
        .sum::<f64>();
    let round = |x: f64, d: f64| (x * d).round() / d;
    Ok(QualityReport {
        metrics: MetricsCard {
            fd: round(fd, 1000.0),
            fd_floor: round(fd_floor, 1000.0),
            samples: n as u64,
            classifier: classifier_name.to_owned(),
            label_entropy_bits: round(entropy, 1000.0),
            classes_covered: dist.iter().filter(|&&p| p >= 0.02).count() as u32,
            label_distribution: dist.iter().map(|&p| round(p, 10000.0)).collect(),
        },
        classes,
    })
}

/// Where the classifier named `name` lives.
#[must_use]
pub fn classifier_dir(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join(name)
}
