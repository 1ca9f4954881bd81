//! Trust lists: the named sets of root certificates that make a signer trusted.
//!
//! Two lists are always there: `hallmark` (this service's own CA, and the root of an operator's
//! own signing chain) and `operator` (the bundle at `provenance.trust_anchors`, when set). Any
//! number of C2PA-style lists follow from `[[provenance.trust_lists]]`: a PEM bundle from a file
//! or an `https://` URL, reloaded every `refresh_s` seconds by [`TrustStore::spawn_refreshers`].
//! A reload that fails (unreachable, too large, no certificate) keeps the last good copy, says so
//! in the log and in [`TrustStore::statuses`] (`/readyz`), and tries again at the next interval.
//! A reload that changes a list builds a new [`ProvenanceVerifier`] and swaps it in; checks in
//! flight finish with the one they started with.
//!
//! The C2PA reader decides trust from all anchors together; [`trusted_by`] then names the list
//! whose anchor the signer's chain ends at (matched by the issuer's name and key identifier, or
//! by the certificate itself), which reports show as `trusted_by`. `tsa` lists hold time-stamp
//! authorities' roots: they join the anchors the reader checks time-stamps against, and are never
//! named as a signer's list.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use x509_parser::extensions::ParsedExtension;

use super::keys::PublicKey;
use super::pki::{self, parse_pem_certificates};
use super::verify::ProvenanceVerifier;
use super::ProvenanceError;
use crate::config::{Settings, TrustListKind, TrustListSettings};

/// This service's own CA.
pub const HALLMARK_LIST: &str = "hallmark";
/// `provenance.trust_anchors`.
pub const OPERATOR_LIST: &str = "operator";
/// Largest trust list read (the C2PA trust list is ~100 KB).
pub const MAX_LIST_BYTES: usize = 8 << 20;
/// How long one download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// One root certificate of a list, with what matching a chain to it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    der: Vec<u8>,
    subject: Vec<u8>,
    key_id: Option<Vec<u8>>,
}

/// A named, loaded list of anchors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustList {
    pub name: String,
    pub kind: TrustListKind,
    pem: String,
    anchors: Vec<Anchor>,
}

impl TrustList {
    /// # Errors
    /// When the PEM holds no parseable certificate.
    pub fn from_pem(
        name: impl Into<String>,
        kind: TrustListKind,
        pem: &str,
    ) -> Result<Self, ProvenanceError> {
        let name = name.into();
        let ders = parse_pem_certificates(pem.as_bytes())?;
        let mut anchors = Vec::with_capacity(ders.len());
        for der in ders {
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| ProvenanceError::Key(format!("trust list {name}: {e}")))?;
            let subject = cert.subject().as_raw().to_vec();
            let key_id = cert
                .extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                    _ => None,
                });
            anchors.push(Anchor {
                der,
                subject,
                key_id,
            });
        }
        if anchors.is_empty() {
            return Err(ProvenanceError::Config(format!(
                "trust list {name}: no certificate"
            )));
        }
        Ok(Self {
            name,
            kind,
            pem: pem.to_owned(),
            anchors,
        })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    #[must_use]
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Whether `cert` (DER) is one of this list's anchors or was issued by one.
    fn vouches_for(&self, cert: &[u8]) -> bool {
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
            return false;
        };
        let issuer = parsed.issuer().as_raw();
        let authority_key =
            parsed
                .extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                    }
                    _ => None,
                });
        self.anchors.iter().any(|anchor| {
            if anchor.der == cert {
                return true;
            }
            let names_match = anchor.subject == issuer
                && match (&authority_key, &anchor.key_id) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                };
            // Names can repeat across CAs: the anchor's key must have made the signature, where
            // the algorithm is one ring verifies (else the name and key id decide).
            names_match
                && x509_parser::parse_x509_certificate(&anchor.der).is_ok_and(|(_, root)| {
                    match parsed.verify_signature(Some(root.public_key())) {
                        Ok(()) => true,
                        Err(x509_parser::error::X509Error::SignatureUnsupportedAlgorithm) => true,
                        Err(_) => false,
                    }
                })
        })
    }
}

