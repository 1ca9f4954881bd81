//! The training loop: alternating discriminator and generator Adam steps (optionally with an R1
//! penalty), an exponential moving average of the generator for serving, progressive growing,
//! checkpoints with a sample grid from fixed latents (and one per resolution), resume with the
//! optimisers' state, and a loss curve.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use super::adam::{Adam, Ema};
use super::card::{write_atomic, Architecture, ModelCard, TrainingCard};
use super::card::{ArchFamily, Loss};
use super::data::Dataset;
use super::model::{latents_for, Discriminator, GanNets, Generator};
use super::progressive::{real_at, Growth, Schedule};
use super::{
    plot, GanError, CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, LOSS_FILE, OPTIMIZER_D_FILE,
    OPTIMIZER_G_FILE, SAMPLES_FILE, TRAINED_GENERATOR_FILE,
};

/// The state file that `--resume` continues from.
pub const STATE_FILE: &str = "train_state.json";
/// Images in a sample grid.
pub const GRID_IMAGES: usize = 64;
/// The R1 penalty is applied every this many steps, scaled up by as much ("lazy
/// regularisation", StyleGAN2): a quarter of the double back-propagations for the same effect.
pub const R1_EVERY: u64 = 4;

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
    /// Show indicatif progress bars.
    pub progress: bool,
    /// Serve an exponential moving average of the generator with this decay (None: the
    /// trained weights themselves).
    pub ema_decay: Option<f64>,
    /// Weight of the R1 penalty (0: none).
    pub r1_gamma: f64,
    /// Progressive growing (the architecture's family must be "progressive").
    pub schedule: Option<Schedule>,
    /// Autocast and loss scaling when the device is CUDA.
    pub mixed_precision: bool,
}

impl TrainConfig {
    /// A configuration with the defaults of `hallmark train` for this architecture.
    #[must_use]
    pub fn new(name: &str, architecture: Architecture, steps: u64) -> Self {
        let progressive = architecture.family == ArchFamily::Progressive;
        let schedule = progressive.then(|| default_schedule(&architecture, steps));
        Self {
            name: name.to_owned(),
            architecture,
            steps,
            batch_size: 64,
            learning_rate: if progressive { 1e-3 } else { 2e-4 },
            seed: 0,
            checkpoint_every: 500,
            resume: false,
            progress: false,
            ema_decay: Some(0.999),
            r1_gamma: if progressive { 0.1 } else { 0.0 },
            schedule,
            mixed_precision: true,
        }
    }
}

/// The default schedule: an equal number of steps for each resolution and each fade-in, an
/// eighth of the run each at 32x32 (4 levels), so the full resolution trains longest (its
/// own share and whatever is left).
#[must_use]
pub fn default_schedule(arch: &Architecture, steps: u64) -> Schedule {
    let levels = arch.stages() + 1;
    let share = (steps / (2 * u64::from(levels))).max(1);
    Schedule {
        levels,
        stage_steps: share,
        fade_steps: share,
    }
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
    /// A progressive model's growth after the last step.
    pub growth: Option<Growth>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    elapsed_s: f64,
    /// (discriminator, generator) loss of every step.
    losses: Vec<(f32, f32)>,
    /// A progressive model's (level, alpha) at the last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    growth: Option<(u32, f64)>,
}

/// The discriminator and generator losses for logits of real and generated images.
pub(crate) fn discriminator_loss(loss: Loss, real: &Tensor, fake: &Tensor) -> Tensor {
    match loss {
        Loss::Hinge => {
            (-real + 1.0).relu().mean(Kind::Float) + (fake + 1.0).relu().mean(Kind::Float)
        }
        Loss::NonSaturating => {
            (-real).softplus().mean(Kind::Float) + fake.softplus().mean(Kind::Float)
        }
    }
}

pub(crate) fn generator_loss(loss: Loss, fake: &Tensor) -> Tensor {
    match loss {
        Loss::Hinge => -fake.mean(Kind::Float),
        Loss::NonSaturating => (-fake).softplus().mean(Kind::Float),
    }
}

