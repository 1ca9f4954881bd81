//! The training loop: alternating discriminator and generator Adam steps, checkpoints with a
//! sample grid from fixed latents, resume, and a loss curve.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::card::{write_atomic, Architecture, ModelCard, TrainingCard};
use super::data::Dataset;
use super::model::{latents_for, Discriminator, GanNets, Generator};
use super::{
    plot, GanError, CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, LOSS_FILE, SAMPLES_FILE,
};

/// The state file that `--resume` continues from.
pub const STATE_FILE: &str = "train_state.json";
/// Images in a sample grid.
pub const GRID_IMAGES: usize = 64;

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub name: String,
    pub architecture: Architecture,
    /// Total steps (a resumed run continues up to this count).
    pub steps: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub checkpoint_every: u64,
    pub resume: bool,
    /// Show an indicatif progress bar.
    pub progress: bool,
}

/// What a training run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub steps: u64,
    pub interrupted: bool,
    pub run_seconds: f64,
    pub images_per_s: f64,
    pub last_d_loss: f32,
    pub last_g_loss: f32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    elapsed_s: f64,
    /// (discriminator, generator) loss of every step.
    losses: Vec<(f32, f32)>,
}

/// The discriminator and generator losses for logits of real and generated images.
pub(crate) fn discriminator_loss(loss: &str, real: &Tensor, fake: &Tensor) -> Tensor {
    if loss == "hinge" {
        (-real + 1.0).relu().mean(Kind::Float) + (fake + 1.0).relu().mean(Kind::Float)
    } else {
        (-real).softplus().mean(Kind::Float) + fake.softplus().mean(Kind::Float)
    }
}

pub(crate) fn generator_loss(loss: &str, fake: &Tensor) -> Tensor {
    if loss == "hinge" {
        -fake.mean(Kind::Float)
    } else {
        (-fake).softplus().mean(Kind::Float)
    }
}

/// One optimiser step of D then G on a batch of real images and latents; returns the losses.
/// Public so the benchmark times exactly the training code.
///
/// # Errors
/// When torch fails.
pub fn train_step(
    nets: &GanNets,
    opt_d: &mut nn::Optimizer,
    opt_g: &mut nn::Optimizer,
    real: &Tensor,
    latents: &Tensor,
) -> Result<(f32, f32), GanError> {
    let loss = nets.generator.architecture().loss.as_str();
    let n = real.size()[0];
    let fake = nets.generator.forward_t(latents, true);
    let both = Tensor::f_cat(&[real, &fake.detach()], 0)?;
    let logits = nets.discriminator.forward_t(&both, true);
    let d_loss = discriminator_loss(loss, &logits.narrow(0, 0, n), &logits.narrow(0, n, n));
    opt_d.backward_step(&d_loss);
    let g_loss = generator_loss(loss, &nets.discriminator.forward_t(&fake, true));
    opt_g.backward_step(&g_loss);
    Ok((
        d_loss.f_double_value(&[])? as f32,
        g_loss.f_double_value(&[])? as f32,
    ))
}

/// Adam with the DCGAN settings (beta1 = 0.5).
///
/// # Errors
/// When torch fails.
pub fn adam(vs: &nn::VarStore, learning_rate: f64) -> Result<nn::Optimizer, GanError> {
    Ok(nn::Adam {
        beta1: 0.5,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(vs, learning_rate)?)
}

/// Indices and latents of a step: a function of (seed, step) only, so a resumed run sees the
/// same batches as an uninterrupted one.
fn step_batch(
    seed: u64,
    step: u64,
    batch: usize,
    data_len: usize,
    dim: usize,
) -> (Vec<usize>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_da7a);
    rng.set_stream(step);
    let indices = (0..batch).map(|_| rng.gen_range(0..data_len)).collect();
    let latents = (0..batch * dim)
        .map(|_| rng.sample(StandardNormal))
        .collect();
    (indices, latents)
}

/// Writes a sample grid of the generator's images of the fixed latents (seed, 0..64).
///
/// # Errors
/// When generation or writing fails.
pub fn write_samples(generator: &Generator, seed: u64, path: &Path) -> Result<(), GanError> {
    let dim = generator.architecture().latent_dim as usize;
    let latents: Vec<Vec<f32>> = (0..GRID_IMAGES as u64)
        .map(|i| latents_for(seed, i, dim))
        .collect();
    let images = generator.generate(&latents)?;
    let scale = (64 / generator.architecture().image_size).max(1);
    plot::save_png(&plot::grid(&images, 8, scale), path)
}

struct Run<'a> {
    dir: &'a Path,
    config: &'a TrainConfig,
    dataset: &'a Dataset,
    device: Device,
}

