//! Checking uploaded images: what their Content Credentials say, whether Hallmark made them
//! (even after the manifest was stripped or the image re-encoded), what the model's detector
//! says, and the verdict that follows from that evidence.
//!
//! [`VerifyService::check`] runs one file through the gate ([`upload::inspect`]), then reads its
//! manifest and hashes it on the blocking pool, looks it up in the registry
//! ([`crate::registry::Registry::find`]) and, for moderators, asks the model thread's detector; [`decide`] turns
//! the evidence into a [`Verdict`] with plain-language reasons.

pub mod thumbnails;
pub mod upload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::registry::view::{view, Audience, RecordView};
use image::DynamicImage;

use crate::blocking::BlockingError;
use crate::config::{LimitSettings, Settings, VerifySettings};
use crate::detect::detector::Detection;
use crate::fingerprint::align::query_phashes;
use crate::fingerprint::{pixel_sha256, sha256, Fingerprint, Fingerprinter, Sha256Digest};
use crate::inference::{Inference, InferenceError};
use crate::provenance::verify::{AiDeclaration, HallmarkIngredient};
use crate::provenance::{
    ImageFormat, ProvenanceReport, ProvenanceVerifier, TrustStore, ValidationState,
};
use crate::registry::confirm::{Tier, UploadProbe};
use crate::registry::{MatchKind, Registry, RegistryError, RegistryMatch};
use crate::store::checks;
use thumbnails::ThumbnailCache;
use upload::UploadError;

/// Memory for the thumbnails of checked files' credentials, all together.
const THUMBNAIL_CACHE_BYTES: usize = 64 << 20;

/// What the evidence adds up to (stored with each check, so it lives in `store::checks`).
pub use crate::store::checks::Verdict;

/// The registry part of a report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegistryEvidence {
    /// How the upload matched a record, if it did.
    #[serde(rename = "match")]
    pub matched: Option<MatchKind>,
    /// Hamming distance between perceptual hashes (0 for exact matches).
    pub distance: Option<u32>,
    /// The largest pHash distance that makes a record a candidate (`verify.phash_max_distance`).
    pub max_distance: u32,
    /// For a near duplicate: how it was confirmed — `reenacted` (the original put through the
    /// upload's edits reproduces it) or `aligned` (the original aligned over crops and scales
    /// resembles it closely enough).
    pub confirmation: Option<Tier>,
    /// For a near duplicate: its similarity to the original in that comparison (1 = identical).
    pub similarity: Option<f64>,
    /// The least similarity that confirms this near duplicate: `verify.min_reenacted_similarity`
    /// for a re-enacted match, `verify.min_similarity` for an aligned one (or
    /// `verify.min_similarity_downscaled` for an upload smaller than 3/4 of the original); without
    /// a near-duplicate match, `verify.min_similarity`.
    pub min_similarity: f64,
    /// Candidate originals compared pixel by pixel.
    pub candidates_compared: usize,
    pub record: Option<RecordView>,
    /// Why the registry was not consulted (the command line without a database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// The answer for one uploaded image.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// Id of the stored check (moderator checks); null for public look-ups.
    pub check_id: Option<Uuid>,
    pub file_name: Option<String>,
    /// SHA-256 of the uploaded bytes, hex.
    #[schema(value_type = String)]
    pub file_sha256: Sha256Digest,
    #[schema(value_type = String, example = "png")]
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub verdict: Verdict,
    /// A manifest is present but fails validation: the file changed after it was signed.
    pub tampered: bool,
    /// Plain sentences: the evidence and how it led to the verdict.
    pub explanation: Vec<String>,
    /// The Content Credentials report.
    #[schema(value_type = Object)]
    pub provenance: ProvenanceReport,
    pub registry: RegistryEvidence,
    /// The model's calibrated detector; null for public look-ups or a model without one.
    pub detector: Option<Detection>,
    /// The matched record's Content Credentials from the manifest repository, validated against
    /// the original image, when the upload itself carries no valid manifest of ours (stripped,
    /// re-encoded, resized, cropped): durable Content Credentials.
    #[schema(value_type = Option<Object>)]
    pub recovered: Option<Recovered>,
    pub checked_at: DateTime<Utc>,
}

/// Content Credentials recovered from the manifest repository for an upload that lost them.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// The `urn:c2pa:...` label of the original's manifest (`GET {c2pa_api.prefix}/manifests/{id}`).
    pub manifest_id: String,
    /// How the upload differs from the signed original, in words.
    pub upload_differs: String,
    /// The stored manifest store validated against the stored original image (not the upload,
    /// whose bytes differ).
    pub provenance: ProvenanceReport,
}

/// Time spent in each stage of a check (summed over files), for `Server-Timing` and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckTimes {
    pub decode: Duration,
    pub provenance: Duration,
    pub hash: Duration,
    pub registry: Duration,
    pub detect: Duration,
}

impl CheckTimes {
    pub fn add(&mut self, other: &Self) {
        self.decode += other.decode;
        self.provenance += other.provenance;
        self.hash += other.hash;
        self.registry += other.registry;
        self.detect += other.detect;
    }