/// One optimiser step of D then G on a batch of real images and latents; returns the losses.
/// Public so the benchmark times exactly the training code.
///
/// # Errors
/// When torch fails.
pub fn train_step(
    nets: &GanNets,
    opt_d: &mut Adam,
    opt_g: &mut Adam,
    real: &Tensor,
    latents: &Tensor,
) -> Result<(f32, f32), GanError> {
    train_step_with(nets, opt_d, opt_g, real, latents, 0.0, false)
}

/// [`train_step`] with an R1 penalty of weight `r1` (0: none) on this step, and autocast.
///
/// # Errors
/// When torch fails.
pub fn train_step_with(
    nets: &GanNets,
    opt_d: &mut Adam,
    opt_g: &mut Adam,
    real: &Tensor,
    latents: &Tensor,
    r1: f64,
    autocast: bool,
) -> Result<(f32, f32), GanError> {
    let loss = nets.generator.architecture().loss;
    let d = &nets.discriminator;
    let n = real.size()[0];
    let fake = tch::autocast(autocast, || nets.generator.forward_train(latents));
    // A progressive discriminator's minibatch-deviation channel must see real and generated
    // images in separate batches; the DCGAN one takes both at once (one power iteration).
    let separate = r1 > 0.0 || nets.generator.growth().is_some();
    let d_loss = if separate {
        let (real_logits, fake_logits) = tch::autocast(autocast, || {
            (d.forward_t(real, true), d.forward_t(&fake.detach(), true))
        });
        let mut d_loss = discriminator_loss(loss, &real_logits, &fake_logits);
        if r1 > 0.0 {
            // R1 (Mescheder et al. 2018): the squared gradient of D at real images, in full
            // precision.
            let x = real.detach().set_requires_grad(true);
            let out = d.forward_t(&x, true).sum(Kind::Float);
            let grad = Tensor::f_run_backward(&[&out], &[&x], true, true)?
                .pop()
                .ok_or_else(|| GanError::Internal("no gradient at the real images".into()))?;
            let penalty = grad
                .square()
                .sum_dim_intlist([1_i64, 2, 3].as_slice(), false, Kind::Float)
                .mean(Kind::Float);
            d_loss += penalty * (r1 / 2.0);
        }
        d_loss
    } else {
        let both = Tensor::f_cat(&[real, &fake.detach()], 0)?;
        let logits = tch::autocast(autocast, || d.forward_t(&both, true));
        discriminator_loss(loss, &logits.narrow(0, 0, n), &logits.narrow(0, n, n))
    };
    opt_d.backward_step(&d_loss)?;
    let g_loss = generator_loss(loss, &tch::autocast(autocast, || d.forward_t(&fake, true)));
    opt_g.backward_step(&g_loss)?;
    Ok((
        d_loss.f_double_value(&[])? as f32,
        g_loss.f_double_value(&[])? as f32,
    ))
}

/// Adam with the DCGAN settings (beta1 = 0.5).
///
/// # Errors
/// Never today (kept fallible for the callers).
pub fn adam(vs: &nn::VarStore, learning_rate: f64) -> Result<Adam, GanError> {
    Ok(Adam::new(vs, learning_rate, 0.5, 0.999))
}