impl Run<'_> {
    fn checkpoint(
        &self,
        nets: &GanNets,
        state: &TrainState,
        images_per_s: f64,
    ) -> Result<(), GanError> {
        let generator_path = self.dir.join(GENERATOR_FILE);
        let before = std::fs::read(&generator_path).ok();
        nets.generator.save(&generator_path)?;
        let after = std::fs::read(&generator_path).map_err(|e| GanError::io(&generator_path, e))?;
        let generator_changed = before.as_deref() != Some(after.as_slice());
        nets.discriminator
            .save(&self.dir.join(DISCRIMINATOR_FILE))?;
        let card_path = self.dir.join(CARD_FILE);
        let old = if card_path.is_file() {
            Some(ModelCard::load(&card_path)?)
        } else {
            None
        };
        let card = ModelCard {
            name: self.config.name.clone(),
            description: old.as_ref().map_or_else(
                || {
                    format!(
                        "DCGAN trained by `hallmark train` on {}",
                        self.dataset.description
                    )
                },
                |c| c.description.clone(),
            ),
            architecture: self.config.architecture.clone(),
            training: TrainingCard {
                dataset: self.dataset.description.clone(),
                dataset_images: self.dataset.len() as u64,
                steps: state.step,
                batch_size: self.config.batch_size as u32,
                learning_rate: self.config.learning_rate,
                seed: self.config.seed,
                device: crate::device::DeviceName(self.device).to_string(),
                training_time_s: (state.elapsed_s * 10.0).round() / 10.0,
                images_per_s: images_per_s.round(),
            },
            // Metrics describe older weights; they are recomputed by `hallmark evaluate`.
            metrics: None,
            // A detector is trained against one generator's images: once the generator
            // weights change it is stale, so its section goes (`hallmark train-detector`
            // makes a new one; its old weights file is no longer named by the card).
            detector: old.and_then(|c| c.detector).filter(|_| !generator_changed),
        };
        card.save(&card_path)?;
        let json = serde_json::to_vec(state).map_err(|e| GanError::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join(STATE_FILE), &json)?;
        let samples_dir = self.dir.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|e| GanError::io(&samples_dir, e))?;
        let step_path = samples_dir.join(format!("step-{:06}.png", state.step));
        write_samples(&nets.generator, self.config.seed, &step_path)?;
        let latest = self.dir.join(SAMPLES_FILE);
        std::fs::copy(&step_path, &latest).map_err(|e| GanError::io(&latest, e))?;
        if !state.losses.is_empty() {
            plot::loss_curve(&state.losses, &self.dir.join(LOSS_FILE))?;
        }
        Ok(())
    }
}