    #[must_use]
    pub fn stages(&self) -> [(&'static str, Duration); 5] {
        [
            ("decode", self.decode),
            ("provenance", self.provenance),
            ("hash", self.hash),
            ("registry", self.registry),
            ("detect", self.detect),
        ]
    }
}

/// Why a check could not be made (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The upload was refused by the gate.
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Blocking(#[from] BlockingError),
    /// A report that cannot be stored as JSON (a fault of ours).
    #[error("the report does not serialise: {0}")]
    Report(#[from] serde_json::Error),
    /// No crJSON for the file ([`VerifyService::crjson`]).
    #[error(transparent)]
    CrJson(#[from] crate::provenance::verify::CrJsonError),
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Stores `reports` as checks made with the key `api_key_id`, in one transaction, and gives each
/// its `check_id`: the history of `GET /v1/checks`.
///
/// # Errors
/// When the database fails (nothing is stored then).
pub async fn store_checks(
    pool: &sqlx::PgPool,
    api_key_id: Uuid,
    reports: &mut [&mut VerifyReport],
) -> Result<(), CheckError> {
    for report in reports.iter_mut() {
        report.check_id = Some(Uuid::now_v7());
    }
    let rows = reports
        .iter()
        .map(|report| {
            Ok(checks::NewCheck {
                id: report.check_id.unwrap_or_default(),
                created_at: report.checked_at,
                api_key_id: Some(api_key_id),
                file_sha256: report.file_sha256.as_bytes(),
                file_name: report.file_name.as_deref(),
                verdict: report.verdict,
                matched_record_id: report.registry.record.as_ref().map(|r| r.id),
                report: serde_json::to_value(&**report)?,
            })
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    checks::insert_all(pool, &rows).await?;
    Ok(())
}

/// Which parts a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Moderators: provenance, registry and detector.
    Full,
    /// The public look-up: provenance and registry only.
    Lookup,
    /// Only which record the upload is (the Soft Binding Resolution API's `byContent`): as
    /// `Lookup`, without recovering the record's credentials or keeping thumbnails, which nobody
    /// would see.
    Match,
}

/// Everything a check needs, built once.
#[derive(Clone)]
pub struct VerifyService {
    /// The trust lists and the verifier built from them (swapped when a list changes).
    trust: Arc<TrustStore>,
    thumbnails: ThumbnailCache,
    fingerprinter: Arc<Fingerprinter>,
    /// The registry; `None` on the command line without a database.
    registry: Option<Registry>,
    /// The model thread, for the detector; `None` where no model is loaded.
    inference: Option<Inference>,
    limits: LimitSettings,
    settings: VerifySettings,
    /// Checks in progress at once (`limits.max_concurrent_checks`): each may hold a decoded
    /// upload, so this bounds the memory and CPU that uploads take together.
    slots: Arc<tokio::sync::Semaphore>,
}

impl VerifyService {
    /// `registry`: where uploads are looked up, when the registry can be consulted.
    ///
    /// # Errors
    /// When the trust anchors or our public keys cannot be read.
    pub fn from_settings(
        settings: &Settings,
        registry: Option<Registry>,
        inference: Option<Inference>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            trust: TrustStore::new(settings)?,
            thumbnails: ThumbnailCache::new(THUMBNAIL_CACHE_BYTES),
            fingerprinter: Arc::new(Fingerprinter::new()),
            registry,
            inference,
            limits: settings.limits.clone(),
            settings: settings.verify.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrent_checks(
                &settings.limits,
            ))),
        })
    }

    /// The registry, where the database is reachable.
    #[must_use]
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// The trust lists in use.
    #[must_use]
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// Thumbnails from the credentials of files checked lately.
    #[must_use]
    pub fn thumbnails(&self) -> &ThumbnailCache {
        &self.thumbnails
    }

    /// Whether the detector can run.
    #[must_use]
    pub fn has_detector(&self) -> bool {
        self.inference
            .as_ref()
            .is_some_and(|inference| inference.info().has_detector)
    }

    /// The file's manifest store as crJSON, validated with the trust lists in use
    /// ([`ProvenanceVerifier::crjson`]): the C2PA read alone, on the blocking pool, under the
    /// same limit on concurrent checks.
    ///
    /// # Errors
    /// [`CheckError::CrJson`] when there is no document to give.
    pub async fn crjson(&self, bytes: Vec<u8>) -> Result<serde_json::Value, CheckError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| CheckError::ShuttingDown)?;
        let verifier = self.trust.verifier();
        Ok(crate::blocking::run(move || verifier.crjson(&bytes)).await??)
    }

    /// Checks one file. Nothing is stored here (see [`crate::store::checks`]).
    ///
    /// # Errors
    /// A coded 4xx when the upload is refused by the gate; 503 when the database or the model is
    /// unavailable; 429 when the model queue is full.
    pub async fn check(
        &self,
        bytes: Vec<u8>,
        file_name: Option<String>,
        kind: CheckKind,
    ) -> Result<(VerifyReport, CheckTimes), CheckError> {
        // Held to the end: the decoded image lives until the detector has seen it.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| CheckError::ShuttingDown)?;
        let mut times = CheckTimes::default();
        let (mut inspected, image, probe) = {
            let provenance = self.trust.verifier();
            let fingerprinter = Arc::clone(&self.fingerprinter);
            let limits = self.limits.clone();
            crate::blocking::run(move || inspect(&bytes, &limits, &provenance, &fingerprinter))
                .await??
        };
        times.decode = inspected.times.decode;
        times.provenance = inspected.times.provenance;
        times.hash = inspected.times.hash;

        let started = Instant::now();
        let registry = self.registry_evidence(&inspected, probe, kind).await?;
        times.registry = started.elapsed();

        let started = Instant::now();
        let detector = match (kind, &self.inference) {
            (CheckKind::Full, Some(inference)) => match inference.detect(vec![image]).await {
                Ok(mut detections) => detections.pop(),
                Err(InferenceError::NoDetector) => None,
                Err(error) => return Err(error.into()),
            },
            _ => None,
        };
        times.detect = started.elapsed();

        let thumbnails = std::mem::take(&mut inspected.provenance.thumbnails);
        let recovered = if kind == CheckKind::Match {
            None
        } else {
            self.thumbnails.insert(thumbnails);
            self.recover(
                &inspected.provenance,
                &registry,
                (inspected.width, inspected.height),
                inspected.format,
            )
            .await?
        };
        let (verdict, tampered, explanation) = decide(
            &inspected.provenance,
            &registry,
            detector.as_ref(),
            kind,
            self.settings.accept_untrusted_declarations,
        );
        let mut explanation = explanation;
        if let Some(recovered) = &recovered {
            let at = explanation
                .iter()
                .position(|line| line.starts_with("Verdict:"))
                .unwrap_or(explanation.len());
            explanation.insert(
                at,
                format!(
                    "Its Content Credentials were recovered from Hallmark's manifest repository \
                     (manifest {}): {} against the signed original. The upload itself is {}.",
                    recovered.manifest_id,
                    match recovered.provenance.state {
                        ValidationState::Trusted => "valid and trusted",
                        ValidationState::ValidUntrusted => "valid, signer not trusted here",
                        _ => "NOT valid",
                    },
                    recovered.upload_differs
                ),
            );
        }
        metrics::counter!("hallmark_checks_total", "verdict" => verdict.as_str()).increment(1);
        Ok((
            VerifyReport {
                check_id: None,
                file_name,
                file_sha256: Sha256Digest(inspected.file_sha256),
                format: inspected.format,
                width: inspected.width,
                height: inspected.height,
                verdict,
                tampered,
                explanation,
                provenance: inspected.provenance,
                registry,
                detector,
                recovered,
                checked_at: Utc::now(),
            },
            times,
        ))
    }

    /// The matched record's manifest store, validated against its original, for an upload whose
    /// own manifest is not a valid one of ours.
    async fn recover(
        &self,
        upload: &ProvenanceReport,
        registry: &RegistryEvidence,
        (width, height): (u32, u32),
        format: ImageFormat,
    ) -> Result<Option<Recovered>, CheckError> {
        let (Some(kind), Some(record), Some(store)) = (
            registry.matched,
            registry.record.as_ref(),
            self.registry.as_ref(),
        ) else {
            return Ok(None);
        };
        if upload.hallmark.is_some() {
            return Ok(None);
        }
        let Some(sha) = crate::store::records::manifest_sha256(&store.pool, record.id).await?
        else {
            return Ok(None);
        };
        let (manifest, original) = match (
            store.blobs.get(&sha).await,
            store.blobs.get(record.file_sha256.as_bytes()).await,
        ) {
            (Ok(Some(manifest)), Ok(Some(original))) => (manifest, original),
            (manifest, original) => {
                tracing::error!(id = %record.id, manifest_found = matches!(manifest, Ok(Some(_))),
                    original_found = matches!(original, Ok(Some(_))), "manifest repository: a blob is missing");
                return Ok(None);
            }
        };
        let verifier = self.trust.verifier();
        let provenance =
            crate::blocking::run(move || verifier.verify_with_manifest(&manifest, &original))
                .await?;
        let upload_differs = match kind {
            MatchKind::FileSha256 => "it is the very file that was signed, yet its manifest \
                                      does not validate"
                .to_owned(),
            MatchKind::PixelSha256 => "same pixels as the signed original, in a different file: \
                                       its Content Credentials were stripped or the file re-saved"
                .to_owned(),
            MatchKind::Phash => format!(
                "a changed copy of the signed original, without its Content Credentials: {}",
                how_changed(
                    (width, height),
                    (record.width, record.height),
                    format,
                    &record.format
                )
            ),
        };
        Ok(Some(Recovered {
            manifest_id: record.manifest_id.clone(),
            upload_differs,
            provenance,
        }))
    }

    async fn registry_evidence(
        &self,
        inspected: &Inspected,
        probe: UploadProbe,
        check: CheckKind,
    ) -> Result<RegistryEvidence, CheckError> {
        let mut evidence = RegistryEvidence {
            matched: None,
            confirmation: None,
            distance: None,
            max_distance: self.settings.phash_max_distance,
            similarity: None,
            min_similarity: self.settings.min_similarity,
            candidates_compared: 0,
            record: None,
            unavailable: None,
        };
        let Some(registry) = &self.registry else {
            evidence.unavailable = Some("the database is not reachable".into());
            return Ok(evidence);
        };
        let search = registry
            .find(
                &inspected.file_sha256,
                &inspected.fingerprint,
                &inspected.query_phashes,
                probe,
                &self.settings,
            )
            .await?;
        evidence.candidates_compared = search.compared;
        if let Some(RegistryMatch {
            kind,
            record,
            distance,
            confirmed,
        }) = search.found
        {
            evidence.matched = Some(kind);
            evidence.distance = Some(distance);
            if let Some(confirmed) = confirmed {
                evidence.confirmation = Some(confirmed.tier);
                evidence.similarity = Some(confirmed.similarity);
                evidence.min_similarity = confirmed.threshold;
            }
            let audience = match check {
                CheckKind::Full => Audience::Staff,
                CheckKind::Lookup | CheckKind::Match => Audience::Public,
            };
            evidence.record = Some(view(&registry.pool, record, audience).await?);
        }
        Ok(evidence)
    }
}