/// Adam for a progressive GAN: ProGAN's beta1 = 0, beta2 = 0.99.
fn adam_progressive(vs: &nn::VarStore, learning_rate: f64) -> Adam {
    Adam::new(vs, learning_rate, 0.0, 0.99)
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

/// Batch-norm statistics for averaged weights ("standing statistics"): the running means and
/// variances are those of the trained generator's batches, not of the average's, so they are
/// re-estimated from 32 batches of the average's own activations. Nothing for networks
/// without batch norm.
fn refresh_batch_norm(generator: &Generator, seed: u64, batch: usize) -> Result<(), GanError> {
    if generator.growth().is_some() {
        return Ok(());
    }
    let dim = generator.architecture().latent_dim as usize;
    tch::no_grad(|| -> Result<(), GanError> {
        for i in 0..32u64 {
            let latents: Vec<f32> = (0..batch as u64)
                .flat_map(|j| latents_for(seed ^ 0xba7c_4e0a, i * batch as u64 + j, dim))
                .collect();
            let z = Tensor::f_from_slice(&latents)?
                .f_view([batch as i64, dim as i64])?
                .f_to_device(generator.device())?;
            let _ = generator.forward_t(&z, true);
        }
        Ok(())
    })
}

/// What a run trains: both networks, their optimisers, and the moving average.
struct Nets {
    nets: GanNets,
    opt_d: Adam,
    opt_g: Adam,
    /// The moving average of the generator and what keeps it.
    ema: Option<(Generator, Ema)>,
}

impl Nets {
    fn served(&self) -> &Generator {
        self.ema.as_ref().map_or(&self.nets.generator, |(g, _)| g)
    }

    fn set_growth(&self, growth: Growth) -> Result<(), GanError> {
        self.nets.generator.set_growth(growth)?;
        self.nets.discriminator.set_growth(growth)?;
        if let Some((g, _)) = &self.ema {
            g.set_growth(growth)?;
        }
        Ok(())
    }
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
        nets: &Nets,
        state: &TrainState,
        images_per_s: f64,
    ) -> Result<(), GanError> {
        let served = nets.served();
        if let Some((_, ema)) = &nets.ema {
            // From the trained generator's statistics each time, so that a checkpoint of the
            // same weights is the same file.
            ema.copy_buffers()?;
            refresh_batch_norm(served, self.config.seed, self.config.batch_size.max(16))?;
            nets.nets
                .generator
                .save(&self.dir.join(TRAINED_GENERATOR_FILE))?;
        }
        let generator_path = self.dir.join(GENERATOR_FILE);
        let before = std::fs::read(&generator_path).ok();
        served.save(&generator_path)?;
        let after = std::fs::read(&generator_path).map_err(|e| GanError::io(&generator_path, e))?;
        let generator_changed = before.as_deref() != Some(after.as_slice());
        nets.nets
            .discriminator
            .save(&self.dir.join(DISCRIMINATOR_FILE))?;
        nets.opt_g.save(&self.dir.join(OPTIMIZER_G_FILE))?;
        nets.opt_d.save(&self.dir.join(OPTIMIZER_D_FILE))?;
        let card_path = self.dir.join(CARD_FILE);
        let old = if card_path.is_file() {
            Some(ModelCard::load(&card_path)?)
        } else {
            None
        };
        let what = if self.config.schedule.is_some() {
            "Progressive GAN trained by `hallmark train --progressive`"
        } else {
            "DCGAN trained by `hallmark train`"
        };
        let card = ModelCard {
            name: self.config.name.clone(),
            description: old.as_ref().map_or_else(
                || format!("{what} on {}", self.dataset.description),
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
                ema_decay: self.config.ema_decay,
                r1_gamma: (self.config.r1_gamma > 0.0).then_some(self.config.r1_gamma),
                stage_steps: self.config.schedule.map(|s| s.stage_steps),
                fade_steps: self.config.schedule.map(|s| s.fade_steps),
                mixed_precision: self.config.mixed_precision && self.device.is_cuda(),
            },
            // Metrics describe older weights; they are recomputed by `hallmark evaluate`.
            metrics: None,
            // A detector is trained against one generator's images: once the generator
            // weights change it is stale, so its section goes (`hallmark train-detector`
            // makes a new one; its old weights file is no longer named by the card).
            detector: old.and_then(|c| c.detector).filter(|_| !generator_changed),
        };
        card.save(&card_path)?;
        let json = serde_json::to_vec(state).map_err(|e| GanError::Encode(e.to_string()))?;
        write_atomic(&self.dir.join(STATE_FILE), &json)?;
        let samples_dir = self.dir.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|e| GanError::io(&samples_dir, e))?;
        let step_path = samples_dir.join(format!("step-{:06}.png", state.step));
        write_samples(served, self.config.seed, &step_path)?;
        let latest = self.dir.join(SAMPLES_FILE);
        std::fs::copy(&step_path, &latest).map_err(|e| GanError::io(&latest, e))?;
        if !state.losses.is_empty() {
            plot::loss_curve(&state.losses, &self.dir.join(LOSS_FILE))?;
        }
        Ok(())
    }

    /// The sample grid of a resolution, once it has trained: `samples/stage-16x16.png`.
    fn stage_grid(&self, nets: &Nets, growth: Growth) -> Result<(), GanError> {
        let samples_dir = self.dir.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|e| GanError::io(&samples_dir, e))?;
        let r = growth.resolution();
        let path = samples_dir.join(format!("stage-{r:03}x{r:03}.png"));
        write_samples(nets.served(), self.config.seed, &path)
    }

    /// Builds the networks, fresh or from the directory's checkpoint.
    /// Sets the networks to growth `g` at `step`; when `step` starts a new resolution, first
    /// writes the finished one's grid, then (as ProGAN) gives the optimisers fresh moments and
    /// restarts the average at the trained weights: averaging the new resolution's layers from
    /// their random initial values would serve mostly noise for the next thousand steps.
    fn enter_growth(
        &self,
        nets: &mut Nets,
        schedule: Schedule,
        step: u64,
        g: Growth,
    ) -> Result<(), GanError> {
        let before = (step > 0).then(|| schedule.at(step - 1));
        if let Some(b) = before.filter(|b| b.level != g.level) {
            self.stage_grid(nets, b)?;
            nets.opt_d.reset()?;
            nets.opt_g.reset()?;
            if let Some((_, ema)) = nets.ema.as_mut() {
                ema.copy()?;
            }
        }
        nets.set_growth(g)
    }

    /// One training step at `step` (its batch and latents follow from the seed and the step, so
    /// a resumed run draws what an uninterrupted one would); returns the two losses.
    fn step(
        &self,
        nets: &mut Nets,
        step: u64,
        growth: Option<Growth>,
    ) -> Result<(f32, f32), GanError> {
        let config = self.config;
        let dim = config.architecture.latent_dim as usize;
        let batch = config.batch_size;
        let (indices, latents) = step_batch(config.seed, step, batch, self.dataset.len(), dim);
        let mut real = self.dataset.batch(&indices, self.device)?;
        if let Some(g) = growth {
            real = real_at(&real, g);
        }
        let z = Tensor::f_from_slice(&latents)?
            .f_view([batch as i64, dim as i64])?
            .f_to_device(self.device)?;
        let r1 = if config.r1_gamma > 0.0 && step.is_multiple_of(R1_EVERY) {
            config.r1_gamma * R1_EVERY as f64
        } else {
            0.0
        };
        let autocast = config.mixed_precision && self.device.is_cuda();
        let Nets {
            nets: gan,
            opt_d,
            opt_g,
            ema,
        } = nets;
        let losses = train_step_with(gan, opt_d, opt_g, &real, &z, r1, autocast)?;
        if let Some((_, ema)) = ema.as_mut() {
            ema.update(step)?;
        }
        Ok(losses)
    }

    fn nets(&self, state: &mut TrainState) -> Result<Nets, GanError> {
        let (arch, config, device, dir) = (
            &self.config.architecture,
            self.config,
            self.device,
            self.dir,
        );
        let card_path = dir.join(CARD_FILE);
        tch::manual_seed(config.seed as i64);
        let mut nets = GanNets::new(arch, device)?;
        let mut ema_generator = match config.ema_decay {
            Some(_) => Some(Generator::new(arch, device)?),
            None => None,
        };
        if config.resume {
            let card = ModelCard::load(&card_path)?;
            if &card.architecture != arch {
                return Err(GanError::Card {
                    path: card_path,
                    message: "the architecture differs from the one asked for".into(),
                });
            }
            let trained = dir.join(TRAINED_GENERATOR_FILE);
            let served = dir.join(GENERATOR_FILE);
            nets.generator = match (&ema_generator, card.training.ema_decay) {
                (Some(_), Some(_)) => Generator::load(arch, device, &trained)?,
                _ => Generator::load(arch, device, &served)?,
            };
            if let Some(ema) = ema_generator.as_mut() {
                *ema = if card.training.ema_decay.is_some() {
                    Generator::load(arch, device, &served)?
                } else {
                    // The average starts now, at the trained weights.
                    let mut g = Generator::new(arch, device)?;
                    g.copy_from(&nets.generator)?;
                    g
                };
            }
            nets.discriminator = Discriminator::load(arch, device, &dir.join(DISCRIMINATOR_FILE))?;
            let state_path = dir.join(STATE_FILE);
            let bytes = std::fs::read(&state_path).map_err(|e| GanError::io(&state_path, e))?;
            *state = serde_json::from_slice(&bytes).map_err(|e| GanError::Card {
                path: state_path.clone(),
                message: e.to_string(),
            })?;
        } else if card_path.exists() {
            return Err(GanError::Setting(format!(
                "{} already holds a model: pass --resume to continue it, or pick another name",
                dir.display()
            )));
        }
        let (mut opt_d, mut opt_g) = if config.schedule.is_some() {
            (
                adam_progressive(nets.discriminator.var_store(), config.learning_rate),
                adam_progressive(nets.generator.var_store(), config.learning_rate),
            )
        } else {
            (
                adam(nets.discriminator.var_store(), config.learning_rate)?,
                adam(nets.generator.var_store(), config.learning_rate)?,
            )
        };
        if config.resume {
            let (d_path, g_path) = (dir.join(OPTIMIZER_D_FILE), dir.join(OPTIMIZER_G_FILE));
            if d_path.is_file() && g_path.is_file() {
                opt_d.load(&d_path)?;
                opt_g.load(&g_path)?;
            } else {
                tracing::warn!(
                    dir = %dir.display(),
                    "no optimiser state in the checkpoint (written before it was kept): Adam starts afresh"
                );
            }
        }
        if config.mixed_precision && device.is_cuda() {
            opt_d.scale_losses();
            opt_g.scale_losses();
        }
        let ema = match (ema_generator, config.ema_decay) {
            (Some(g), Some(decay)) => {
                let mut ema = Ema::new(nets.generator.var_store(), g.var_store(), decay)?;
                if !config.resume {
                    ema.copy()?;
                }
                Some((g, ema))
            }
            _ => None,
        };
        Ok(Nets {
            nets,
            opt_d,
            opt_g,
            ema,
        })
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
    check_run(dataset, config)?;
    std::fs::create_dir_all(dir).map_err(|e| GanError::io(dir, e))?;
    let run = Run {
        dir,
        config,
        dataset,
        device,
    };
    let mut state = TrainState::default();
    let mut nets = run.nets(&mut state)?;
    let started = Instant::now();
    let start_step = state.step;
    let previous_elapsed = state.elapsed_s;
    let mut progress = Progress::new(config, state.step);
    let mut interrupted = false;
    let mut last = (f32::NAN, f32::NAN);
    while state.step < config.steps {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let growth = config.schedule.map(|s| s.at(state.step));
        if let (Some(schedule), Some(g)) = (config.schedule, growth) {
            run.enter_growth(&mut nets, schedule, state.step, g)?;
            progress.enter_phase(config, schedule, state.step, g);
        }
        last = run.step(&mut nets, state.step, growth)?;
        state.losses.push(last);
        state.step += 1;
        state.growth = growth.map(|g| (g.level, g.alpha));
        progress.after_step(state.step, config, last);
        if state.step % config.checkpoint_every == 0 && state.step < config.steps {
            state.elapsed_s = previous_elapsed + started.elapsed().as_secs_f64();
            run.checkpoint(&nets, &state, progress.images_per_s)?;
            tracing::info!(
                step = state.step,
                d_loss = last.0,
                g_loss = last.1,
                images_per_s = progress.images_per_s.round(),
                "checkpoint"
            );
        }
    }
    state.elapsed_s = previous_elapsed + started.elapsed().as_secs_f64();
    let run_seconds = started.elapsed().as_secs_f64();
    let run_rate = if run_seconds > 0.0 {
        (state.step - start_step) as f64 * config.batch_size as f64 / run_seconds
    } else {
        0.0
    };
    run.checkpoint(&nets, &state, run_rate)?;
    let growth = nets.nets.generator.growth();
    if let Some(g) = growth.filter(|g| g.alpha >= 1.0 && !interrupted) {
        run.stage_grid(&nets, g)?;
    }
    progress.bar.finish_and_clear();
    Ok(TrainReport {
        steps: state.step,
        interrupted,
        run_seconds,
        images_per_s: run_rate,
        last_d_loss: last.0,
        last_g_loss: last.1,
        growth,
    })
}

