//! The generation pipeline: model → encode → fingerprint → C2PA sign → SHA-256 of the signed
//! file → blob store + signed records (and their transparency-log entries) committed in one
//! transaction, shared with the requests that finish at about the same time (group commit,
//! [`commit`]). On the local blob store the blobs are written without a sync and their bytes
//! are committed with the records (the blob journal, `store::blob_journal`), so that one commit
//! makes both durable. No image is handed back unless its record is committed; on any failure
//! the blobs just written are removed again, and since blobs are only reachable through a
//! record, none is ever seen half-made.

pub mod commit;

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::DynamicImage;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use anyhow::Context;

use crate::blocking;
use crate::blocking::BlockingError;
use crate::config::Settings;
use crate::device::{DeviceChoice, DeviceName};
use crate::enhance::{EnhanceError, InversionSettings, Operation};
use crate::fingerprint::iscc::ImageCode;
use crate::fingerprint::{self, Fingerprinter};
use crate::inference::{Inference, InferenceError, ServedModel};
use crate::provenance::record::now_micros;
use crate::provenance::{
    EditClaim, ImageClaim, ImageFormat, ProvenanceSigner, Record, RecordFields,
};
use crate::registry::index::HashIndex;
use crate::store::blob_journal::BlobJournal;
use crate::store::blobs::{BlobError, Blobs};

use self::commit::{CommitError, Committer, Rows};

/// Most images one request may ask for.
pub const MAX_COUNT: u32 = 64;
/// Random seeds stay below 2^53 so JavaScript clients read them exactly.
const RANDOM_SEED_BITS: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Png,
    Jpeg,
}

/// `POST /v1/generations` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationRequest {
    /// Model name; the served model when absent.
    pub model: Option<String>,
    /// Images to make, 1 to 64.
    pub count: u32,
    /// Seed; image `i` of a request is fully determined by (model, seed, i). Random when absent.
    pub seed: Option<u64>,
    #[serde(default = "default_format")]
    pub format: OutputFormat,
    /// JPEG quality 1..=100 (default 90); not allowed for PNG.
    pub quality: Option<u8>,
    /// Answer only once a signed checkpoint of the transparency log includes every image's
    /// record, with each image's `log_index` and c2sp.org/tlog-proof@v1 `log_proof` (default
    /// `false`: answer as soon as the records commit). Bounded by
    /// `transparency_log.wait_timeout_ms`.
    #[serde(default)]
    pub wait_for_log: bool,
}

fn default_format() -> OutputFormat {
    OutputFormat::Png
}

/// A checked request.
#[derive(Debug, Clone, Copy)]
pub struct GenerationSpec {
    pub count: usize,
    pub seed: u64,
    /// Index of the first image (the API always starts at 0; the CLI continues past 64).
    pub first_index: u64,
    pub format: OutputFormat,
    pub jpeg_quality: u8,
}

impl OutputFormat {
    #[must_use]
    pub fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
        }
    }
}

impl GenerationRequest {
    /// Parses the request against the served model.
    ///
    /// # Errors
    /// 400 with a code for a bad count, format or quality; 404 `unknown_model` for a model not served.
    pub fn validate(&self, served_model: &str) -> Result<GenerationSpec, GenerationError> {
        if let Some(model) = &self.model {
            if model != served_model {
                return Err(GenerationError::UnknownModel {
                    asked: model.clone(),
                    served: served_model.to_owned(),
                });
            }
        }
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Err(GenerationError::InvalidCount(self.count));
        }
        let (format, jpeg_quality) = match (self.format, self.quality) {
            (OutputFormat::Png, None) => (OutputFormat::Png, 0),
            (OutputFormat::Png, Some(_)) => return Err(GenerationError::QualityForPng),
            (OutputFormat::Jpeg, quality) => {
                let quality = quality.unwrap_or(90);
                if !(1..=100).contains(&quality) {
                    return Err(GenerationError::InvalidQuality(quality));
                }
                (OutputFormat::Jpeg, quality)
            }
        };
        Ok(GenerationSpec {
            count: self.count as usize,
            seed: self
                .seed
                .unwrap_or_else(|| rand::random::<u64>() & RANDOM_SEED_BITS),
            first_index: 0,
            format,
            jpeg_quality,
        })
    }
}