/// How a near duplicate differs from its original, in words: re-encoded (same size), resized (same
/// shape), or cropped; and the format when it changed.
fn how_changed(
    upload: (u32, u32),
    original: (i32, i32),
    format: ImageFormat,
    original_format: &str,
) -> String {
    let (w, h) = upload;
    let (ow, oh) = (original.0.unsigned_abs(), original.1.unsigned_abs());
    let mut how = if (w, h) == (ow, oh) {
        format!("re-encoded at the same {w} x {h}")
    } else if (f64::from(w) * f64::from(oh) - f64::from(h) * f64::from(ow)).abs()
        <= 0.02 * f64::from(ow) * f64::from(oh)
    {
        format!("resized from {ow} x {oh} to {w} x {h}")
    } else {
        format!("cropped (and perhaps resized) from {ow} x {oh} to {w} x {h}")
    };
    if format.as_str() != original_format {
        how.push_str(&format!(
            ", as {} instead of {}",
            format.as_str().to_uppercase(),
            original_format.to_uppercase()
        ));
    }
    how
}

/// `limits.max_concurrent_checks`, where 0 means one per CPU core.
fn concurrent_checks(limits: &LimitSettings) -> usize {
    match limits.max_concurrent_checks {
        0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        n => n,
    }
}

/// The results of the CPU-bound part of a check.
struct Inspected {
    format: ImageFormat,
    width: u32,
    height: u32,
    file_sha256: [u8; 32],
    fingerprint: Fingerprint,
    /// The whole image's pHash and its crop windows' ([`query_phashes`]).
    query_phashes: Vec<u64>,
    provenance: ProvenanceReport,
    times: CheckTimes,
}