/// The signer list whose anchor a certificate chain (DER, leaf first) ends at.
#[must_use]
pub fn trusted_by<'a>(lists: &'a [TrustList], chain: &[Vec<u8>]) -> Option<&'a str> {
    vouched_by(lists, chain, TrustListKind::Signer)
}

/// The list of `kind` whose anchor a certificate chain (DER, leaf first) ends at.
#[must_use]
pub fn vouched_by<'a>(
    lists: &'a [TrustList],
    chain: &[Vec<u8>],
    kind: TrustListKind,
) -> Option<&'a str> {
    // From the top of the chain down: the anchor is normally the issuer of the last certificate.
    for cert in chain.iter().rev() {
        for list in lists.iter().filter(|l| l.kind == kind) {
            if list.vouches_for(cert) {
                return Some(&list.name);
            }
        }
    }
    None
}

/// The built-in lists, from the settings.
///
/// # Errors
/// When `provenance.trust_anchors` or an operator chain cannot be read or holds no certificate.
pub fn builtin_lists(settings: &Settings) -> Result<Vec<TrustList>, ProvenanceError> {
    let mut lists = Vec::new();
    let own = pki::own_anchors_pem(settings)?;
    if !own.trim().is_empty() {
        lists.push(TrustList::from_pem(
            HALLMARK_LIST,
            TrustListKind::Signer,
            &own,
        )?);
    }
    if let Some(pem) = pki::operator_anchors_pem(settings)? {
        lists.push(TrustList::from_pem(
            OPERATOR_LIST,
            TrustListKind::Signer,
            &pem,
        )?);
    }
    Ok(lists)
}

/// What `/readyz` says about one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListStatus {
    pub name: String,
    pub kind: TrustListKind,
    /// File path or URL; `built-in` for the two built-in lists.
    pub source: String,
    /// Anchors in the copy in use.
    pub anchors: usize,
    /// When the copy in use was loaded.
    pub loaded_at: Option<DateTime<Utc>>,
    /// When a load was last tried.
    pub checked_at: Option<DateTime<Utc>>,
    /// Why the last try failed; the last good copy (if any) stays in use.
    pub error: Option<String>,
}

struct Configured {
    settings: TrustListSettings,
    good: Option<TrustList>,
    status: ListStatus,
}

/// The trust lists in use, their reloads, and the verifier built from them.
pub struct TrustStore {
    builtin: Vec<TrustList>,
    own_keys: Vec<PublicKey>,
    configured: Mutex<Vec<Configured>>,
    verifier: RwLock<Arc<ProvenanceVerifier>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("statuses", &self.statuses())
            .finish_non_exhaustive()
    }
}

