//! Layered settings: the embedded `config/default.toml`, then an optional file, then
//! `HALLMARK__SECTION__KEY` environment variables. A key no setting has (a misspelling, a section
//! of a newer version) is an error naming it, not silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

/// The defaults ship inside the binary so `hallmark` runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub model: ModelSettings,
    pub limits: LimitSettings,
    pub generation: GenerationSettings,
    /// Enhancement by inversion of the served generator (`src/enhance/`).
    pub enhancement: crate::enhance::InversionSettings,
    pub api: ApiSettings,
    pub log: LogSettings,
    pub verify: VerifySettings,
    #[serde(default)]
    pub provenance: ProvenanceSettings,
    pub c2pa_api: C2paApiSettings,
    pub transparency_log: TransparencyLogSettings,
    pub metrics: MetricsSettings,
}

/// `GET /metrics`: Prometheus text for operators, on its own listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// The metrics listener's `address:port` (port 0 picks a free one); empty: no listener of its
    /// own.
    pub listen: String,
    /// Also answer `GET /metrics` on the public port.
    pub on_public_port: bool,
}

/// The public transparency log (`src/tlog/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparencyLogSettings {
    /// The checkpoint origin line, also the key name of the log's signatures.
    pub origin: String,
    /// Milliseconds between integrations of pending entries.
    pub checkpoint_interval_ms: u64,
    /// Most pending entries one integration takes.
    pub batch_size: u32,
    /// Longest a `POST /v1/generations` with `wait_for_log` waits for its records' checkpoint
    /// before answering 503 `log_timeout` (the records are committed and logged regardless).
    pub wait_timeout_ms: u64,
    /// Witnesses asked to cosign each new checkpoint (c2sp.org/tlog-witness).
    pub witnesses: Vec<WitnessSettings>,
    /// Longest a witness may take to answer one `add-checkpoint`.
    pub witness_timeout_ms: u64,
}

/// One witness of the transparency log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSettings {
    /// Its submission URL prefix: `<url>/add-checkpoint` is posted to.
    pub url: String,
    /// Its verifier key, `<name>+<key id>+<base64(0x04 ‖ Ed25519 public key)>`.
    pub key: String,
}

/// The C2PA Soft Binding Resolution API (`src/api/softbinding.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct C2paApiSettings {
    /// Where it is mounted, e.g. `/c2pa/v1`.
    pub prefix: String,
    /// `false`: public and rate-limited per client, like `/v1/lookup`; `true`: any live API key
    /// (the spec's `fetch:manifests` scope).
    pub require_key: bool,
    /// Largest Hamming distance between a `byBinding` value and a registered pHash that counts as
    /// a match (there are no pixels to confirm it with).
    pub max_binding_distance: u32,
    /// Most matches one query answers, whatever `maxResults` asks.
    pub max_results: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub shutdown_timeout_s: u64,
    pub workers: usize,
    /// Open connections each worker serves at once; more wait in the listen backlog.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May carry a password; `SecretString` keeps it out of `Debug` output and logs.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_s: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub blob_backend: BlobBackend,
    pub s3: S3Settings,
    /// Local backend: milliseconds between checkpoints of the blob journal (one `syncfs` of the
    /// blob directory's file system, then the journal rows it made redundant are deleted; see
    /// `src/store/blob_journal.rs`). Unused on S3.
    pub blob_sync_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    pub public_rate_per_s: u32,
    pub public_burst: u32,
    /// Addresses or CIDR blocks of reverse proxies whose `X-Forwarded-For` / `Forwarded` headers
    /// name the client; a header from any other peer is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Origins (`https://console.example.org`) whose pages may call the keyed routes from a
    /// browser. The public routes answer any origin whatever this says.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// Checking uploads (`/v1/verify`, `/v1/lookup`, `hallmark verify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    /// Largest Hamming distance between an upload's 64-bit perceptual hash and a registered
    /// variant hash that makes the record a candidate (stage 1 of the near-duplicate match).
    pub phash_max_distance: u32,
    /// Most candidates (nearest first) compared pixel by pixel (stage 2).
    pub max_candidates: usize,
    /// Least re-enacted similarity (the original put through the upload's edits, compared at the
    /// upload's size; `src/fingerprint/reenact.rs`) that confirms a match (stage 2, first tier).
    pub min_reenacted_similarity: f64,
    /// The same for uploads smaller than 3/4 of the original's side.
    pub min_reenacted_similarity_downscaled: f64,
    /// Candidates whose re-enacted similarity is below this are not aligned (second tier).
    pub align_from: f64,
    /// Least aligned similarity with a candidate's original that confirms a match (stage 2,
    /// second tier, for edits re-enactment does not model).
    pub min_similarity: f64,
    /// The same for uploads smaller than 3/4 of the original's side, which carry less detail.
    pub min_similarity_downscaled: f64,
    /// Most files in one `/v1/verify` request.
    pub max_files: usize,
    /// Keep every registered hash in memory for the candidate search (a ~3 ms scan at 10^6
    /// records), in step with the database; `false`: ask PostgreSQL each time.
    pub memory_index: bool,
    /// Whether an AI-generation declaration in a manifest whose signer is not trusted here
    /// counts toward the verdict (`ai_generated_declared`). Off by default: anyone can sign
    /// anything with a certificate of their own.
    #[serde(default)]
    pub accept_untrusted_declarations: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub dir: PathBuf,
    pub name: String,
    pub device: String,
    /// Torch intra-op threads of the model thread; 0: auto (`src/inference/threads.rs`).
    pub intra_op_threads: usize,
    /// Torch inter-op threads of the process; 0: auto (1).
    pub inter_op_threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_request_bytes: usize,
    pub max_image_pixels: u64,
    /// Longest side over shortest side an upload may have.
    pub max_aspect_ratio: u32,
    /// Seconds a request body may take to arrive, counted from the end of its headers.
    pub body_timeout_s: u64,
    /// Bytes of request bodies held in memory at once, all requests together; past it, uploads
    /// are refused with 503 `server_busy` until others finish.
    pub upload_memory_bytes: usize,
    /// Uploads decoded and hashed at once (each may hold its decoded pixels); 0 means one per
    /// CPU core. Others wait their turn.
    pub max_concurrent_checks: usize,
    pub queue_depth: usize,
    pub max_batch: usize,
    pub batch_delay_ms: u64,
    pub request_timeout_ms: u64,
}