/// Gate, manifest, hashes. Runs on the blocking pool; returns the decoded image for the detector
/// and what the registry's comparison keeps of it.
fn inspect(
    bytes: &[u8],
    limits: &LimitSettings,
    verifier: &ProvenanceVerifier,
    fingerprinter: &Fingerprinter,
) -> Result<(Inspected, DynamicImage, UploadProbe), UploadError> {
    let mut times = CheckTimes::default();
    let started = Instant::now();
    let upload = upload::inspect(bytes, limits)?;
    times.decode = started.elapsed();
    let started = Instant::now();
    let provenance = verifier.verify(bytes);
    times.provenance = started.elapsed();
    let started = Instant::now();
    let file_sha256 = sha256(bytes);
    let (fingerprint, query_phashes, probe) = hashes(fingerprinter, &upload.image, bytes);
    times.hash = started.elapsed();
    Ok((
        Inspected {
            format: upload.format,
            width: upload.width,
            height: upload.height,
            file_sha256,
            fingerprint,
            query_phashes,
            provenance,
            times,
        },
        upload.image,
        probe,
    ))
}

/// The hash stage of a check: the fingerprint, the query pHashes and what the registry's
/// comparison keeps ([`UploadProbe`]) of a decoded upload whose file is `bytes`. The exact pixel
/// hash needs every pixel; the perceptual ones work on a copy of bounded size
/// ([`crate::fingerprint::working_copy`]), so a 4096x4096 upload costs about what a 512x512 one does.
#[must_use]
pub fn hashes(
    fingerprinter: &Fingerprinter,
    image: &DynamicImage,
    bytes: &[u8],
) -> (Fingerprint, Vec<u64>, UploadProbe) {
    let work = crate::fingerprint::working_copy(image);
    let fingerprint = Fingerprint {
        pixel_sha256: pixel_sha256(image),
        phash: fingerprinter.phash(&work),
    };
    let queries = query_phashes(fingerprinter, &work);
    let probe = UploadProbe::new(&work, bytes, image.width().max(image.height()));
    (fingerprint, queries, probe)
}