impl TrustStore {
    /// The built-in lists and the configured lists kept in files, loaded now; lists at URLs are
    /// loaded by [`Self::reload_all`] or the first round of [`Self::spawn_refreshers`]. A
    /// configured list that cannot be loaded now is reported and retried at its interval.
    ///
    /// # Errors
    /// When the built-in lists or our keys cannot be read, or two lists share a name.
    pub fn new(settings: &Settings) -> Result<Arc<Self>, ProvenanceError> {
        let builtin = builtin_lists(settings)?;
        let own_keys = pki::service_public_keys(settings)?;
        let mut names: Vec<&str> = vec![HALLMARK_LIST, OPERATOR_LIST];
        for list in &settings.provenance.trust_lists {
            if list.name.trim().is_empty() || names.contains(&list.name.as_str()) {
                return Err(ProvenanceError::Config(format!(
                    "provenance.trust_lists: the name {:?} is empty, reserved or repeated",
                    list.name
                )));
            }
            names.push(&list.name);
        }
        let now = Utc::now();
        let configured: Vec<Configured> = settings
            .provenance
            .trust_lists
            .iter()
            .map(|list| {
                let mut entry = Configured {
                    status: ListStatus {
                        name: list.name.clone(),
                        kind: list.kind,
                        source: list.source.clone(),
                        anchors: 0,
                        loaded_at: None,
                        checked_at: None,
                        error: None,
                    },
                    settings: list.clone(),
                    good: None,
                };
                if !is_url(&list.source) {
                    entry.status.checked_at = Some(now);
                    match read_file(&list.source).and_then(|pem| {
                        TrustList::from_pem(list.name.clone(), list.kind, &pem)
                            .map_err(|e| e.to_string())
                    }) {
                        Ok(loaded) => {
                            entry.status.anchors = loaded.len();
                            entry.status.loaded_at = Some(now);
                            entry.good = Some(loaded);
                        }
                        Err(error) => {
                            tracing::warn!(list = %list.name, %error, "trust list not loaded; retried at its interval");
                            entry.status.error = Some(error);
                        }
                    }
                }
                entry
            })
            .collect();
        let lists = builtin
            .iter()
            .cloned()
            .chain(configured.iter().filter_map(|c| c.good.clone()))
            .collect();
        let verifier = ProvenanceVerifier::with_lists(lists, own_keys.clone())?;
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("hallmark/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProvenanceError::Config(format!("HTTP client: {e}")))?;
        Ok(Arc::new(Self {
            builtin,
            own_keys,
            configured: Mutex::new(configured),
            verifier: RwLock::new(Arc::new(verifier)),
            client,
        }))
    }

    /// Loads every configured list again, now.
    pub async fn reload_all(&self) {
        let count = self
            .configured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        for index in 0..count {
            self.reload(index).await;
        }
    }

    /// The verifier to use now.
    #[must_use]
    pub fn verifier(&self) -> Arc<ProvenanceVerifier> {
        Arc::clone(&self.verifier.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Every list, built-in first.
    #[must_use]
    pub fn statuses(&self) -> Vec<ListStatus> {
        let mut out: Vec<ListStatus> = self
            .builtin
            .iter()
            .map(|list| ListStatus {
                name: list.name.clone(),
                kind: list.kind,
                source: "built-in".to_owned(),
                anchors: list.len(),
                loaded_at: None,
                checked_at: None,
                error: None,
            })
            .collect();
        let configured = self.configured.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(configured.iter().map(|c| c.status.clone()));
        out
    }

    /// Loads configured list `index` again; swaps in a new verifier when it changed. Returns
    /// whether it did.
    pub async fn reload(&self, index: usize) -> bool {
        let Some(settings) = self
            .configured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .map(|c| c.settings.clone())
        else {
            return false;
        };
        let loaded = fetch(&self.client, &settings.source).await.and_then(|pem| {
            TrustList::from_pem(settings.name.clone(), settings.kind, &pem)
                .map_err(|e| e.to_string())
        });
        let now = Utc::now();
        let lists = {
            let mut configured = self.configured.lock().unwrap_or_else(|e| e.into_inner());
            let entry = &mut configured[index];
            entry.status.checked_at = Some(now);
            match loaded {
                Ok(list) => {
                    entry.status.error = None;
                    if entry.good.as_ref() == Some(&list) {
                        return false;
                    }
                    tracing::info!(list = %list.name, anchors = list.len(), source = %settings.source, "trust list loaded");
                    entry.status.anchors = list.len();
                    entry.status.loaded_at = Some(now);
                    entry.good = Some(list);
                }
                Err(error) => {
                    tracing::warn!(list = %settings.name, source = %settings.source, %error,
                        kept = entry.good.is_some(), "trust list reload failed; the last good copy stays in use");
                    entry.status.error = Some(error);
                    return false;
                }
            }
            self.builtin
                .iter()
                .cloned()
                .chain(configured.iter().filter_map(|c| c.good.clone()))
                .collect::<Vec<_>>()
        };
        let own_keys = self.own_keys.clone();
        let built =
            tokio::task::spawn_blocking(move || ProvenanceVerifier::with_lists(lists, own_keys))
                .await;
        match built {
            Ok(Ok(verifier)) => {
                *self.verifier.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(verifier);
                true
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "trust lists: the verifier could not be rebuilt; the previous one stays in use");
                false
            }
            Err(error) => {
                tracing::error!(%error, "trust lists: rebuilding the verifier panicked");
                false
            }
        }
    }

    /// One background task per configured list, reloading it every `refresh_s` seconds until the
    /// runtime stops.
    pub fn spawn_refreshers(self: &Arc<Self>) {
        // (interval, loaded already): a list loaded by `new` waits one interval; the others
        // (lists at URLs, files that failed) are tried at once.
        let lists: Vec<(Duration, bool)> = self
            .configured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| {
                (
                    Duration::from_secs(c.settings.refresh_s.max(1)),
                    c.good.is_some(),
                )
            })
            .collect();
        for (index, (period, loaded)) in lists.into_iter().enumerate() {
            let store = Arc::clone(self);
            tokio::spawn(async move {
                let first =
                    tokio::time::Instant::now() + if loaded { period } else { Duration::ZERO };
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    store.reload(index).await;
                }
            });
        }
    }
}

