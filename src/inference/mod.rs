//! The model's own thread. It owns the loaded GAN (no tensor ever leaves it), merges the latents
//! of concurrent requests into one forward pass (up to `limits.max_batch` images: those queued
//! when it starts, and with `limits.batch_delay_ms` those that arrive that much later), and admission control turns a full queue into an
//! immediate "busy" answer (HTTP 429) instead of an unbounded wait. Detection and enhancement
//! (the generator's inversion, `crate::enhance::invert`) run there too, batched with their kind.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use image::DynamicImage;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

pub mod threads;

use crate::config::{LimitSettings, ModelSettings};
use crate::detect::detector::Detection;
use crate::detect::Detector;
use crate::enhance::{InversionSettings, Inverted, Known};
use crate::gan::catalog::{load_model, LoadedModel};
use crate::gan::{latents_for, GanError};

/// What callers may know about the served model, copied off the model thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub latent_dim: usize,
    pub image_size: u32,
    pub channels: u32,
    /// Whether the model has a calibrated synthetic-image detector.
    pub has_detector: bool,
    /// The torch threads the model thread runs with, as torch reports them there.
    pub threads: threads::TorchThreads,
    /// The device the model runs on (`cpu`, `cuda:0`), named in every signed image.
    pub device: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("the model queue is full ({queued} images waiting); retry shortly")]
    QueueFull { queued: usize },
    #[error("the request waited longer than {0:?} for the model")]
    Timeout(Duration),
    #[error("the model thread has stopped")]
    Stopped,
    #[error("the model failed: {0}")]
    Model(String),
    #[error("the served model has no calibrated detector (run `hallmark train-detector`)")]
    NoDetector,
}

/// Counters the metrics endpoint and the tests read.
#[derive(Debug, Default)]
pub struct InferenceStats {
    pub batches: AtomicU64,
    pub images: AtomicU64,
    pub largest_batch: AtomicU64,
    pub last_batch: AtomicU64,
}

impl InferenceStats {
    fn record_batch(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.images.fetch_add(size, Ordering::Relaxed);
        self.largest_batch.fetch_max(size, Ordering::Relaxed);
        self.last_batch.store(size, Ordering::Relaxed);
    }
}

/// What a job asks of the model thread.
enum Task {
    /// Run the generator on `count` latent vectors (concatenated).
    Generate {
        latents: Vec<f32>,
        reply: oneshot::Sender<Result<Vec<DynamicImage>, InferenceError>>,
    },
    /// Score images with the model's synthetic-image detector.
    Detect {
        images: Vec<DynamicImage>,
        reply: oneshot::Sender<Result<Vec<Detection>, InferenceError>>,
    },
    /// Enhance a picture: invert the generator on what is known of it.
    Invert {
        known: Known,
        seed: u64,
        settings: InversionSettings,
        reply: oneshot::Sender<Result<Inverted, InferenceError>>,
    },
}

type InvertReply = oneshot::Sender<Result<Inverted, InferenceError>>;
/// Enhancements inverted together: their settings, pictures (with seeds) and replies.
type InvertGroup = (InversionSettings, Vec<(Known, u64)>, Vec<InvertReply>);

struct Job {
    task: Task,
    /// Images this job puts through the model (its share of a batch).
    count: usize,
    deadline: Instant,
    // Released when the job is answered, freeing its place in the queue.
    _permit: OwnedSemaphorePermit,
}

impl Job {
    /// Whether someone still waits for the answer.
    fn wanted(&self, now: Instant) -> bool {
        let closed = match &self.task {
            Task::Generate { reply, .. } => reply.is_closed(),
            Task::Detect { reply, .. } => reply.is_closed(),
            Task::Invert { reply, .. } => reply.is_closed(),
        };
        self.deadline > now && !closed
    }

