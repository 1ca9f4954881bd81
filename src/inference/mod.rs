//! The model's own thread. It owns the loaded GAN (no tensor ever leaves it), merges the latents
//! of concurrent requests into one forward pass (up to `limits.max_batch` images, waiting at most
//! `limits.batch_delay_ms` for company), and admission control turns a full queue into an
//! immediate "busy" answer (HTTP 429) instead of an unbounded wait.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use image::DynamicImage;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::LimitSettings;
use crate::gan::registry::LoadedModel;
use crate::gan::{latents_for, GanError};

/// What callers may know about the served model, copied off the model thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub latent_dim: usize,
    pub image_size: u32,
    pub channels: u32,
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

struct Job {
    latents: Vec<f32>,
    count: usize,
    deadline: Instant,
    reply: oneshot::Sender<Result<Vec<DynamicImage>, InferenceError>>,
    // Released when the job is answered, freeing its place in the queue.
    _permit: OwnedSemaphorePermit,
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
    /// Starts the model thread and loads the model on it; returns once it is loaded.
    ///
    /// # Errors
    /// The loader's error (unknown model, missing or corrupt weights), so `serve` fails fast.
    pub fn start<F>(limits: &LimitSettings, load: F) -> Result<Self, GanError>
    where
        F: FnOnce() -> Result<LoadedModel, GanError> + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let stats = Arc::new(InferenceStats::default());
        let worker = Worker {
            max_batch: limits.max_batch.max(1),
            delay: Duration::from_millis(limits.batch_delay_ms),
            stats: Arc::clone(&stats),
        };
        thread::Builder::new()
            .name("hallmark-model".into())
            .spawn(move || match load() {
                Ok(model) => {
                    let info = ModelInfo {
                        name: model.name.clone(),
                        version: weights_version(&model),
                        latent_dim: model.latent_dim(),
                        image_size: model.image_size(),
                        channels: model.card.architecture.channels,
                    };
                    let _ = ready_tx.send(Ok(info));
                    worker.run(&model, &receiver);
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            })
            .map_err(|e| GanError::Invalid(format!("cannot start the model thread: {e}")))?;
        let info = ready_rx
            .recv()
            .map_err(|_| GanError::Invalid("the model thread died while loading".into()))??;
        tracing::info!(model = %info.name, version = %info.version, "model loaded");
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
        let permit = u32::try_from(count)
            .ok()
            .and_then(|n| Arc::clone(&self.queue).try_acquire_many_owned(n).ok())
            .ok_or(InferenceError::QueueFull {
                queued: self.queued(),
            })?;
        let dim = self.info.latent_dim;
        let mut latents = Vec::with_capacity(count * dim);
        for index in first_index..first_index + count as u64 {
            latents.extend(latents_for(seed, index, dim));
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            latents,
            count,
            deadline: Instant::now() + self.timeout,
            reply,
            _permit: permit,
        };
        self.sender.send(job).map_err(|_| InferenceError::Stopped)?;
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
    fn run(&self, model: &LoadedModel, receiver: &mpsc::Receiver<Job>) {
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

    fn answer(&self, model: &LoadedModel, jobs: Vec<Job>) {
        let now = Instant::now();
        // Nobody waits for a job whose caller gave up or whose deadline passed: skip its work.
        let (live, dead): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|job| job.deadline > now && !job.reply.is_closed());
        for job in dead {
            let _ = job.reply.send(Err(InferenceError::Timeout(Duration::ZERO)));
        }
        if live.is_empty() {
            return;
        }
        let latents: Vec<f32> = live
            .iter()
            .flat_map(|job| job.latents.iter().copied())
            .collect();
        let total: usize = live.iter().map(|job| job.count).sum();
        // tch reports some failures by panicking; keep the thread alive and answer with an error.
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| model.generator.generate_flat(&latents)));
        self.stats.record_batch(total);
        metrics::histogram!("hallmark_batch_size").record(total as f64);
        match result {
            Ok(Ok(images)) if images.len() == total => {
                let mut images = images.into_iter();
                for job in live {
                    let mine: Vec<DynamicImage> = images.by_ref().take(job.count).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Ok(Ok(images)) => fail_all(
                live,
                &format!("{} images came back for {total} latents", images.len()),
            ),
            Ok(Err(error)) => fail_all(live, &error.to_string()),
            Err(_) => fail_all(live, "the generator panicked"),
        }
    }
}

/// The model's version is the start of the SHA-256 of its generator weights: it names exactly
/// the weights that made an image, whatever the card says.
fn weights_version(model: &LoadedModel) -> String {
    let path = model.dir.join(crate::gan::GENERATOR_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => hex::encode(&crate::fingerprint::sha256(&bytes)[..6]),
        Err(_) => "unknown".to_owned(),
    }
}

fn fail_all(jobs: Vec<Job>, message: &str) {
    tracing::error!(error = message, "generation batch failed");
    for job in jobs {
        let _ = job
            .reply
            .send(Err(InferenceError::Model(message.to_owned())));
    }
}
