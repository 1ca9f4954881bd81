//! Reading and validating Content Credentials in any image.
//!
//! [`ProvenanceVerifier`] is built once and shared. [`ProvenanceVerifier::verify`] never fails:
//! every outcome is a [`ProvenanceReport`]. Only PNG, JPEG and WebP (by magic bytes) reach the
//! C2PA parser; remote manifests are never fetched; a panic inside the parser is caught and
//! reported as unreadable.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use c2pa::{Context, Reader};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::history::{self, History, ManifestNode, ThumbnailBytes, Walker};
use super::keys::PublicKey;
use super::pki::{self, parse_pem_certificates};
use super::sign::GenerationAssertion;
use super::trust::{self, TrustList};
use super::{ImageFormat, ProvenanceError, HALLMARK_ASSERTION};
use crate::config::{Settings, TrustListKind};

const SIGNING_CREDENTIAL_TRUSTED: &str = "signingCredential.trusted";
const SIGNING_CREDENTIAL_UNTRUSTED: &str = "signingCredential.untrusted";
/// The validation status code for a signer whose revocation status was not checked.
pub const OCSP_SKIPPED: &str = "signingCredential.ocsp.skipped";
/// The validation status code for a manifest that cannot be retrieved (a remote one).
pub const MANIFEST_INACCESSIBLE: &str = "manifest.inaccessible";

/// Why [`ProvenanceVerifier::crjson`] has no document for a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrJsonError {
    #[error("not a PNG, JPEG or WebP file")]
    Unsupported,
    #[error("the file carries no C2PA manifest store")]
    NoManifest,
    #[error("the manifest is remote ({0}) and Hallmark never fetches remote manifests (manifest.inaccessible)")]
    Inaccessible(String),
    #[error("the C2PA reader cannot read this file: {0}")]
    Unreadable(String),
}

/// The outcome of validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationState {
    /// Valid, and the signer chains to a trust anchor (our CA or a configured one).
    Trusted,
    /// Cryptographically valid, but the signer is not trusted here (`signingCredential.untrusted`).
    ValidUntrusted,
    /// A manifest is present but fails validation (see `failures`).
    Invalid,
    /// No embedded manifest (a remote reference, if any, is reported, not fetched).
    NoManifest,
    /// Not PNG, JPEG or WebP: not parsed at all.
    Unsupported,
    /// A manifest-bearing file the reader could not process (see `error`).
    Unreadable,
}

impl ValidationState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trusted => "trusted",
            Self::ValidUntrusted => "valid_untrusted",
            Self::Invalid => "invalid",
            Self::NoManifest => "no_manifest",
            Self::Unsupported => "unsupported",
            Self::Unreadable => "unreadable",
        }
    }
}

impl std::fmt::Display for ValidationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who signed the active manifest, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerInfo {
    pub issuer: Option<String>,
    pub common_name: Option<String>,
    pub algorithm: Option<String>,
    /// Time of a trusted time-stamp, when there is one.
    pub time: Option<String>,
}