/// Group commit of generated images' records (`src/generation/commit.rs`): requests that finish
/// close together share one PostgreSQL transaction, so one fsync'd commit answers many.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSettings {
    /// Requests whose blobs are written and whose records wait for a transaction, at most; past
    /// it, generations are refused at once with 429 `queue_full` instead of queueing without
    /// bound.
    pub commit_queue_depth: usize,
    /// Most records (images) one transaction commits; 1 commits every request on its own, as
    /// before group commit. A single request over the limit (up to 64 images) still goes whole.
    pub max_group: usize,
    /// Microseconds a transaction waits for more requests after the first before it starts; 0
    /// takes only what is already queued (requests arriving meanwhile form the next group).
    pub commit_linger_us: u64,
    /// Group transactions in flight at once (each holds one pooled connection).
    pub committers: usize,
}

/// Content Credentials signing and verification (see `src/provenance/`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceSettings {
    /// PEM certificate chain (leaf first) of an operator-supplied signing identity; empty means
    /// the chain `hallmark init` creates in the keys directory.
    pub cert_chain: Option<PathBuf>,
    /// PKCS#8 PEM private key (Ed25519, P-256 or P-384; plaintext or encrypted) matching
    /// `cert_chain`'s leaf; empty means the generated one.
    pub private_key: Option<PathBuf>,
    /// A file holding the passphrase of encrypted private keys (`src/provenance/keyfile.rs`);
    /// empty means the `HALLMARK_KEY_PASSPHRASE` environment variable, if set.
    pub key_passphrase_file: Option<PathBuf>,
    /// Extra trust anchors (PEM bundle) for verification, besides our own root CA.
    pub trust_anchors: Option<PathBuf>,
    /// RFC 3161 time-stamp authority (`http://` or `https://` URL): every claim signature is
    /// time-stamped there, so it keeps validating after the certificate expires. Empty means no
    /// time-stamp.
    pub tsa_url: Option<String>,
    /// Days a newly issued signing certificate is valid; 0 means the default and the most, 366
    /// (the C2PA Certificate Policy's limit for a claim-signing leaf).
    pub signing_cert_days: u32,
    /// Named trust lists (C2PA-style PEM bundles) loaded from a file or an `https://` URL and
    /// refreshed in the background (`src/provenance/trust.rs`).
    pub trust_lists: Vec<TrustListSettings>,
}

/// One `[[provenance.trust_lists]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustListSettings {
    /// Shown in reports as `trusted_by` and in `/readyz`; unique, and not `hallmark` or
    /// `operator` (the built-in lists).
    pub name: String,
    /// A PEM file path, or an `https://` (or `http://`) URL of a PEM bundle.
    pub source: String,
    /// Seconds between reloads; a failed reload keeps the last good copy.
    #[serde(default = "TrustListSettings::default_refresh_s")]
    pub refresh_s: u64,
    /// `signer`: anchors for manifest signers; `tsa`: anchors for time-stamp authorities.
    #[serde(default)]
    pub kind: TrustListKind,
}

impl TrustListSettings {
    fn default_refresh_s() -> u64 {
        86_400
    }
}

/// What a trust list vouches for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustListKind {
    #[default]
    Signer,
    Tsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Settings {
    /// Loads the layered settings.
    ///
    /// # Errors
    /// When the file given is missing or unreadable, or a value has the wrong type.
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder
            .add_source(
                config::Environment::with_prefix("HALLMARK")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()
    }
}

impl ServerSettings {
    #[must_use]
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Parsed listen address, when `host` is an IP literal.
    #[must_use]
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.address().parse().ok()
    }
}

impl DatabaseSettings {
    /// Connection options parsed from the URL.
    ///
    /// # Errors
    /// When the URL is not a valid PostgreSQL URL.
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        self.url.expose_secret().parse()
    }

    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_s)
    }
}

impl StorageSettings {
    #[must_use]
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    #[must_use]
    pub fn blobs_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_hide_the_database_url() {
        let settings = Settings::load(None).expect("embedded defaults parse");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.log.format, LogFormat::Pretty);
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("postgres://"),
            "database URL leaked: {printed}"
        );
    }

    #[test]
    fn a_file_overrides_the_defaults() {
        let dir = std::env::temp_dir().join(format!("hallmark-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("override.toml");
        std::fs::write(&file, "[server]\nport = 9123\n[log]\nformat = \"json\"\n").unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.server.port, 9123);
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(
            settings.server.host, "127.0.0.1",
            "untouched keys keep their default"
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (text, key) in [
            ("[server]\nprot = 9000\n", "prot"),
            ("[[provenance.trust_list]]\nname = \"c2pa\"\n", "trust_list"),
            ("[cache]\nsize = 1\n", "cache"),
            (
                "[[provenance.trust_lists]]\nname = \"c\"\nsource = \"a.pem\"\nrefresh = 5\n",
                "refresh",
            ),
        ] {
            let file = dir.path().join("typo.toml");
            std::fs::write(&file, text).unwrap();
            let error = Settings::load(Some(&file)).unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(Settings::load(Some(Path::new("/nonexistent/hallmark.toml"))).is_err());
    }
}