    fn fail(self, error: InferenceError) {
        match self.task {
            Task::Generate { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Task::Detect { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Task::Invert { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// A cheap, cloneable handle to the model thread.
#[derive(Clone)]
pub struct Inference {
    sender: mpsc::Sender<Job>,
    queue: Arc<Semaphore>,
    queue_depth: usize,
    timeout: Duration,
    info: Arc<ModelInfo>,
    stats: Arc<InferenceStats>,
}

impl Inference {
    /// Starts the model thread, sets its torch threads (`model.intra_op_threads`,
    /// `model.inter_op_threads`) and loads the model on it; returns once it is loaded.
    ///
    /// # Errors
    /// The loader's error (unknown model, missing or corrupt weights), so `serve` fails fast.
    pub fn start<F>(
        model: &ModelSettings,
        device: tch::Device,
        limits: &LimitSettings,
        load: F,
    ) -> Result<Self, GanError>
    where
        F: FnOnce() -> Result<ServedModel, GanError> + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let stats = Arc::new(InferenceStats::default());
        let worker = Worker {
            max_batch: limits.max_batch.max(1),
            delay: Duration::from_millis(limits.batch_delay_ms),
            stats: Arc::clone(&stats),
        };
        let wanted =
            threads::TorchThreads::resolve(model, threads::available_cores(), device.is_cuda());
        thread::Builder::new()
            .name("hallmark-model".into())
            .spawn(move || match (wanted.apply(), load()) {
                (threads, Ok(served)) => {
                    let model = &served.model;
                    let info = ModelInfo {
                        name: model.name.clone(),
                        version: weights_version(model),
                        latent_dim: model.latent_dim(),
                        image_size: model.image_size(),
                        channels: model.card.architecture.channels,
                        has_detector: served.detector.is_some(),
                        threads,
                        device: crate::device::label(device),
                    };
                    let _ = ready_tx.send(Ok(info));
                    worker.run(&served, &receiver);
                }
                (_, Err(error)) => {
                    let _ = ready_tx.send(Err(error));
                }
            })
            .map_err(|e| GanError::Thread(format!("cannot start the model thread: {e}")))?;
        let info = ready_rx
            .recv()
            .map_err(|_| GanError::Thread("the model thread died while loading".into()))??;
        tracing::info!(
            model = %info.name,
            version = %info.version,
            intra_op_threads = info.threads.intra_op,
            inter_op_threads = info.threads.inter_op,
            "model loaded"
        );
        Ok(Self {
            sender,
            queue: Arc::new(Semaphore::new(limits.queue_depth)),
            queue_depth: limits.queue_depth,
            timeout: Duration::from_millis(limits.request_timeout_ms),
            info: Arc::new(info),
            stats,
        })
    }

    #[must_use]
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    #[must_use]
    pub fn stats(&self) -> &InferenceStats {
        &self.stats
    }

    /// Images waiting for or in the model now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue_depth - self.queue.available_permits()
    }

    /// Generates images `first_index .. first_index + count` for `seed`; image `i` comes from
    /// [`latents_for`]`(seed, i)`, so the pixels do not depend on what else shares the batch.
    ///
    /// # Errors
    /// [`InferenceError::QueueFull`] at once when the queue cannot take `count` more images,
    /// [`InferenceError::Timeout`] past `limits.request_timeout_ms`, or a model failure.
    pub async fn generate(
        &self,
        seed: u64,
        first_index: u64,
        count: usize,
    ) -> Result<Vec<DynamicImage>, InferenceError> {
        let dim = self.info.latent_dim;
        let mut latents = Vec::with_capacity(count * dim);
        for index in first_index..first_index + count as u64 {
            latents.extend(latents_for(seed, index, dim));
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Task::Generate { latents, reply }, count)?;
        self.wait(answer).await
    }

    /// Scores decoded images with the model's detector, batched with other work on the model
    /// thread. The images may have any size; the detector resizes them.
    ///
    /// # Errors
    /// As [`Inference::generate`]; [`InferenceError::NoDetector`] when the model has none.
    pub async fn detect(
        &self,
        images: Vec<DynamicImage>,
    ) -> Result<Vec<Detection>, InferenceError> {
        if !self.info.has_detector {
            return Err(InferenceError::NoDetector);
        }
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let count = images.len();
        let (reply, answer) = oneshot::channel();
        self.submit(Task::Detect { images, reply }, count)?;
        self.wait(answer).await
    }

    /// Enhances a picture by inversion of the generator ([`crate::enhance::invert`]), batched
    /// with the other enhancements waiting. It takes `settings.starts` places in the queue (the
    /// images it puts through the model at each step).
    ///
    /// # Errors
    /// As [`Inference::generate`]; [`InferenceError::Model`] for a picture that does not fit
    /// the model (callers check with [`crate::enhance::Operation::known`] first).
    pub async fn enhance(
        &self,
        known: Known,
        seed: u64,
        settings: InversionSettings,
    ) -> Result<Inverted, InferenceError> {
        let count = settings.starts.max(1);
        let (reply, answer) = oneshot::channel();
        self.submit(
            Task::Invert {
                known,
                seed,
                settings,
                reply,
            },
            count,
        )?;
        self.wait(answer).await
    }

    /// Admission: takes `count` places in the queue at once or refuses, then queues the task.
    fn submit(&self, task: Task, count: usize) -> Result<(), InferenceError> {
        let permit = u32::try_from(count)
            .ok()
            .and_then(|n| Arc::clone(&self.queue).try_acquire_many_owned(n).ok())
            .ok_or(InferenceError::QueueFull {
                queued: self.queued(),
            })?;
        let job = Job {
            task,
            count,
            deadline: Instant::now() + self.timeout,
            _permit: permit,
        };
        self.sender.send(job).map_err(|_| InferenceError::Stopped)
    }

    async fn wait<T>(
        &self,
        answer: oneshot::Receiver<Result<T, InferenceError>>,
    ) -> Result<T, InferenceError> {
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InferenceError::Stopped),
            Err(_) => Err(InferenceError::Timeout(self.timeout)),
        }
    }
}

struct Worker {
    max_batch: usize,
    delay: Duration,
    stats: Arc<InferenceStats>,
}

impl Worker {
    fn run(&self, model: &ServedModel, receiver: &mpsc::Receiver<Job>) {
        let mut carried: Option<Job> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match receiver.recv() {
                    Ok(job) => job,
                    Err(_) => return, // every handle dropped: shut down
                },
            };
            let (jobs, next) = self.gather(first, receiver);
            carried = next;
            self.answer(model, jobs);
        }
    }