/// Hallmark's claims, reported only when the manifest is valid and signed by one of this
/// service's keys (current or retired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HallmarkClaims {
    pub record_id: Uuid,
    pub model: String,
    pub model_version: String,
    pub seed: i64,
    /// Perceptual hash, 16 hex digits.
    pub phash: String,
    /// Id of the key that signed (`signing_keys.id`).
    pub signing_key_id: String,
    /// The device the model ran on, as the manifest states it (`cpu`, `cuda:0`).
    #[serde(default)]
    pub device: Option<String>,
    /// For an enhancement: the operation (`restore`, `inpaint`, `upscale`) and the SHA-256 of
    /// the upload it edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What the Content Credentials of a file say. Serialised as the API's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceReport {
    pub state: ValidationState,
    /// The format named by the magic bytes, when accepted.
    pub format: Option<ImageFormat>,
    /// Label of the active manifest (`urn:c2pa:...`).
    pub manifest_id: Option<String>,
    pub title: Option<String>,
    /// `name/version` of each claim generator, space-separated (e.g. `hallmark/0.1.0`).
    pub claim_generator: Option<String>,
    /// IPTC digital source type of the creating action, when stated.
    pub digital_source_type: Option<String>,
    pub signer: Option<SignerInfo>,
    pub hallmark: Option<HallmarkClaims>,
    /// Validation status codes of the active manifest and its ingredients.
    pub failures: Vec<String>,
    pub successes: Vec<String>,
    pub informational: Vec<String>,
    /// A remote manifest the file points at; never fetched.
    pub remote_manifest_url: Option<String>,
    /// Why the file could not be read, for `unsupported` and `unreadable`.
    pub error: Option<String>,
    /// A manifest store is present but broken (it cannot be parsed, and is not merely a
    /// pre-release draft): the file was changed after it was signed.
    #[serde(default)]
    pub damaged: bool,
    /// The trust list whose anchor the signer chains to (`hallmark`, `operator` or a configured
    /// list's name), for a trusted manifest.
    #[serde(default)]
    pub trusted_by: Option<String>,
    /// The whole manifest store as a tree: every manifest's actions and ingredients.
    #[serde(default)]
    pub history: Option<History>,
    /// The RFC 3161 time-stamp on the active manifest's signature, when there is one, checked
    /// against every trust list's anchors (the `tsa` lists are there for this).
    #[serde(default)]
    pub time_stamp: Option<TimeStamp>,
    /// The thumbnails the history refers to, for the service's thumbnail cache; not serialised.
    #[serde(skip)]
    pub thumbnails: Vec<ThumbnailBytes>,
}

/// A time-stamp and what the reader made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeStamp {
    /// When the time-stamp authority says the signature existed.
    pub time: Option<String>,
    /// The authority's certificate common name, as the reader names it.
    pub authority: Option<String>,
    /// `trusted` (its certificate chains to a trust list), `untrusted` (valid, but no list vouches
    /// for the authority) or `invalid` (it does not match the signature, or is malformed).
    pub state: String,
    /// The reader's `timeStamp.*` codes.
    pub codes: Vec<String>,
}

/// A declaration of AI generation somewhere in a file's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiDeclaration {
    /// The IPTC digital source type declared.
    pub source_type: String,
    /// `None` for the active manifest; else the title of the ingredient that declared it.
    pub ingredient: Option<String>,
    /// Who made the declaring manifest (claim generator, else signer).
    pub by: String,
    /// Ingredient levels below the active manifest (0 = the active manifest).
    pub depth: usize,
}

/// A Hallmark image found inside another producer's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HallmarkIngredient {
    pub claims: HallmarkClaims,
    /// Who made the manifest that took it as an ingredient.
    pub edited_by: String,
    /// The actions of that manifest, e.g. `c2pa.cropped`.
    pub actions: Vec<String>,
}

impl ProvenanceReport {
    fn empty(state: ValidationState, format: Option<ImageFormat>) -> Self {
        Self {
            state,
            format,
            manifest_id: None,
            title: None,
            claim_generator: None,
            digital_source_type: None,
            signer: None,
            hallmark: None,
            failures: Vec::new(),
            successes: Vec::new(),
            informational: Vec::new(),
            remote_manifest_url: None,
            error: None,
            damaged: false,
            trusted_by: None,
            history: None,
            time_stamp: None,
            thumbnails: Vec::new(),
        }
    }

    /// Whether the active manifest states the image was made by a generative model (whoever
    /// signed it; see [`Self::ai_declaration`] for what counts toward a verdict).
    #[must_use]
    pub fn declares_ai_origin(&self) -> bool {
        matches!(
            self.state,
            ValidationState::Trusted | ValidationState::ValidUntrusted
        ) && self
            .digital_source_type
            .as_deref()
            .is_some_and(is_ai_source_type)
    }