/// Trains (or resumes training of) the model in `dir` on `dataset`. `stop` is polled every
/// step: when set (Ctrl-C) a checkpoint is written and the run ends early.
///
/// # Errors
/// When the directory already holds a model and `resume` is off, when a resumed model does not
/// match, on file errors, or when torch fails.
pub fn train(
    dataset: &Dataset,
    dir: &Path,
    config: &TrainConfig,
    device: Device,
    stop: &AtomicBool,
) -> Result<TrainReport, GanError> {
    let arch = &config.architecture;
    arch.validate().map_err(GanError::Invalid)?;
    if dataset.image_size() != arch.image_size || dataset.channels() != arch.channels {
        return Err(GanError::Invalid(format!(
            "dataset is {}x{}x{}, the model needs {}x{}x{}",
            dataset.channels(),
            dataset.image_size(),
            dataset.image_size(),
            arch.channels,
            arch.image_size,
            arch.image_size
        )));
    }
    if config.batch_size == 0 || config.checkpoint_every == 0 {
        return Err(GanError::Invalid(
            "batch size and checkpoint interval must be positive".into(),
        ));
    }
    let card_path = dir.join(CARD_FILE);
    std::fs::create_dir_all(dir).map_err(|e| GanError::io(dir, e))?;
    tch::manual_seed(config.seed as i64);
    let mut nets = GanNets::new(arch, device)?;
    let mut state = TrainState::default();
    if config.resume {
        let card = ModelCard::load(&card_path)?;
        if &card.architecture != arch {
            return Err(GanError::Card {
                path: card_path,
                message: "the architecture differs from the one asked for".into(),
            });
        }
        nets.generator = Generator::load(arch, device, &dir.join(GENERATOR_FILE))?;
        nets.discriminator = Discriminator::load(arch, device, &dir.join(DISCRIMINATOR_FILE))?;
        let state_path = dir.join(STATE_FILE);
        let bytes = std::fs::read(&state_path).map_err(|e| GanError::io(&state_path, e))?;
        state = serde_json::from_slice(&bytes).map_err(|e| GanError::Card {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
    } else if card_path.exists() {
        return Err(GanError::Invalid(format!(
            "{} already holds a model: pass --resume to continue it, or pick another name",
            dir.display()
        )));
    }
    let mut opt_d = adam(nets.discriminator.var_store(), config.learning_rate)?;
    let mut opt_g = adam(nets.generator.var_store(), config.learning_rate)?;
    let run = Run {
        dir,
        config,
        dataset,
        device,
    };
    let bar = crate::progress::bar(config.steps, "train", config.progress);
    bar.set_position(state.step);
    let dim = arch.latent_dim as usize;
    let batch = config.batch_size;
    let started = Instant::now();
    let start_step = state.step;
    let previous_elapsed = state.elapsed_s;
    let mut window = (Instant::now(), state.step);
    let mut images_per_s = 0.0;
    let mut interrupted = false;
    let mut last = (f32::NAN, f32::NAN);
    while state.step < config.steps {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let (indices, latents) = step_batch(config.seed, state.step, batch, dataset.len(), dim);
        let real = dataset.batch(&indices, device)?;
        let z = Tensor::f_from_slice(&latents)?
            .f_view([batch as i64, dim as i64])?
            .f_to_device(device)?;
        last = train_step(&nets, &mut opt_d, &mut opt_g, &real, &z)?;
        state.losses.push(last);
        state.step += 1;
        bar.inc(1);
        if state.step % 10 == 0 || state.step == config.steps {
            let secs = window.0.elapsed().as_secs_f64();
            if secs > 0.0 {
                images_per_s = (state.step - window.1) as f64 * batch as f64 / secs;
            }
            if secs > 30.0 {
                window = (Instant::now(), state.step);
            }
            bar.set_message(format!(
                "D {:.3} G {:.3} {:.0} img/s",
                last.0, last.1, images_per_s
            ));
        }
        if state.step % config.checkpoint_every == 0 && state.step < config.steps {
            state.elapsed_s = previous_elapsed + started.elapsed().as_secs_f64();
            run.checkpoint(&nets, &state, images_per_s)?;
            tracing::info!(
                step = state.step,
                d_loss = last.0,
                g_loss = last.1,
                images_per_s = images_per_s.round(),
                "checkpoint"
            );
        }
    }
    state.elapsed_s = previous_elapsed + started.elapsed().as_secs_f64();
    let run_seconds = started.elapsed().as_secs_f64();
    let run_rate = if run_seconds > 0.0 {
        (state.step - start_step) as f64 * batch as f64 / run_seconds
    } else {
        0.0
    };
    run.checkpoint(&nets, &state, run_rate)?;
    bar.finish_and_clear();
    Ok(TrainReport {
        steps: state.step,
        interrupted,
        run_seconds,
        images_per_s: run_rate,
        last_d_loss: last.0,
        last_g_loss: last.1,
    })
}

/// The model directory of `name` under `models_dir`, refusing names that are paths.
///
/// # Errors
/// When the name is empty or has path separators or `..`.
pub fn model_dir(models_dir: &Path, name: &str) -> Result<PathBuf, GanError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(GanError::Invalid(format!(
            "model name {name:?} must be a plain directory name"
        )));
    }
    Ok(models_dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gan::card::{Calibration, CalibrationMethod, DetectorCard, DomainRules};
    use image::{GrayImage, Luma};

    #[test]
    fn resuming_drops_the_detector_of_the_old_generator() {
        let data_dir = tempfile::tempdir().unwrap();
        for i in 0..8u32 {
            let image = GrayImage::from_fn(16, 16, |x, y| {
                Luma([if (x + i) % 16 < 8 && (y + i) % 16 < 8 {
                    220
                } else {
                    10
                }])
            });
            image
                .save(data_dir.path().join(format!("{i}.png")))
                .unwrap();
        }
        let dataset = Dataset::open(data_dir.path(), 16, 1).unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut config = TrainConfig {
            name: "tiny".into(),
            architecture: Architecture {
                family: "dcgan".into(),
                image_size: 16,
                channels: 1,
                latent_dim: 8,
                g_width: 4,
                d_width: 4,
                loss: "non-saturating".into(),
            },
            steps: 2,
            batch_size: 4,
            learning_rate: 2e-3,
            seed: 1,
            checkpoint_every: 2,
            resume: false,
            progress: false,
        };
        let stop = AtomicBool::new(false);
        train(&dataset, out.path(), &config, Device::Cpu, &stop).unwrap();
        let card_path = out.path().join(CARD_FILE);
        let mut card = ModelCard::load(&card_path).unwrap();
        card.detector = Some(DetectorCard {
            weights: crate::gan::DETECTOR_FILE.into(),
            generator_sha256: None,
            calibration: Calibration {
                method: CalibrationMethod::Platt,
                a: -1.0,
                b: 0.0,
            },
            threshold: 0.5,
            domain: DomainRules {
                min_side: 6,
                max_side: 128,
                max_aspect: 1.5,
                max_chroma: 0.04,
                border_px: 1,
                border_mean: [0.0, 0.5],
                mean: [0.01, 0.9],
                std: [0.01, 0.5],
                margin: 0.1,
            },
            input: crate::gan::card::DetectorInput::Pixels,
            attribution: None,
            training: None,
            evaluation: None,
            leave_one_family_out: Vec::new(),
        });
        card.save(&card_path).unwrap();
        // Resuming with nothing left to train keeps the generator, and so the detector.
        config.resume = true;
        train(&dataset, out.path(), &config, Device::Cpu, &stop).unwrap();
        assert!(ModelCard::load(&card_path).unwrap().detector.is_some());
        // Training on changes the generator: the detector section is gone.
        config.steps = 4;
        train(&dataset, out.path(), &config, Device::Cpu, &stop).unwrap();
        let card = ModelCard::load(&card_path).unwrap();
        assert_eq!(card.training.steps, 4);
        assert!(card.detector.is_none(), "a stale detector was kept");
    }
}