/// Refuses a run whose settings cannot train: an invalid architecture, a dataset of other
/// dimensions, zero batch or interval, a schedule without progressive growing (or the other way
/// round), a decay outside [0, 1).
fn check_run(dataset: &Dataset, config: &TrainConfig) -> Result<(), GanError> {
    let arch = &config.architecture;
    arch.validate().map_err(GanError::Architecture)?;
    if dataset.image_size() != arch.image_size || dataset.channels() != arch.channels {
        return Err(GanError::Shape(format!(
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
        return Err(GanError::Setting(
            "batch size and checkpoint interval must be positive".into(),
        ));
    }
    if (arch.family == ArchFamily::Progressive) != config.schedule.is_some() {
        return Err(GanError::Setting(
            "a progressive architecture needs a growth schedule, and only it takes one".into(),
        ));
    }
    if let Some(s) = config.schedule {
        if s.levels != arch.stages() + 1 || s.stage_steps == 0 || s.fade_steps == 0 {
            return Err(GanError::Setting(
                "the growth schedule needs positive stage and fade steps for every level".into(),
            ));
        }
    }
    if config.ema_decay.is_some_and(|d| !(0.0..1.0).contains(&d))
        || config.r1_gamma.is_nan()
        || config.r1_gamma < 0.0
    {
        return Err(GanError::Setting(
            "the moving-average decay must be in [0, 1) and the R1 weight not negative".into(),
        ));
    }
    Ok(())
}

/// The progress bar of a run and the images/s it shows: one bar for a DCGAN run, one per
/// phase (a resolution, or its fade-in) for a progressive run, made as the run reaches it.
struct Progress {
    bar: indicatif::ProgressBar,
    phase: Option<(u32, bool)>,
    /// Start of the current rate window and the step it started at.
    window: (Instant, u64),
    images_per_s: f64,
}

impl Progress {
    fn new(config: &TrainConfig, step: u64) -> Self {
        let shown = config.progress && config.schedule.is_none();
        let bar = crate::progress::bar(config.steps, "train", shown);
        bar.set_position(step);
        Self {
            bar,
            phase: None,
            window: (Instant::now(), step),
            images_per_s: 0.0,
        }
    }

    /// A new bar when `step` starts another phase of `schedule`.
    fn enter_phase(&mut self, config: &TrainConfig, schedule: Schedule, step: u64, g: Growth) {
        let key = (g.level, g.alpha < 1.0);
        if self.phase == Some(key) {
            return;
        }
        self.bar.finish_and_clear();
        let end = schedule.phase_end(step).min(config.steps).max(step + 1);
        let first = schedule.phase_start(step);
        self.bar = crate::progress::bar(end - first, &Schedule::phase_name(g), config.progress);
        self.bar.set_position(step - first);
        self.phase = Some(key);
    }

    /// Advances the bar; every ten steps, the losses and the rate over the last 30 s or more.
    fn after_step(&mut self, step: u64, config: &TrainConfig, last: (f32, f32)) {
        self.bar.inc(1);
        if !step.is_multiple_of(10) && step != config.steps {
            return;
        }
        let secs = self.window.0.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.images_per_s = (step - self.window.1) as f64 * config.batch_size as f64 / secs;
        }
        if secs > 30.0 {
            self.window = (Instant::now(), step);
        }
        self.bar.set_message(format!(
            "D {:.3} G {:.3} {:.0} img/s",
            last.0, last.1, self.images_per_s
        ));
    }
}

/// The model directory of `name` under `models_dir`, refusing names that are paths.
///
/// # Errors
/// When the name is empty or has path separators or `..`.
pub fn model_dir(models_dir: &Path, name: &str) -> Result<PathBuf, GanError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(GanError::Setting(format!(
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
            batch_size: 4,
            learning_rate: 2e-3,
            seed: 1,
            checkpoint_every: 2,
            ..TrainConfig::new(
                "tiny",
                Architecture {
                    family: ArchFamily::Dcgan,
                    image_size: 16,
                    channels: 1,
                    latent_dim: 8,
                    g_width: 4,
                    d_width: 4,
                    loss: Loss::NonSaturating,
                },
                2,
            )
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
            network: crate::gan::card::DetectorNetwork::Discriminator,
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