    /// Takes more queued jobs into the batch until it is full or the delay has passed. A job
    /// that would overflow the batch is carried into the next one.
    fn gather(&self, first: Job, receiver: &mpsc::Receiver<Job>) -> (Vec<Job>, Option<Job>) {
        let until = Instant::now() + self.delay;
        let mut size = first.count;
        let mut jobs = vec![first];
        while size < self.max_batch {
            let remaining = until.saturating_duration_since(Instant::now());
            let next = if remaining.is_zero() {
                match receiver.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            } else {
                match receiver.recv_timeout(remaining) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            };
            if size + next.count > self.max_batch {
                return (jobs, Some(next));
            }
            size += next.count;
            jobs.push(next);
        }
        (jobs, None)
    }

    fn answer(&self, model: &ServedModel, jobs: Vec<Job>) {
        let now = Instant::now();
        // Nobody waits for a job whose caller gave up or whose deadline passed: skip its work.
        let (live, dead): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|job| job.wanted(now));
        for job in dead {
            job.fail(InferenceError::Timeout(Duration::ZERO));
        }
        let (generate, rest): (Vec<Job>, Vec<Job>) = live
            .into_iter()
            .partition(|job| matches!(job.task, Task::Generate { .. }));
        let (detect, invert): (Vec<Job>, Vec<Job>) = rest
            .into_iter()
            .partition(|job| matches!(job.task, Task::Detect { .. }));
        if !generate.is_empty() {
            self.generate(model, generate);
        }
        if !detect.is_empty() {
            Self::detect(model, detect);
        }
        if !invert.is_empty() {
            Self::invert(model, invert);
        }
    }

    /// Inverts the pictures of `jobs` together, one batch per distinct settings.
    fn invert(served: &ServedModel, jobs: Vec<Job>) {
        let mut groups: Vec<InvertGroup> = Vec::new();
        for job in jobs {
            if let Task::Invert {
                known,
                seed,
                settings,
                reply,
            } = job.task
            {
                match groups.iter_mut().find(|(s, _, _)| *s == settings) {
                    Some((_, pictures, replies)) => {
                        pictures.push((known, seed));
                        replies.push(reply);
                    }
                    None => groups.push((settings, vec![(known, seed)], vec![reply])),
                }
            }
        }
        for (settings, pictures, replies) in groups {
            let total = pictures.len();
            metrics::histogram!("hallmark_enhance_batch_size").record(total as f64);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::enhance::invert::invert(
                    &served.model.generator,
                    Some(&served.model.discriminator),
                    &pictures,
                    &settings,
                )
            }));
            let fail = |replies: Vec<InvertReply>, message: &str| {
                tracing::error!(error = message, "enhancement batch failed");
                for reply in replies {
                    let _ = reply.send(Err(InferenceError::Model(message.to_owned())));
                }
            };
            match result {
                Ok(Ok(out)) if out.len() == total => {
                    for (reply, inverted) in replies.into_iter().zip(out) {
                        let _ = reply.send(Ok(inverted));
                    }
                }
                Ok(Ok(_)) => fail(
                    replies,
                    "the inversion answered for another number of pictures",
                ),
                Ok(Err(error)) => fail(replies, &error.to_string()),
                Err(_) => fail(replies, "the inversion panicked"),
            }
        }
    }

    fn generate(&self, served: &ServedModel, jobs: Vec<Job>) {
        let mut latents = Vec::new();
        let mut replies = Vec::new();
        for job in jobs {
            if let Task::Generate {
                latents: mine,
                reply,
            } = job.task
            {
                latents.extend(mine);
                replies.push((job.count, reply));
            }
        }
        let total: usize = replies.iter().map(|(count, _)| count).sum();
        // tch reports some failures by panicking; keep the thread alive and answer with an error.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            served.model.generator.generate_flat(&latents)
        }));
        self.stats.record_batch(total);
        metrics::histogram!("hallmark_batch_size").record(total as f64);
        let images = match result {
            Ok(Ok(images)) if images.len() == total => images,
            Ok(Ok(images)) => {
                let message = format!("{} images came back for {total} latents", images.len());
                return fail_all(replies, &message);
            }
            Ok(Err(error)) => return fail_all(replies, &error.to_string()),
            Err(_) => return fail_all(replies, "the generator panicked"),
        };
        let mut images = images.into_iter();
        for (count, reply) in replies {
            let _ = reply.send(Ok(images.by_ref().take(count).collect()));
        }
    }

    fn detect(served: &ServedModel, jobs: Vec<Job>) {
        let mut images = Vec::new();
        let mut replies = Vec::new();
        for job in jobs {
            if let Task::Detect {
                images: mine,
                reply,
            } = job.task
            {
                images.extend(mine);
                replies.push((job.count, reply));
            }
        }
        let Some(detector) = served.detector.as_ref() else {
            for (_, reply) in replies {
                let _ = reply.send(Err(InferenceError::NoDetector));
            }
            return;
        };
        let total = images.len();
        metrics::histogram!("hallmark_detect_batch_size").record(total as f64);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            detector.detect(&served.model.name, &images)
        }));
        let detections = match result {
            Ok(Ok(detections)) if detections.len() == total => detections,
            Ok(Ok(detections)) => {
                let message = format!("{} scores came back for {total} images", detections.len());
                return fail_all(replies, &message);
            }
            Ok(Err(error)) => return fail_all(replies, &error.to_string()),
            Err(_) => return fail_all(replies, "the detector panicked"),
        };
        let mut detections = detections.into_iter();
        for (count, reply) in replies {
            let _ = reply.send(Ok(detections.by_ref().take(count).collect()));
        }
    }
}