    /// The first declaration of AI generation in the history, nearest the active manifest:
    /// an action with digital source type `trainedAlgorithmicMedia` or
    /// `compositeWithTrainedAlgorithmicMedia` in the active manifest or in any ingredient's, down
    /// the chain. Every manifest on the way must be valid and trusted here, or merely valid when
    /// `accept_untrusted` (`verify.accept_untrusted_declarations`).
    #[must_use]
    pub fn ai_declaration(&self, accept_untrusted: bool) -> Option<AiDeclaration> {
        let acceptable = |state: ValidationState| {
            state == ValidationState::Trusted
                || (accept_untrusted && state == ValidationState::ValidUntrusted)
        };
        if !acceptable(self.state) {
            return None;
        }
        let root = &self.history.as_ref()?.manifest;
        let mut level: Vec<(&ManifestNode, Option<&str>)> = vec![(root, None)];
        let mut depth = 0;
        while !level.is_empty() && depth <= history::MAX_DEPTH {
            let mut next = Vec::new();
            for (node, title) in level {
                if let Some(source_type) = node
                    .actions
                    .iter()
                    .filter_map(|a| a.digital_source_type.as_deref())
                    .find(|t| is_ai_source_type(t))
                {
                    return Some(AiDeclaration {
                        source_type: source_type.to_owned(),
                        ingredient: (depth > 0).then(|| title.unwrap_or("untitled").to_owned()),
                        by: node_author(node),
                        depth,
                    });
                }
                for ingredient in &node.ingredients {
                    if let (Some(inner), true) =
                        (&ingredient.manifest, acceptable(ingredient.state))
                    {
                        next.push((inner.as_ref(), ingredient.title.as_deref()));
                    }
                }
            }
            level = next;
            depth += 1;
        }
        None
    }

    /// A manifest of Hallmark's own among the ingredients (an image this service made, edited
    /// and signed again by someone else), when that ingredient validated.
    #[must_use]
    pub fn hallmark_ingredient(&self) -> Option<HallmarkIngredient> {
        fn walk(node: &ManifestNode) -> Option<HallmarkIngredient> {
            for ingredient in &node.ingredients {
                let Some(inner) = &ingredient.manifest else {
                    continue;
                };
                if let (Some(claims), false) = (
                    &inner.hallmark,
                    ingredient.state == ValidationState::Invalid,
                ) {
                    return Some(HallmarkIngredient {
                        claims: claims.clone(),
                        edited_by: node_author(node),
                        actions: node.actions.iter().map(|a| a.action.clone()).collect(),
                    });
                }
                if let Some(found) = walk(inner) {
                    return Some(found);
                }
            }
            None
        }
        if self.hallmark.is_some()
            || !matches!(
                self.state,
                ValidationState::Trusted | ValidationState::ValidUntrusted
            )
        {
            return None;
        }
        walk(&self.history.as_ref()?.manifest)
    }

    /// A few lines for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        fn line(out: &mut String, name: &str, value: Option<&str>) {
            if let Some(value) = value {
                let _ = writeln!(out, "{name}: {value}");
            }
        }
        let mut out = format!("state: {}\n", self.state);
        line(&mut out, "format", self.format.map(ImageFormat::as_str));
        line(&mut out, "manifest", self.manifest_id.as_deref());
        line(&mut out, "title", self.title.as_deref());
        line(&mut out, "claim generator", self.claim_generator.as_deref());
        line(
            &mut out,
            "digital source type",
            self.digital_source_type.as_deref(),
        );
        if let Some(signer) = &self.signer {
            line(&mut out, "signer", signer.common_name.as_deref());
            line(&mut out, "issuer", signer.issuer.as_deref());
            line(&mut out, "algorithm", signer.algorithm.as_deref());
            line(&mut out, "time-stamp", signer.time.as_deref());
        }
        if let Some(h) = &self.hallmark {
            let _ = writeln!(
                out,
                "hallmark record: {} (model {} {}, seed {}, phash {}, key {})",
                h.record_id, h.model, h.model_version, h.seed, h.phash, h.signing_key_id
            );
        }
        line(
            &mut out,
            "remote manifest (not fetched)",
            self.remote_manifest_url.as_deref(),
        );
        line(&mut out, "error", self.error.as_deref());
        if !self.failures.is_empty() {
            let _ = writeln!(out, "failures: {}", self.failures.join(", "));
        }
        if !self.successes.is_empty() {
            let _ = writeln!(out, "successes: {}", self.successes.join(", "));
        }
        out
    }
}