/// The verdict, whether the file was tampered with, and the sentences that explain both.
///
/// Order of strength: Hallmark's own evidence (a valid Hallmark manifest or a registry match),
/// then another producer's valid manifest declaring AI generation, then the detector.
#[must_use]
///
/// Another producer's history counts as follows: a Hallmark manifest among its ingredients (our
/// image, edited and signed again by someone else) is Hallmark's own evidence; a declaration of AI
/// generation anywhere down the ingredient chain counts when every manifest on the way is
/// trusted here (or merely valid, with `accept_untrusted`).
pub fn decide(
    provenance: &ProvenanceReport,
    registry: &RegistryEvidence,
    detector: Option<&Detection>,
    kind: CheckKind,
    accept_untrusted: bool,
) -> (Verdict, bool, Vec<String>) {
    // A manifest that fails validation, or one present but too broken to read, both say the
    // file changed after it was signed.
    let tampered = provenance.state == ValidationState::Invalid || provenance.damaged;
    let ours_inside = provenance.hallmark_ingredient();
    let declaration = provenance.ai_declaration(accept_untrusted);
    let verdict =
        if provenance.hallmark.is_some() || registry.matched.is_some() || ours_inside.is_some() {
            Verdict::HallmarkGenerated
        } else if declaration.is_some() {
            Verdict::AiGeneratedDeclared
        } else if detector.is_some_and(|d| d.likely_synthetic && !d.out_of_domain) {
            Verdict::LikelySynthetic
        } else {
            Verdict::NoEvidence
        };
    let mut why = credentials_explained(provenance);
    why.push(registry_explained(registry));
    why.extend(history_explained(
        provenance,
        ours_inside.as_ref(),
        declaration.as_ref(),
    ));
    why.extend(detector_explained(detector, kind));
    why.push(verdict_explained(verdict).to_owned());
    if tampered {
        why.push("Flag: tampered (see the validation failures).".to_owned());
    }
    (verdict, tampered, why)
}

/// What the Content Credentials themselves say: their state, and whose they are.
fn credentials_explained(provenance: &ProvenanceReport) -> Vec<String> {
    let mut why = Vec::new();
    let signer = provenance
        .signer
        .as_ref()
        .and_then(|s| s.common_name.as_deref().or(s.issuer.as_deref()))
        .unwrap_or("an unnamed signer");
    match provenance.state {
        ValidationState::Trusted => why.push(match &provenance.trusted_by {
            Some(list) => format!(
                "Content Credentials are present, valid, and signed by {signer}, trusted through \
                 the \"{list}\" trust list."
            ),
            None => format!(
                "Content Credentials are present, valid, and signed by {signer}, a trusted signer."
            ),
        }),
        ValidationState::ValidUntrusted => why.push(format!(
            "Content Credentials are present and intact, but the signer ({signer}) is not on this \
             service's trust list."
        )),
        ValidationState::Invalid => why.push(format!(
            "Content Credentials are present but fail validation ({}): the file was changed after \
             it was signed, or the signature is broken.",
            if provenance.failures.is_empty() {
                "no detail".to_owned()
            } else {
                provenance.failures.join(", ")
            }
        )),
        ValidationState::NoManifest => match &provenance.remote_manifest_url {
            Some(url) => why.push(format!(
                "The file points at a remote manifest ({url}), which is never fetched; it carries \
                 no Content Credentials of its own."
            )),
            None => why.push("The file carries no Content Credentials.".to_owned()),
        },
        ValidationState::Unreadable if provenance.damaged => why.push(format!(
            "Content Credentials are present but damaged beyond reading ({}): the file was \
             changed after it was signed.",
            provenance.error.as_deref().unwrap_or("unknown reason")
        )),
        ValidationState::Unsupported | ValidationState::Unreadable => why.push(format!(
            "The Content Credentials could not be read: {}.",
            provenance.error.as_deref().unwrap_or("unknown reason")
        )),
    }
    if let Some(h) = &provenance.hallmark {
        why.push(match (&h.parent_sha256, &h.description) {
            (Some(parent), Some(done)) => format!(
                "The manifest is Hallmark's own: record {}, an upload (sha256 {parent}) enhanced by \
                 Hallmark's model {} (version {}): {done}.",
                h.record_id, h.model, h.model_version
            ),
            _ => format!(
                "The manifest is Hallmark's own: record {}, made by model {} (version {}).",
                h.record_id, h.model, h.model_version
            ),
        });
    }
    why
}

/// What the registry found; for an enhancement's record, which upload it edited.
fn registry_explained(registry: &RegistryEvidence) -> String {
    let mut found = registry_match_explained(registry);
    if let Some(record) = registry
        .record
        .as_ref()
        .filter(|_| registry.matched.is_some())
    {
        if let (Some(parent), Some(operation)) = (&record.parent_sha256, &record.operation) {
            found.push_str(&format!(
                " That record is an enhancement ({operation}) by Hallmark's model {} of an \
                 upload with SHA-256 {parent} (GET /v1/records?sha256={parent} finds the upload's \
                 own record if Hallmark made it).",
                record.model
            ));
        }
    }
    found
}

/// Which record the registry matched, and how.
fn registry_match_explained(registry: &RegistryEvidence) -> String {
    let record_id = registry.record.as_ref().map(|r| r.id);
    match (registry.matched, record_id) {
        (Some(MatchKind::FileSha256), Some(id)) => {
            format!("This exact file is Hallmark record {id}.")
        }
        (Some(MatchKind::PixelSha256), Some(id)) => format!(
            "Its pixels are identical to Hallmark record {id}; only the file around them differs \
             (e.g. the manifest was stripped)."
        ),
        (Some(MatchKind::Phash), Some(id)) => format!(
            "It is a copy of Hallmark record {id} changed by re-encoding, resizing or cropping: \
             its perceptual hash is {} bits from the record's, and {} its pixels agree at {:.4} \
             (a match needs {:.4}).",
            registry.distance.unwrap_or_default(),
            match registry.confirmation {
                Some(Tier::Reenacted) => "the original put through the same edits reproduces it:",
                _ => "aligned to the original,",
            },
            registry.similarity.unwrap_or_default(),
            registry.min_similarity
        ),
        _ => match &registry.unavailable {
            Some(reason) => format!("The registry was not consulted: {reason}."),
            None if registry.candidates_compared > 0 => format!(
                "No Hallmark record matches: not the file, not the pixels; {} look-alike \
                 record(s) had a near perceptual hash, but none agreed pixel by pixel.",
                registry.candidates_compared
            ),
            None => format!(
                "No Hallmark record matches: not the file, not the pixels, and no perceptual hash \
                 within {} bits.",
                registry.max_distance
            ),
        },
    }
}