/// What the model thread holds: the model and, when its card has a `[detector]` section, the
/// calibrated detector built from its discriminator.
#[derive(Debug)]
pub struct ServedModel {
    pub model: LoadedModel,
    pub detector: Option<Detector>,
}

impl ServedModel {
    /// Loads model `name` from `models_dir` and its detector.
    ///
    /// # Errors
    /// As [`load_model`] and [`Detector::load`]; each error names the file.
    pub fn load(
        models_dir: &std::path::Path,
        name: &str,
        device: tch::Device,
    ) -> Result<Self, GanError> {
        let model = load_model(models_dir, name, device)?;
        let detector = Detector::load(&model.dir, &model.card, &model.generator_sha256, device)?;
        Ok(Self { model, detector })
    }
}

/// The model's version is the start of the SHA-256 of its generator weights: it names exactly
/// the weights that made an image, whatever the card says.
fn weights_version(model: &LoadedModel) -> String {
    model.generator_sha256.chars().take(12).collect()
}

fn fail_all<T>(replies: Vec<(usize, oneshot::Sender<Result<T, InferenceError>>)>, message: &str) {
    tracing::error!(error = message, "model batch failed");
    for (_, reply) in replies {
        let _ = reply.send(Err(InferenceError::Model(message.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::enhance::{model_pixels, Known};

    fn start(queue_depth: usize) -> (Inference, Settings) {
        let mut settings = Settings::load(None).unwrap();
        settings.model.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models").into();
        settings.model.intra_op_threads = 1;
        settings.limits.queue_depth = queue_depth;
        settings.limits.batch_delay_ms = 20;
        let (dir, name) = (settings.model.dir.clone(), settings.model.name.clone());
        let inference = Inference::start(
            &settings.model,
            tch::Device::Cpu,
            &settings.limits,
            move || ServedModel::load(&dir, &name, tch::Device::Cpu),
        )
        .unwrap();
        (inference, settings)
    }

    /// Enhancements run on the model thread under the generation's admission control: each
    /// takes a place per start, a full queue refuses at once, and two pictures inverted in one
    /// batch come out as each would alone.
    #[tokio::test]
    async fn enhancements_share_the_model_queue_and_do_not_disturb_each_other() {
        let (inference, settings) = start(16);
        let mut inversion = settings.enhancement;
        inversion.starts = 8;
        inversion.steps = 4;
        let channels = inference.info().channels;
        let images = inference.generate(5, 0, 2).await.unwrap();
        let known: Vec<Known> = images
            .iter()
            .map(|i| Known::All {
                pixels: model_pixels(i, channels),
            })
            .collect();
        let alone = inference
            .enhance(known[0].clone(), 9, inversion)
            .await
            .unwrap();
        let size = inference.info().image_size as usize;
        assert_eq!(alone.pixels.len(), size * size * channels as usize);
        let (a, b) = tokio::join!(
            inference.enhance(known[0].clone(), 9, inversion),
            inference.enhance(known[1].clone(), 9, inversion)
        );
        let most = a
            .unwrap()
            .pixels
            .iter()
            .zip(&alone.pixels)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0_f32, f32::max);
        assert!(most < 1e-4, "{most}");
        assert!(b.is_ok());
        let mut too_many = inversion;
        too_many.starts = 17;
        assert!(matches!(
            inference.enhance(known[0].clone(), 9, too_many).await,
            Err(InferenceError::QueueFull { .. })
        ));
    }
}