fn is_url(source: &str) -> bool {
    source.starts_with("https://") || source.starts_with("http://")
}

/// A list kept in a file, at most [`MAX_LIST_BYTES`].
fn read_file(path: &str) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if metadata.len() > MAX_LIST_BYTES as u64 {
        return Err(format!("{path}: larger than {MAX_LIST_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// The text of a list: a file, or an `http(s)://` URL, at most [`MAX_LIST_BYTES`].
async fn fetch(client: &reqwest::Client, source: &str) -> Result<String, String> {
    let bytes = if is_url(source) {
        let mut response = client
            .get(source)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("fetching {source}: {e}"))?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_LIST_BYTES as u64)
        {
            return Err(format!("{source}: larger than {MAX_LIST_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {source}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_LIST_BYTES {
                return Err(format!("{source}: larger than {MAX_LIST_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        body
    } else {
        let path = source.to_owned();
        return tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(|e| format!("{source}: {e}"))?;
    };
    String::from_utf8(bytes).map_err(|_| format!("{source}: not PEM text"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::pki::{init_pki, CA_CERT_FILE, ISSUING_CA_CERT_FILE, SIGNING_CERT_FILE};

    fn pem_of(dir: &std::path::Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn a_chain_is_attributed_to_the_list_holding_its_root() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        init_pki(ours.path(), 30, None).unwrap();
        init_pki(theirs.path(), 30, None).unwrap();
        let lists = vec![
            TrustList::from_pem(
                "a",
                TrustListKind::Signer,
                &pem_of(ours.path(), CA_CERT_FILE),
            )
            .unwrap(),
            TrustList::from_pem(
                "b",
                TrustListKind::Signer,
                &pem_of(theirs.path(), CA_CERT_FILE),
            )
            .unwrap(),
        ];
        // The chain a manifest carries: the leaf and its issuing CA.
        let chain = |dir: &std::path::Path| {
            let pem = pem_of(dir, SIGNING_CERT_FILE) + &pem_of(dir, ISSUING_CA_CERT_FILE);
            parse_pem_certificates(pem.as_bytes()).unwrap()
        };
        assert_eq!(trusted_by(&lists, &chain(ours.path())), Some("a"));
        assert_eq!(trusted_by(&lists, &chain(theirs.path())), Some("b"));
        assert_eq!(trusted_by(&lists[..1], &chain(theirs.path())), None);
        // A time-stamp authorities' list never names a signer's list.
        let tsa = vec![TrustList::from_pem(
            "tsa",
            TrustListKind::Tsa,
            &pem_of(ours.path(), CA_CERT_FILE),
        )
        .unwrap()];
        assert_eq!(trusted_by(&tsa, &chain(ours.path())), None);
    }

    #[test]
    fn a_list_without_certificates_is_refused() {
        assert!(TrustList::from_pem("x", TrustListKind::Signer, "").is_err());
        assert!(TrustList::from_pem("x", TrustListKind::Signer, "not pem").is_err());
    }
}