/// What the manifest history says: its length, a Hallmark image inside it, an AI declaration.
fn history_explained(
    provenance: &ProvenanceReport,
    ours_inside: Option<&HallmarkIngredient>,
    declaration: Option<&AiDeclaration>,
) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(history) = &provenance.history {
        let steps = history.manifests;
        if steps > 1 {
            why.push(format!(
                "Its history holds {steps} signed steps{}.",
                if history.truncated {
                    " (cut at the service's limit)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(inside) = ours_inside {
        let edits: Vec<&str> = inside
            .actions
            .iter()
            .map(|a| a.strip_prefix("c2pa.").unwrap_or(a))
            .collect();
        why.push(format!(
            "Its history contains Hallmark record {} (model {} {}): the image was edited after \
             generation by {}{}.",
            inside.claims.record_id,
            inside.claims.model,
            inside.claims.model_version,
            inside.edited_by,
            if edits.is_empty() {
                String::new()
            } else {
                format!(" ({})", edits.join(", "))
            }
        ));
    }
    if provenance.hallmark.is_none() && ours_inside.is_none() {
        match (declaration, provenance.ai_declaration(true)) {
            (Some(d), _) => why.push(match &d.ingredient {
                None => format!(
                    "The manifest declares the image AI-generated ({}), stated by {}.",
                    short_source_type(&d.source_type),
                    d.by
                ),
                Some(title) => format!(
                    "Its history declares AI generation: the ingredient \"{title}\", {} step(s) \
                     back, was made by {} as {}.",
                    d.depth,
                    d.by,
                    short_source_type(&d.source_type)
                ),
            }),
            (None, Some(d)) => why.push(format!(
                "A manifest in its history declares AI generation ({}, stated by {}), but its \
                 signer is not trusted here, so the declaration does not count \
                 (verify.accept_untrusted_declarations is off).",
                short_source_type(&d.source_type),
                d.by
            )),
            (None, None) => {}
        }
    }
    why
}

/// What the detector said, if it ran.
fn detector_explained(detector: Option<&Detection>, kind: CheckKind) -> Vec<String> {
    let mut why = Vec::new();
    match detector {
        Some(d) if d.out_of_domain => why.push(format!(
            "The detector ({}) did not score it: {}.",
            d.model,
            d.out_of_domain_reason
                .as_deref()
                .unwrap_or("outside the model's domain")
        )),
        Some(d) => {
            why.push(format!(
                "The detector ({}) gives a {:.1}% probability that this image is synthetic \
                 (threshold {:.1}%).",
                d.model,
                d.probability.unwrap_or_default() * 100.0,
                d.threshold * 100.0
            ));
            if let Some(n) = &d.nearest_family {
                why.push(format!(
                    "Its traces are nearest to the {} family of generators ({}; {:.0}% by the \
                     detector's family head).",
                    n.family,
                    n.how,
                    n.probability * 100.0
                ));
            }
        }
        None if kind == CheckKind::Full => {
            why.push("No detector is available for the served model.".to_owned());
        }
        None => {}
    }

    why
}

/// The verdict in words.
fn verdict_explained(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::HallmarkGenerated => "Verdict: made by Hallmark.",
        Verdict::AiGeneratedDeclared => "Verdict: declared AI-generated by its producer.",
        Verdict::LikelySynthetic => {
            "Verdict: likely synthetic, by the detector alone: made by a generator of the kinds \
                 this detector was trained to recognise. It says nothing of generators unlike \
                 those."
        }
        Verdict::NoEvidence => "Verdict: no evidence of AI generation.",
    }
}

/// `trainedAlgorithmicMedia` for the IPTC URL.
fn short_source_type(source_type: &str) -> &str {
    source_type.rsplit('/').next().unwrap_or(source_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::history::{Action, History, IngredientNode, ManifestNode};

    fn provenance(state: ValidationState) -> ProvenanceReport {
        serde_json::from_value(serde_json::json!({
            "state": state, "format": "png", "manifest_id": null, "title": null,
            "claim_generator": null, "digital_source_type": null, "signer": null,
            "hallmark": null, "failures": [], "successes": [], "informational": [],
            "remote_manifest_url": null, "error": null
        }))
        .unwrap()
    }

    fn no_match() -> RegistryEvidence {
        RegistryEvidence {
            matched: None,
            confirmation: None,
            distance: None,
            max_distance: 10,
            similarity: None,
            min_similarity: 0.95,
            candidates_compared: 0,
            record: None,
            unavailable: None,
        }
    }

    fn detection(probability: f64, out_of_domain: bool) -> Detection {
        Detection {
            model: "m".into(),
            probability: (!out_of_domain).then_some(probability),
            threshold: 0.5,
            likely_synthetic: !out_of_domain && probability >= 0.5,
            out_of_domain,
            out_of_domain_reason: out_of_domain.then(|| "colour image".into()),
            nearest_family: None,
        }
    }

    const AI: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

    fn node(generator: &str, actions: &[(&str, Option<&str>)]) -> ManifestNode {
        ManifestNode {
            label: Some(format!("urn:c2pa:{generator}")),
            title: Some(format!("{generator}.jpg")),
            format: Some("image/jpeg".into()),
            claim_generator: Some(generator.into()),
            signer: None,
            hallmark: None,
            actions: actions
                .iter()
                .map(|(action, source)| Action {
                    action: (*action).into(),
                    software_agent: None,
                    digital_source_type: source.map(str::to_owned),
                    when: None,
                    description: None,
                    parameters: None,
                })
                .collect(),
            ingredients: Vec::new(),
            identities: Vec::new(),
            thumbnail: None,
        }
    }

    fn with_parent(
        mut child: ManifestNode,
        parent: ManifestNode,
        state: ValidationState,
    ) -> ManifestNode {
        child.ingredients.push(IngredientNode {
            title: parent.title.clone(),
            format: parent.format.clone(),
            relationship: Some("parentOf".into()),
            state,
            failures: Vec::new(),
            thumbnail: None,
            manifest: Some(Box::new(parent)),
        });
        child
    }

    fn with_history(state: ValidationState, root: ManifestNode) -> ProvenanceReport {
        let mut p = provenance(state);
        p.history = Some(History {
            manifest: root,
            manifests: 1,
            truncated: false,
        });
        p
    }

    #[test]
    fn declared_ai_origin_from_another_producer() {
        let p = with_history(
            ValidationState::Trusted,
            node("maker/1", &[("c2pa.created", Some(AI))]),
        );
        let (verdict, tampered, why) = decide(&p, &no_match(), None, CheckKind::Lookup, false);
        assert_eq!(verdict, Verdict::AiGeneratedDeclared);
        assert!(!tampered);
        assert!(
            why.iter()
                .any(|l| l.contains("declares") && l.contains("trainedAlgorithmicMedia")),
            "{why:?}"
        );
    }

    #[test]
    fn an_untrusted_declaration_counts_only_when_the_operator_says_so() {
        let p = with_history(
            ValidationState::ValidUntrusted,
            node("maker/1", &[("c2pa.created", Some(AI))]),
        );
        let (verdict, _, why) = decide(&p, &no_match(), None, CheckKind::Lookup, false);
        assert_eq!(verdict, Verdict::NoEvidence);
        assert!(why.iter().any(|l| l.contains("does not count")), "{why:?}");
        let (verdict, _, _) = decide(&p, &no_match(), None, CheckKind::Lookup, true);
        assert_eq!(verdict, Verdict::AiGeneratedDeclared);
    }

    #[test]
    fn a_declaration_down_the_ingredient_chain_names_the_step() {
        let generated = node("generator/2", &[("c2pa.created", Some(AI))]);
        let edit = with_parent(
            node("editor/1", &[("c2pa.opened", None), ("c2pa.cropped", None)]),
            generated,
            ValidationState::Trusted,
        );
        let active = with_parent(
            node("publisher/3", &[("c2pa.published", None)]),
            edit.clone(),
            ValidationState::Trusted,
        );
        let p = with_history(ValidationState::Trusted, active);
        let declaration = p.ai_declaration(false).unwrap();
        assert_eq!(declaration.depth, 2);
        assert_eq!(declaration.by, "generator/2");
        assert_eq!(declaration.ingredient.as_deref(), Some("generator/2.jpg"));
        let (verdict, _, why) = decide(&p, &no_match(), None, CheckKind::Lookup, false);
        assert_eq!(verdict, Verdict::AiGeneratedDeclared);
        assert!(
            why.iter()
                .any(|l| l.contains("\"generator/2.jpg\"") && l.contains("2 step(s) back")),
            "{why:?}"
        );
        // An untrusted link in the chain breaks it.
        let broken = with_history(
            ValidationState::Trusted,
            with_parent(
                node("publisher/3", &[]),
                edit,
                ValidationState::ValidUntrusted,
            ),
        );
        assert!(broken.ai_declaration(false).is_none());
        assert!(broken.ai_declaration(true).is_some());
    }

    #[test]
    fn our_image_edited_by_someone_else_is_still_ours() {
        let mut ours = node("hallmark/0.1.0", &[("c2pa.created", Some(AI))]);
        ours.hallmark = Some(crate::provenance::verify::HallmarkClaims {
            record_id: Uuid::nil(),
            model: "fashion-dcgan32".into(),
            model_version: "3".into(),
            seed: 7,
            phash: "0011223344556677".into(),
            signing_key_id: "k".into(),
            device: Some("cpu".into()),
            operation: None,
            parent_sha256: None,
            description: None,
        });
        let edit = with_parent(
            node(
                "editor/1",
                &[("c2pa.opened", None), ("c2pa.color_adjustments", None)],
            ),
            ours,
            ValidationState::Trusted,
        );
        let p = with_history(ValidationState::ValidUntrusted, edit);
        let (verdict, _, why) = decide(&p, &no_match(), None, CheckKind::Lookup, false);
        assert_eq!(verdict, Verdict::HallmarkGenerated);
        assert!(
            why.iter()
                .any(|l| l.contains("edited after generation by editor/1")
                    && l.contains("color_adjustments")),
            "{why:?}"
        );
    }

    #[test]
    fn an_invalid_manifest_is_tampered_and_not_trusted_for_its_claims() {
        let mut p = provenance(ValidationState::Invalid);
        p.digital_source_type =
            Some("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia".into());
        p.failures = vec!["assertion.dataHash.mismatch".into()];
        let (verdict, tampered, why) = decide(&p, &no_match(), None, CheckKind::Lookup, false);
        assert_eq!(verdict, Verdict::NoEvidence);
        assert!(tampered);
        assert!(why[0].contains("assertion.dataHash.mismatch"));
    }

    #[test]
    fn a_damaged_manifest_is_tampered_but_a_draft_is_not() {
        let mut damaged = provenance(ValidationState::Unreadable);
        damaged.damaged = true;
        damaged.error = Some("JUMBF parse error".into());
        let mut registry = no_match();
        registry.matched = Some(MatchKind::PixelSha256);
        let (verdict, tampered, why) = decide(&damaged, &registry, None, CheckKind::Lookup, false);
        assert_eq!(verdict, Verdict::HallmarkGenerated);
        assert!(tampered);
        assert!(why[0].contains("damaged"), "{why:?}");
        let mut draft = provenance(ValidationState::Unreadable);
        draft.error = Some("pre-release (draft) C2PA content, not supported".into());
        assert!(!decide(&draft, &no_match(), None, CheckKind::Lookup, false).1);
    }

    #[test]
    fn the_nearest_family_is_named_in_the_explanation() {
        let p = provenance(ValidationState::NoManifest);
        let mut high = detection(0.9, false);
        let (_, _, why) = decide(&p, &no_match(), Some(&high), CheckKind::Full, false);
        assert!(!why.iter().any(|l| l.contains("nearest to")), "{why:?}");
        high.nearest_family = Some(crate::detect::NearestFamily {
            family: "pixelshuffle".into(),
            how: "sub-pixel shuffle".into(),
            probability: 0.83,
        });
        let (verdict, _, why) = decide(&p, &no_match(), Some(&high), CheckKind::Full, false);
        assert_eq!(verdict, Verdict::LikelySynthetic);
        assert!(
            why.iter()
                .any(|l| l.contains("nearest to the pixelshuffle family") && l.contains("83%")),
            "{why:?}"
        );
    }

    #[test]
    fn detector_decides_only_without_provenance_and_in_domain() {
        let p = provenance(ValidationState::NoManifest);
        let high = detection(0.9, false);
        let low = detection(0.1, false);
        let away = detection(0.0, true);
        let run = |d: &Detection| decide(&p, &no_match(), Some(d), CheckKind::Full, false).0;
        assert_eq!(run(&high), Verdict::LikelySynthetic);
        let (_, _, why) = decide(&p, &no_match(), Some(&high), CheckKind::Full, false);
        assert!(
            why.last()
                .unwrap()
                .contains("generator of the kinds this detector was trained"),
            "{why:?}"
        );
        assert_eq!(run(&low), Verdict::NoEvidence);
        assert_eq!(run(&away), Verdict::NoEvidence);
        let (_, _, why) = decide(&p, &no_match(), Some(&away), CheckKind::Full, false);
        assert!(why.iter().any(|l| l.contains("colour image")), "{why:?}");
    }

    #[test]
    fn a_registry_match_wins_over_everything_else() {
        let p = provenance(ValidationState::NoManifest);
        let mut registry = no_match();
        registry.matched = Some(MatchKind::Phash);
        registry.distance = Some(4);
        let (verdict, _, _) = decide(
            &p,
            &registry,
            Some(&detection(0.1, false)),
            CheckKind::Full,
            false,
        );
        assert_eq!(verdict, Verdict::HallmarkGenerated);
    }

    #[test]
    fn changes_are_named() {
        let png = ImageFormat::Png;
        assert_eq!(
            how_changed((32, 32), (32, 32), ImageFormat::Jpeg, "png"),
            "re-encoded at the same 32 x 32, as JPEG instead of PNG"
        );
        assert_eq!(
            how_changed((16, 16), (32, 32), png, "png"),
            "resized from 32 x 32 to 16 x 16"
        );
        assert_eq!(
            how_changed((28, 28), (32, 30), png, "png"),
            "cropped (and perhaps resized) from 32 x 30 to 28 x 28"
        );
    }

    #[test]
    fn verdict_names_are_stable() {
        let names: Vec<String> = Verdict::ALL
            .iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let want = [
            "hallmark_generated",
            "ai_generated_declared",
            "likely_synthetic",
            "no_evidence",
        ];
        assert_eq!(names, want);
        for v in Verdict::ALL {
            assert_eq!(v.as_str(), serde_json::to_value(v).unwrap());
        }
    }
}