/// One finished image: its committed record and the exact bytes served.
#[derive(Debug, Clone)]
pub struct Generated {
    pub record: Record,
    /// The pHashes registered for the near-duplicate search (whole image, then crop windows).
    pub variant_phashes: Vec<u64>,
    pub bytes: Bytes,
    pub format: ImageFormat,
    /// The manifest store embedded in `bytes` (JUMBF), kept in the manifest repository.
    pub manifest: Bytes,
    /// Its SHA-256: its name in the blob store, `records.manifest_sha256`.
    pub manifest_sha256: [u8; 32],
    /// The ISCC Content-Code Image of the image signed (its `io.iscc.v0` soft binding), kept in
    /// `record_iscc` for the Soft Binding Resolution API.
    pub iscc: ImageCode,
}

impl Generated {
    /// Its two blobs, by name (SHA-256) and bytes: the signed image and its manifest store.
    #[must_use]
    pub fn blobs(&self) -> [(&[u8], &Bytes); 2] {
        [
            (&self.record.fields.file_sha256, &self.bytes),
            (&self.manifest_sha256, &self.manifest),
        ]
    }
}

/// Time spent in each stage, summed over a request's images.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub inference: Duration,
    pub encode: Duration,
    pub fingerprint: Duration,
    pub sign: Duration,
    /// From signed images to durable records: `store_blobs` then `store_commit`.
    pub store: Duration,
    /// Writing the request's blobs (concurrently; unsynced on the local store, whose bytes the
    /// commit journals).
    pub store_blobs: Duration,
    /// Waiting for a group's transaction and committing it (with the records of the requests
    /// that share it).
    pub store_commit: Duration,
}

impl StageTimes {
    fn add(&mut self, other: &StageTimes) {
        self.encode += other.encode;
        self.fingerprint += other.fingerprint;
        self.sign += other.sign;
    }