/// Whether an IPTC digital source type says a generative model made the content.
#[must_use]
pub fn is_ai_source_type(source_type: &str) -> bool {
    source_type.ends_with("/trainedAlgorithmicMedia")
        || source_type.ends_with("/compositeWithTrainedAlgorithmicMedia")
}

/// Who made a manifest, for sentences: its claim generator, else its signer.
fn node_author(node: &ManifestNode) -> String {
    node.claim_generator
        .clone()
        .or_else(|| {
            node.signer
                .as_ref()
                .and_then(|s| s.common_name.clone().or_else(|| s.issuer.clone()))
        })
        .unwrap_or_else(|| "an unnamed producer".to_owned())
}

/// Validates Content Credentials. Build once and share; `Send + Sync`.
pub struct ProvenanceVerifier {
    context: Arc<Context>,
    own_keys: Vec<PublicKey>,
    lists: Vec<TrustList>,
}

impl std::fmt::Debug for ProvenanceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenanceVerifier")
            .field(
                "own_keys",
                &self.own_keys.iter().map(PublicKey::id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ProvenanceVerifier {
    /// The built-in trust lists and the configured lists kept in files, read once; lists at
    /// URLs need [`trust::TrustStore`] (the service's, which also reloads them). Our keys from
    /// [`pki::service_public_keys`].
    ///
    /// # Errors
    /// When a configured file cannot be read or parsed.
    pub fn from_settings(settings: &Settings) -> Result<Self, ProvenanceError> {
        let mut lists = trust::builtin_lists(settings)?;
        for list in &settings.provenance.trust_lists {
            if list.source.starts_with("https://") || list.source.starts_with("http://") {
                tracing::warn!(list = %list.name, "trust list at a URL: not loaded here");
                continue;
            }
            let pem = std::fs::read_to_string(&list.source)
                .map_err(|e| ProvenanceError::io(format!("trust list {}", list.source), e))?;
            lists.push(TrustList::from_pem(list.name.clone(), list.kind, &pem)?);
        }
        Self::with_lists(lists, pki::service_public_keys(settings)?)
    }

    /// `anchors_pem`: PEM bundle of trusted roots (may be empty), as one list named `anchors`.
    /// `own_keys`: the public keys whose manifests are Hallmark's own.
    ///
    /// # Errors
    /// When the anchors cannot be parsed.
    pub fn new(anchors_pem: &str, own_keys: Vec<PublicKey>) -> Result<Self, ProvenanceError> {
        let lists = if anchors_pem.trim().is_empty() {
            Vec::new()
        } else {
            vec![TrustList::from_pem(
                "anchors",
                TrustListKind::Signer,
                anchors_pem,
            )?]
        };
        Self::with_lists(lists, own_keys)
    }

    /// Trusts every anchor of `lists` (signers' and time-stamp authorities'); reports name the
    /// signer's list.
    ///
    /// # Errors
    /// When the reader refuses the anchors.
    pub fn with_lists(
        lists: Vec<TrustList>,
        own_keys: Vec<PublicKey>,
    ) -> Result<Self, ProvenanceError> {
        let mut anchors_pem = String::new();
        for list in &lists {
            anchors_pem.push_str(list.pem().trim_end());
            anchors_pem.push('\n');
        }
        let mut settings = serde_json::json!({
            "verify": {
                "verify_after_reading": true,
                "remote_manifest_fetch": false,
                "ocsp_fetch": false,
            },
            "core": { "allowed_network_hosts": [] },
            "builder": { "thumbnail": { "enabled": false } },
        });
        if !anchors_pem.trim().is_empty() {
            if parse_pem_certificates(anchors_pem.as_bytes())?.is_empty() {
                return Err(ProvenanceError::Config(
                    "no certificate in the trust anchors".into(),
                ));
            }
            settings["trust"] = serde_json::json!({ "user_anchors": anchors_pem });
        }
        let context = Context::new().with_settings(settings)?.into_shared();
        Ok(Self {
            context,
            own_keys,
            lists,
        })
    }

    /// Reads and validates the manifest embedded in `bytes`.
    #[must_use]
    pub fn verify(&self, bytes: &[u8]) -> ProvenanceReport {
        self.read(bytes, None)
    }

    /// Validates a manifest store kept apart from its asset (a sidecar, or the manifest
    /// repository's copy) against `asset`, which must be the very bytes it was signed over.
    #[must_use]
    pub fn verify_with_manifest(&self, store: &[u8], asset: &[u8]) -> ProvenanceReport {
        self.read(asset, Some(store))
    }

    /// The manifest store embedded in `bytes` as c2pa-rs's crJSON, the JSON form of a
    /// validator's findings that the C2PA Conformance Program's asset rubrics judge, validated
    /// with these trust lists.
    ///
    /// # Errors
    /// When the file is not PNG, JPEG or WebP, carries no manifest store (or only a remote one,
    /// which is never fetched), or the reader cannot read it.
    pub fn crjson(&self, bytes: &[u8]) -> Result<serde_json::Value, CrJsonError> {
        let format = ImageFormat::sniff(bytes).ok_or(CrJsonError::Unsupported)?;
        let read = catch_unwind(AssertUnwindSafe(|| {
            self.reader(bytes, format, None)
                .and_then(|reader| reader.to_crjson_value())
        }));
        match read {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(match no_store(&error) {
                Some(NoStore::Absent) => CrJsonError::NoManifest,
                Some(NoStore::Remote(url)) => CrJsonError::Inaccessible(url),
                None => CrJsonError::Unreadable(error.to_string()),
            }),
            Err(_) => Err(CrJsonError::Unreadable(
                "the C2PA reader failed on this file".into(),
            )),
        }
    }

    /// A reader of `bytes` with their embedded manifest store, or with `store`.
    fn reader(
        &self,
        bytes: &[u8],
        format: ImageFormat,
        store: Option<&[u8]>,
    ) -> c2pa::Result<Reader> {
        let reader = Reader::from_shared_context(&self.context);
        match store {
            None => reader.with_stream(format.mime(), Cursor::new(bytes)),
            Some(store) => {
                reader.with_manifest_data_and_stream(store, format.mime(), Cursor::new(bytes))
            }
        }
    }

    /// `bytes` with their embedded manifest store, or with `store`.
    fn read(&self, bytes: &[u8], store: Option<&[u8]>) -> ProvenanceReport {
        let Some(format) = ImageFormat::sniff(bytes) else {
            let mut report = ProvenanceReport::empty(ValidationState::Unsupported, None);
            report.error = Some("not a PNG, JPEG or WebP file".into());
            return report;
        };
        let read = catch_unwind(AssertUnwindSafe(|| self.reader(bytes, format, store)));
        match read {
            Ok(Ok(reader)) => self.report(&reader, format),
            Ok(Err(error)) => error_report(error, format),
            Err(_) => {
                let mut report = ProvenanceReport::empty(ValidationState::Unreadable, Some(format));
                report.error = Some("the C2PA reader failed on this file".into());
                report.damaged = store.is_none();
                report
            }
        }
    }

    fn report(&self, reader: &Reader, format: ImageFormat) -> ProvenanceReport {
        let Some(manifest) = reader.active_manifest() else {
            return ProvenanceReport::empty(ValidationState::NoManifest, Some(format));
        };
        let state = match reader.validation_state() {
            c2pa::ValidationState::Trusted => ValidationState::Trusted,
            c2pa::ValidationState::Valid => ValidationState::ValidUntrusted,
            c2pa::ValidationState::Invalid => ValidationState::Invalid,
        };
        let mut report = ProvenanceReport::empty(state, Some(format));
        report.manifest_id = manifest.label().map(str::to_owned);
        report.title = manifest.title().map(str::to_owned);
        if let Some(results) = reader.validation_results() {
            fn codes(list: &[c2pa::validation_status::ValidationStatus], out: &mut Vec<String>) {
                for status in list {
                    if !out.iter().any(|c| c == status.code()) {
                        out.push(status.code().to_owned());
                    }
                }
            }
            if let Some(active) = results.active_manifest() {
                codes(active.failure(), &mut report.failures);
                codes(active.success(), &mut report.successes);
                codes(active.informational(), &mut report.informational);
                report.time_stamp = time_stamp(
                    active
                        .success()
                        .iter()
                        .chain(active.informational())
                        .chain(active.failure()),
                    manifest.signature_info().and_then(|i| i.time.clone()),
                );
            }
            // OCSP is never consulted (`ocsp_fetch` is off): say so, as the specification's
            // code for it asks, unless the manifest carried a response the reader checked.
            if !report
                .successes
                .iter()
                .chain(&report.failures)
                .chain(&report.informational)
                .any(|code| {
                    code.starts_with("signingCredential.ocsp.")
                        || code == "signingCredential.notRevoked"
                        || code == "signingCredential.revoked"
                })
            {
                report.informational.push(OCSP_SKIPPED.to_owned());
            }
            for delta in results.ingredient_deltas().into_iter().flatten() {
                let d = delta.validation_deltas();
                codes(d.failure(), &mut report.failures);
                codes(d.success(), &mut report.successes);
                codes(d.informational(), &mut report.informational);
            }
        }
        // The active manifest's node of the history says who signed and what it claims.
        let mut walker = Walker::new(reader, &self.own_keys);
        let history = walker.history();
        report.thumbnails = walker.thumbnails;
        if let Some(root) = history.as_ref().map(|h| &h.manifest) {
            report.claim_generator.clone_from(&root.claim_generator);
            report.signer.clone_from(&root.signer);
            report.digital_source_type = digital_source_type(&root.actions);
            if matches!(
                state,
                ValidationState::Trusted | ValidationState::ValidUntrusted
            ) {
                report.hallmark.clone_from(&root.hallmark);
            }
        }
        report.history = history;
        if state == ValidationState::Trusted {
            let chain = manifest
                .signature_info()
                .and_then(|info| parse_pem_certificates(info.cert_chain().as_bytes()).ok())
                .unwrap_or_default();
            report.trusted_by = trust::trusted_by(&self.lists, &chain).map(str::to_owned);
            // c2pa-rs 0.90 holds one set of anchors for claim signers and time-stamp
            // authorities alike: a signer whose chain only a `tsa` list vouches for is not
            // trusted as a signer.
            if report.trusted_by.is_none()
                && trust::vouched_by(&self.lists, &chain, TrustListKind::Tsa).is_some()
            {
                report.state = ValidationState::ValidUntrusted;
                report.successes.retain(|c| c != SIGNING_CREDENTIAL_TRUSTED);
                report
                    .failures
                    .push(SIGNING_CREDENTIAL_UNTRUSTED.to_owned());
            }
        }
        report
    }
}

/// Why the reader found no manifest store to read.
enum NoStore {
    /// None in the file.
    Absent,
    /// Only a reference to a remote one (its URL), which is never fetched.
    Remote(String),
}

/// The reader errors that mean there is no manifest store to read; `None` for the others.
fn no_store(error: &c2pa::Error) -> Option<NoStore> {
    use c2pa::Error as E;
    match error {
        E::JumbfNotFound | E::ProvenanceMissing | E::ClaimMissing { .. } => Some(NoStore::Absent),
        E::RemoteManifestUrl(url) | E::RemoteManifestFetch(url) => {
            Some(NoStore::Remote(url.clone()))
        }
        _ => None,
    }
}

fn error_report(error: c2pa::Error, format: ImageFormat) -> ProvenanceReport {
    use c2pa::Error as E;
    let (state, remote) = match no_store(&error) {
        Some(NoStore::Absent) => (ValidationState::NoManifest, None),
        Some(NoStore::Remote(url)) => (ValidationState::NoManifest, Some(url)),
        None if matches!(error, E::UnsupportedType) => (ValidationState::Unsupported, None),
        None => (ValidationState::Unreadable, None),
    };
    let mut report = ProvenanceReport::empty(state, Some(format));
    if state != ValidationState::NoManifest || remote.is_some() {
        report.error = Some(match &error {
            E::PrereleaseError => "pre-release (draft) C2PA content, not supported".to_owned(),
            E::RemoteManifestUrl(_) | E::RemoteManifestFetch(_) => {
                "the manifest is remote; Hallmark never fetches remote manifests".to_owned()
            }
            other => other.to_string(),
        });
    }
    if remote.is_some() {
        // The specification's code for a manifest that cannot be retrieved: here, by policy.
        report.failures.push(MANIFEST_INACCESSIBLE.to_owned());
    }
    report.remote_manifest_url = remote;
    // Unreadable for any reason but a known draft format: the store is there and broken.
    report.damaged = state == ValidationState::Unreadable && !matches!(error, E::PrereleaseError);
    report
}

/// The time-stamp from the reader's `timeStamp.*` codes, if any.
fn time_stamp<'a>(
    statuses: impl Iterator<Item = &'a c2pa::validation_status::ValidationStatus>,
    time: Option<String>,
) -> Option<TimeStamp> {
    let mut codes = Vec::new();
    let mut authority = None;
    for status in statuses.filter(|s| s.code().starts_with("timeStamp.")) {
        if !codes.iter().any(|c| c == status.code()) {
            codes.push(status.code().to_owned());
        }
        // e.g. "timestamp cert trusted: DigiCert Timestamp 2023, trust list: user_anchors"
        if authority.is_none() {
            authority = status
                .explanation()
                .and_then(|e| e.split_once(": "))
                .and_then(|(_, rest)| rest.split(", trust list").next())
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty());
        }
    }
    if codes.is_empty() {
        return None;
    }
    let state = if codes.iter().any(|c| {
        matches!(
            c.as_str(),
            "timeStamp.mismatch" | "timeStamp.malformed" | "timeStamp.outsideValidity"
        )
    }) {
        "invalid"
    } else if codes.iter().any(|c| c == "timeStamp.untrusted") {
        "untrusted"
    } else if codes.iter().any(|c| c == "timeStamp.trusted") {
        "trusted"
    } else {
        "untrusted"
    };
    Some(TimeStamp {
        time,
        authority,
        state: state.to_owned(),
        codes,
    })
}

/// Hallmark's claims in a manifest signed by one of our keys.
pub(super) fn hallmark_claims(
    manifest: &c2pa::Manifest,
    own_keys: &[PublicKey],
) -> Option<HallmarkClaims> {
    let key = history::signing_key(manifest).filter(|key| own_keys.contains(key))?;
    let claims = manifest
        .find_assertion::<GenerationAssertion>(HALLMARK_ASSERTION)
        .ok()?;
    Some(HallmarkClaims {
        record_id: claims.record_id,
        model: claims.model,
        model_version: claims.model_version,
        seed: claims.seed,
        phash: claims.phash,
        signing_key_id: key.id(),
        device: claims.device,
        operation: claims.operation,
        parent_sha256: claims.parent_sha256,
        description: claims.description,
    })
}

/// The digital source type of the `c2pa.created` action, else of the first action that states
/// one.
fn digital_source_type(actions: &[history::Action]) -> Option<String> {
    actions
        .iter()
        .find(|a| a.action == "c2pa.created" && a.digital_source_type.is_some())
        .or_else(|| actions.iter().find(|a| a.digital_source_type.is_some()))
        .and_then(|a| a.digital_source_type.clone())
}