    /// Each stage's time, in pipeline order (encode, fingerprint and sign summed over images),
    /// then the two parts of `store` (`store-blobs`, `store-commit`) for `Server-Timing`.
    #[must_use]
    pub fn stages(&self) -> [(&'static str, Duration); 7] {
        [
            ("inference", self.inference),
            ("encode", self.encode),
            ("fingerprint", self.fingerprint),
            ("sign", self.sign),
            ("store", self.store),
            ("store-blobs", self.store_blobs),
            ("store-commit", self.store_commit),
        ]
    }

    fn record_metrics(&self) {
        // The stages proper; `store`'s parts are in `Server-Timing` only.
        for (stage, time) in self.stages().into_iter().take(5) {
            metrics::histogram!("hallmark_generation_stage_seconds", "stage" => stage)
                .record(time.as_secs_f64());
        }
    }
}

/// Everything the pipeline needs, built once at start-up.
#[derive(Clone)]
pub struct GenerationService {
    pub inference: Inference,
    pub signer: Arc<ProvenanceSigner>,
    pub fingerprinter: Arc<Fingerprinter>,
    pub blobs: Blobs,
    pub pool: PgPool,
    /// The service's near-duplicate index, told of each record as soon as it is committed (the
    /// database's notification reaches it too, a moment later).
    pub index: Option<HashIndex>,
    /// Commits the records of concurrent requests in shared transactions (`[generation]`).
    pub committer: Committer,
    /// The local store's blob journal (inactive on S3).
    pub journal: BlobJournal,
}

/// Why a generation failed. The HTTP layer maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("model {asked:?} is not served here; this service serves {served:?}")]
    UnknownModel { asked: String, served: String },
    #[error("count must be between 1 and {MAX_COUNT}, got {0}")]
    InvalidCount(u32),
    #[error("quality applies to JPEG only")]
    QualityForPng,
    #[error("JPEG quality must be between 1 and 100, got {0}")]
    InvalidQuality(u8),
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// An upload out of the model's domain, or an enhancement that cannot apply to it.
    #[error(transparent)]
    Enhance(EnhanceError),
    /// Too many finished requests wait for a commit (`[generation] commit_queue_depth`).
    #[error("too many generations are waiting to be committed ({queued} requests); retry shortly")]
    CommitQueueFull { queued: usize },
    /// The API key was revoked before the request's records committed: nothing was stored.
    #[error("the API key is unknown or has been revoked")]
    KeyRevoked,
    #[error("the image store is full: {0}")]
    StorageFull(#[source] BlobError),
    #[error("the image store failed: {0}")]
    Storage(#[source] BlobError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Blocking(#[from] BlockingError),
    /// Encoding or signing failed: a fault of ours, not of the request.
    #[error("cannot make the image: {0}")]
    Image(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl GenerationService {
    /// Loads the model named in the settings on its own thread, the signing identity and the
    /// blob store; starts the group committer on the current tokio runtime.
    ///
    /// # Errors
    /// When any of them cannot be loaded, the message says which; outside a tokio runtime.
    pub fn from_settings(settings: &Settings, pool: PgPool) -> anyhow::Result<Self> {
        tokio::runtime::Handle::try_current()
            .context("the generation service needs a tokio runtime for its committer")?;
        let device = settings.model.device.parse::<DeviceChoice>()?.resolve()?;
        tracing::info!(device = %DeviceName(device), cuda = tch::Cuda::is_available(), "torch device");
        let (models_dir, name) = (settings.model.dir.clone(), settings.model.name.clone());
        let inference = Inference::start(&settings.model, device, &settings.limits, move || {
            ServedModel::load(&models_dir, &name, device)
        })
        .with_context(|| {
            format!(
                "cannot load model {:?} from {}",
                settings.model.name,
                settings.model.dir.display()
            )
        })?;
        let signer = ProvenanceSigner::from_settings(settings)
            .context("cannot load the signing identity")?;
        let blobs =
            Blobs::from_settings(&settings.storage).context("cannot open the blob store")?;
        let committer = Committer::start(pool.clone(), &settings.generation);
        let journal = BlobJournal::new(pool.clone(), blobs.clone());
        journal.spawn(Duration::from_millis(
            settings.storage.blob_sync_interval_ms,
        ));
        Ok(Self {
            inference,
            signer: Arc::new(signer),
            fingerprinter: Arc::new(Fingerprinter::new()),
            blobs,
            pool,
            index: None,
            committer,
            journal,
        })
    }

    /// Runs the whole pipeline for one request.
    ///
    /// # Errors
    /// 429 when the model queue or the commit queue is full, 503 when the model or the database
    /// is unavailable, 500 for anything else; nothing is left behind in either store.
    pub async fn generate(
        &self,
        spec: GenerationSpec,
        api_key_id: Option<Uuid>,
    ) -> Result<(Vec<Generated>, StageTimes), GenerationError> {
        let mut times = StageTimes::default();
        let started = Instant::now();
        let images = self
            .inference
            .generate(spec.seed, spec.first_index, spec.count)
            .await?;
        times.inference = started.elapsed();

        let info = self.inference.info();
        let mut tasks = Vec::with_capacity(images.len());
        for (index, image) in images.into_iter().enumerate() {
            let job = ImageJob {
                image,
                index: spec.first_index + index as u64,
                spec,
                model: info.name.clone(),
                model_version: info.version.clone(),
                device: info.device.clone(),
                api_key_id,
                signer: Arc::clone(&self.signer),
                fingerprinter: Arc::clone(&self.fingerprinter),
                edit: None,
            };
            tasks.push(blocking::run(move || job.finish()));
        }
        let mut generated = Vec::with_capacity(tasks.len());
        for task in futures_util::future::join_all(tasks).await {
            let (image, image_times) = task??;
            times.add(&image_times);
            generated.push(image);
        }

        let generated = self.store(generated, &mut times).await?;
        times.record_metrics();
        metrics::counter!("hallmark_images_generated_total").increment(generated.len() as u64);
        Ok((generated, times))
    }

    /// Enhances an upload with the served model ([`crate::enhance`]) and signs, registers and
    /// logs the result as an edit of the upload (a PNG; record encoding 3).
    ///
    /// # Errors
    /// [`GenerationError::Enhance`] for a picture out of the model's domain or an operation
    /// that cannot apply (nothing runs then); otherwise as [`Self::generate`].
    pub async fn enhance(
        &self,
        spec: EnhancementSpec,
        api_key_id: Option<Uuid>,
    ) -> Result<(Generated, StageTimes), GenerationError> {
        let info = self.inference.info();
        let known = spec
            .operation
            .known(&spec.image, info.image_size, info.channels)
            .map_err(GenerationError::Enhance)?;
        let refine_steps = spec.settings.refine.for_known(&known).steps;
        let mut times = StageTimes::default();
        let started = Instant::now();
        let inverted = self
            .inference
            .enhance(known, spec.seed, spec.settings)
            .await?;
        times.inference = started.elapsed();
        let mut parameters = spec.operation.parameters();
        parameters.insert("candidates".into(), spec.settings.candidates.into());
        parameters.insert("starts".into(), spec.settings.starts.into());
        parameters.insert("steps".into(), spec.settings.steps.into());
        parameters.insert("refine_steps".into(), refine_steps.into());
        // As the record and Hallmark's assertion state it (C2PA's CBOR has no u64 past i64).
        parameters.insert(
            "seed".into(),
            i64::from_ne_bytes(spec.seed.to_ne_bytes()).into(),
        );
        let job = ImageJob {
            image: crate::enhance::to_image(&inverted.pixels, info.image_size, info.channels),
            index: 0,
            spec: GenerationSpec {
                count: 1,
                seed: spec.seed,
                first_index: 0,
                format: OutputFormat::Png,
                jpeg_quality: 90,
            },
            model: info.name.clone(),
            model_version: info.version.clone(),
            device: info.device.clone(),
            api_key_id,
            signer: Arc::clone(&self.signer),
            fingerprinter: Arc::clone(&self.fingerprinter),
            edit: Some(EditOrigin {
                upload: spec.upload,
                operation: spec.operation,
                parameters,
            }),
        };
        let (image, image_times) = blocking::run(move || job.finish()).await??;
        times.add(&image_times);
        let mut generated = self.store(vec![image], &mut times).await?;
        metrics::counter!("hallmark_images_enhanced_total").increment(1);
        generated
            .pop()
            .map(|image| (image, times))
            .ok_or_else(|| GenerationError::Image("the enhancement made no image".into()))
    }

    /// The store stage: blobs, then the records in a group's transaction. It runs to its end
    /// even when the caller goes away (a client hanging up drops this future): blobs written are
    /// then always either committed or removed.
    async fn store(
        &self,
        generated: Vec<Generated>,
        times: &mut StageTimes,
    ) -> Result<Vec<Generated>, GenerationError> {
        let started = Instant::now();
        let store = Store {
            blobs: self.blobs.clone(),
            committer: self.committer.clone(),
            index: self.index.clone(),
            journal: self.journal.clone(),
        };
        let (generated, [blob_time, commit_time], result) = tokio::spawn(store.run(generated))
            .await
            .map_err(|error| GenerationError::Blocking(BlockingError::from(error)))?;
        result?;
        times.store = started.elapsed();
        times.store_blobs = blob_time;
        times.store_commit = commit_time;
        Ok(generated)
    }
}

/// An enhancement request, its upload through the gate: the bytes as received, their decoded
/// pixels, the operation, the seed of the inversion's starts, and the inversion's budget.
#[derive(Debug, Clone)]
pub struct EnhancementSpec {
    pub upload: Bytes,
    pub image: DynamicImage,
    pub operation: Operation,
    pub seed: u64,
    pub settings: InversionSettings,
}

/// The store stage of one request, on its own task.
struct Store {
    blobs: Blobs,
    committer: Committer,
    index: Option<HashIndex>,
    journal: BlobJournal,
}

impl Store {
    /// Blobs first, then the records in a group's transaction; undo the blobs if anything fails.
    /// Hands the images back with the time the blobs and the commit took.
    ///
    /// Writing the blobs while the records commit (their bytes are durable through the journal
    /// rows in any case) was measured at one connection and gained nothing above the machine's
    /// noise (`docs/benchmarks.md`), so the simpler order stays: a commit never precedes its
    /// blobs.
    async fn run(
        self,
        generated: Vec<Generated>,
    ) -> (Vec<Generated>, [Duration; 2], Result<(), GenerationError>) {
        let started = Instant::now();
        let written = self.write_blobs(&generated).await;
        let blob_time = started.elapsed();
        let started = Instant::now();
        let result = match written {
            Ok(()) => self.commit(&generated).await,
            Err(error) => Err(error),
        };
        let commit_time = started.elapsed();
        let names = || {
            generated
                .iter()
                .flat_map(Generated::blobs)
                .map(|(name, _)| name.to_vec())
        };
        if result.is_ok() {
            self.journal.committed(names());
            if let Some(index) = &self.index {
                for image in &generated {
                    index.insert(image.record.fields.id, &image.variant_phashes);
                }
            }
        } else {
            for name in names() {
                if let Err(error) = self.blobs.delete(&name).await {
                    tracing::warn!(error = %error, "could not remove a blob after a failed commit");
                }
            }
        }
        (generated, [blob_time, commit_time], result)
    }

    /// The request's records in a group's transaction.
    async fn commit(&self, generated: &[Generated]) -> Result<(), GenerationError> {
        self.committer
            .commit(rows(generated, self.journal.enabled()))
            .await
            .map_err(|error| match error {
                // As the model queue answers: 429 queue_full, retry shortly.
                CommitError::QueueFull { queued } => GenerationError::CommitQueueFull { queued },
                CommitError::KeyRevoked => GenerationError::KeyRevoked,
                CommitError::Stopped => GenerationError::Database(sqlx::Error::WorkerCrashed),
                CommitError::Database(error) => GenerationError::Database(error),
            })
    }

    /// The request's blobs (each image and its manifest store), written concurrently before
    /// its records are queued for commit: on S3 each is durable when written, on the local
    /// store the commit journals their bytes and a checkpoint syncs them later.
    async fn write_blobs(&self, generated: &[Generated]) -> Result<(), GenerationError> {
        futures_util::future::try_join_all(
            generated
                .iter()
                .flat_map(Generated::blobs)
                .map(|(name, bytes)| self.blobs.put_unsynced(name, bytes.clone())),
        )
        .await
        .map(|_| ())
        .map_err(|error| {
            if crate::store::blobs::is_storage_full(&error) {
                tracing::error!(error = %error, "the blob store is full");
                GenerationError::StorageFull(error)
            } else {
                GenerationError::Storage(error)
            }
        })
    }
}

/// A request's rows for the committer; with `journal`, the bytes of its blobs too.
fn rows(generated: &[Generated], journal: bool) -> Rows {
    Rows {
        records: generated.iter().map(|g| g.record.clone()).collect(),
        manifest_sha256: generated
            .iter()
            .map(|g| g.manifest_sha256.to_vec())
            .collect(),
        variant_phashes: generated
            .iter()
            .map(|g| (g.record.fields.id, g.variant_phashes.clone()))
            .collect(),
        iscc: generated
            .iter()
            .map(|g| (g.record.fields.id, g.iscc))
            .collect(),
        log_entries: generated
            .iter()
            .map(|g| (g.record.fields.id, crate::tlog::entry(&g.record)))
            .collect(),
        journal: if journal {
            generated
                .iter()
                .flat_map(|g| {
                    let id = g.record.fields.id;
                    g.blobs()
                        .map(move |(name, bytes)| (id, name.to_vec(), bytes.clone()))
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The blocking part of one image: encode, fingerprint, sign, hash.
struct ImageJob {
    image: DynamicImage,
    index: u64,
    spec: GenerationSpec,
    model: String,
    model_version: String,
    device: String,
    api_key_id: Option<Uuid>,
    signer: Arc<ProvenanceSigner>,
    fingerprinter: Arc<Fingerprinter>,
    /// For an enhancement: the upload it edits and how.
    edit: Option<EditOrigin>,
}

/// What makes an image an edit of an upload: the upload as received, the operation, and the
/// parameters its manifest states.
#[derive(Debug, Clone)]
struct EditOrigin {
    upload: Bytes,
    operation: Operation,
    parameters: serde_json::Map<String, serde_json::Value>,
}

impl ImageJob {
    fn finish(self) -> Result<(Generated, StageTimes), GenerationError> {
        let mut times = StageTimes::default();
        let started = Instant::now();
        let encoded = encode(&self.image, self.spec.format, self.spec.jpeg_quality)
            .map_err(|error| GenerationError::Image(Box::new(error)))?;
        times.encode = started.elapsed();

        let started = Instant::now();
        // The whole image's pHash is the first of its registered variants.
        let variant_phashes = fingerprint::align::variant_phashes(&self.fingerprinter, &self.image);
        let phash = variant_phashes[0];
        let pixel_sha256 = fingerprint::pixel_sha256(&self.image);
        times.fingerprint = started.elapsed();

        let started = Instant::now();
        let id = Uuid::now_v7();
        let seed = i64::from_ne_bytes(self.spec.seed.to_ne_bytes());
        let claim = ImageClaim {
            record_id: id,
            model: self.model.clone(),
            model_version: self.model_version.clone(),
            seed,
            phash,
            title: match &self.edit {
                None => format!(
                    "{} seed {} image {}",
                    self.model, self.spec.seed, self.index
                ),
                Some(edit) => format!(
                    "an upload {} by {} (seed {})",
                    edit.operation.describe(),
                    self.model,
                    self.spec.seed
                ),
            },
            format: self.spec.format.image_format(),
            device: self.device,
        };
        let signed = match &self.edit {
            None => self.signer.sign_image(&claim, &encoded),
            Some(edit) => self.signer.sign_edit(
                &claim,
                &encoded,
                &EditClaim {
                    parent: &edit.upload,
                    operation: edit.operation.name(),
                    description: &edit.operation.describe(),
                    parameters: edit.parameters.clone(),
                },
            ),
        }
        .map_err(|error| GenerationError::Image(Box::new(error)))?;
        let fields = RecordFields {
            id,
            created_at: now_micros(),
            model: self.model,
            model_version: self.model_version,
            seed,
            format: self.spec.format.image_format().as_str().to_owned(),
            width: i32::try_from(self.image.width()).unwrap_or(i32::MAX),
            height: i32::try_from(self.image.height()).unwrap_or(i32::MAX),
            file_sha256: fingerprint::sha256(&signed.bytes).to_vec(),
            pixel_sha256: pixel_sha256.to_vec(),
            phash: fingerprint::phash_to_db(phash),
            manifest_id: signed.manifest_id,
            signing_key_id: self.signer.key_id().to_owned(),
            api_key_id: self.api_key_id,
            encoding: if self.edit.is_some() {
                crate::provenance::record::EDIT_ENCODING
            } else {
                crate::provenance::record::CURRENT_ENCODING
            },
            parent_sha256: self
                .edit
                .as_ref()
                .map(|e| fingerprint::sha256(&e.upload).to_vec()),
            operation: self.edit.as_ref().map(|e| e.operation.name().to_owned()),
        };
        let signature = self
            .signer
            .sign_record(&fields)
            .map_err(|error| GenerationError::Image(Box::new(error)))?;
        times.sign = started.elapsed();
        Ok((
            Generated {
                record: Record { fields, signature },
                variant_phashes,
                bytes: Bytes::from(signed.bytes),
                format: self.spec.format.image_format(),
                manifest_sha256: fingerprint::sha256(&signed.manifest),
                manifest: Bytes::from(signed.manifest),
                iscc: signed.iscc,
            },
            times,
        ))
    }
}

/// Encodes pixels as PNG or JPEG (grey images stay one channel).
///
/// # Errors
/// When the encoder fails.
pub fn encode(
    image: &DynamicImage,
    format: OutputFormat,
    jpeg_quality: u8,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    match (format, image) {
        (OutputFormat::Png, _) => image.write_with_encoder(PngEncoder::new(&mut out))?,
        (OutputFormat::Jpeg, DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_)) => {
            image.write_with_encoder(JpegEncoder::new_with_quality(&mut out, jpeg_quality))?;
        }
        (OutputFormat::Jpeg, other) => DynamicImage::ImageRgb8(other.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, jpeg_quality))?,
    }
    Ok(out.into_inner())
}
