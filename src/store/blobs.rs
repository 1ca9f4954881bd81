//! Image bytes, content-addressed by the SHA-256 of the signed file. `object_store` gives one
//! interface over a local directory (writes land atomically: a temporary file, then a rename)
//! and S3-compatible buckets, so no blob-store trait of our own is needed.
//!
//! On the local backend a put is durable before it returns: the file and the directories that
//! name it are fsynced, so a record committed after it never outlives its bytes in a power cut.
//! On S3 a put is durable when the service acknowledges it (an object is whole or absent, and
//! every replica reads it at once), so several replicas share one bucket (`tests/replicas.rs`).
//! Blobs no record references (left by a crash between the blob and the record) are removed by
//! [`collect_garbage`] once older than a grace period.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::config::{BlobBackend, S3Settings, StorageSettings};

pub type BlobError = object_store::Error;

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The local backend's root, whose files and directories are fsynced after each put.
    local_root: Option<PathBuf>,
    /// Directories whose own entry in their parent is already on disk: a put fsyncs the file
    /// and its directory, and goes further up only past a directory not yet known here (new
    /// fan-out directories are rare: at most 65,536 + 256).
    durable_dirs: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({})", self.store)
    }
}

/// `sha256/ab/cd/abcd...`: two levels of fan-out keep directories small.
fn key(sha256: &[u8]) -> ObjectPath {
    let hex = hex::encode(sha256);
    ObjectPath::from(format!("sha256/{}/{}/{hex}", &hex[..2], &hex[2..4]))
}

impl Blobs {
    /// The store the settings choose.
    ///
    /// # Errors
    /// When the local directory cannot be created or the S3 settings are incomplete.
    pub fn from_settings(settings: &StorageSettings) -> Result<Self, BlobError> {
        let mut local_root = None;
        let store: Arc<dyn ObjectStore> = match settings.blob_backend {
            BlobBackend::Local => {
                let dir = settings.blobs_dir();
                std::fs::create_dir_all(&dir).map_err(local_error)?;
                local_root = Some(dir.clone());
                Arc::new(LocalFileSystem::new_with_prefix(dir)?)
            }
            BlobBackend::S3 => {
                if settings.s3.bucket.trim().is_empty() {
                    return Err(object_store::Error::Generic {
                        store: "S3",
                        source: "storage.s3.bucket must be set when storage.blob_backend = \"s3\""
                            .into(),
                    });
                }
                Arc::new(s3_builder(&settings.s3).build()?)
            }
        };
        Ok(Self {
            store,
            local_root,
            durable_dirs: Arc::default(),
        })
    }

    /// Stores the bytes under their hash; on the local backend they are on disk (fsynced) when
    /// this returns.
    ///
    /// # Errors
    /// When the store fails (see [`is_storage_full`]).
    pub async fn put(&self, sha256: &[u8], bytes: Bytes) -> Result<(), BlobError> {
        self.put_at(key(sha256), bytes).await
    }

    /// Writes an object under a name of the caller's (the transparency log's static files,
    /// `log/...`, outside the content-addressed `sha256/` tree that [`collect_garbage`] sweeps),
    /// durable like [`Blobs::put`]; an existing object of that name is replaced.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn put_named(&self, name: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.put_at(ObjectPath::from(name), bytes).await
    }

    /// A named object's bytes, or `None` when there is none.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn get_named(&self, name: &str) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&ObjectPath::from(name)).await {
            Ok(result) => result.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Stores the bytes under their hash without making them durable on the local backend:
    /// the caller keeps a durable copy until [`Blobs::sync_all`] (the blob journal,
    /// `src/store/blob_journal.rs`). On S3 this is [`Blobs::put`]: durable when acknowledged.
    ///
    /// # Errors
    /// When the store fails (see [`is_storage_full`]).
    pub async fn put_unsynced(&self, sha256: &[u8], bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&key(sha256), PutPayload::from(bytes))
            .await
            .map(|_| ())
    }

    /// Whether [`Blobs::put_unsynced`] leaves bytes that only [`Blobs::sync_all`] makes durable
    /// (the local backend), so a write must be journaled until then.
    #[must_use]
    pub fn needs_journal(&self) -> bool {
        self.local_root.is_some()
    }

    /// Makes every write before it durable: on the local backend one `syncfs(2)` of the file
    /// system that holds the blob directory (file data, new names and new directories alike);
    /// nothing to do on S3.
    ///
    /// # Errors
    /// When the sync fails.
    pub async fn sync_all(&self) -> Result<(), BlobError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            let dir = std::fs::File::open(&root)?;
            rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
        })
        .await
        .map_err(|error| local_error(std::io::Error::other(error)))?
        .map_err(local_error)
    }

    async fn put_at(&self, key: ObjectPath, bytes: Bytes) -> Result<(), BlobError> {
        self.store.put(&key, PutPayload::from(bytes)).await?;
        if let Some(root) = &self.local_root {
            let (root, durable) = (root.clone(), Arc::clone(&self.durable_dirs));
            tokio::task::spawn_blocking(move || sync_path(&root, &key, &durable))
                .await
                .map_err(|error| local_error(std::io::Error::other(error)))?
                .map_err(local_error)?;
        }
        Ok(())
    }

    /// Every blob's hash and last write time.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn list(&self) -> Result<Vec<(Vec<u8>, chrono::DateTime<chrono::Utc>)>, BlobError> {
        let prefix = ObjectPath::from("sha256");
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                let hash = hex::decode(name).ok().filter(|h| h.len() == 32)?;
                Some((hash, meta.last_modified))
            })
            .collect())
    }

    /// The bytes, or `None` when there is no such blob.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn get(&self, sha256: &[u8]) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&key(sha256)).await {
            Ok(result) => result.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes a blob; a missing one is not an error.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete(&self, sha256: &[u8]) -> Result<(), BlobError> {
        match self.store.delete(&key(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The S3 client the settings describe, over the `AWS_*` environment: with `access_key_id`
/// empty, credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
/// `AWS_SESSION_TOKEN`), a web identity, the container's or the instance's role, as the settings
/// promise. The bucket, region and `allow_http` are always the settings'; the endpoint too when
/// set (else `AWS_ENDPOINT`, else AWS's own).
fn s3_builder(s3: &S3Settings) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_allow_http(s3.allow_http);
    if !s3.endpoint.is_empty() {
        builder = builder.with_endpoint(&s3.endpoint);
    }
    if !s3.access_key_id.is_empty() {
        builder = builder
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(s3.secret_access_key.expose_secret());
    }
    builder
}

fn local_error(source: std::io::Error) -> BlobError {
    object_store::Error::Generic {
        store: "local",
        source: Box::new(source),
    }
}

/// fsync of the file at `key` under `root` and of its directory, so both its bytes and its name
/// survive a power cut; then up the tree while the directory just synced may itself be a new
/// entry of its parent (not yet in `durable`), up to `root`.
fn sync_path(
    root: &std::path::Path,
    key: &ObjectPath,
    durable: &std::sync::Mutex<std::collections::HashSet<PathBuf>>,
) -> std::io::Result<()> {
    let mut path = root.to_path_buf();
    for part in key.parts() {
        path.push(part.as_ref());
    }
    std::fs::File::open(&path)?.sync_all()?;
    let known = |dir: &std::path::Path| durable.lock().is_ok_and(|set| set.contains(dir));
    let mut synced = Vec::new();
    let mut dir = path.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        synced.push(d.to_path_buf());
        if d == root || known(d) {
            break;
        }
        dir = d.parent();
    }
    // Each of them now has its entry in a synced parent (the last is the root or known).
    if let Ok(mut set) = durable.lock() {
        set.extend(synced);
    }
    Ok(())
}

/// Whether a store error is a full disk (`ENOSPC`), which the API answers as 503 `storage_full`.
#[must_use]
pub fn is_storage_full(error: &BlobError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull {
                return true;
            }
        }
        source = cause.source();
    }
    // object_store flattens some local errors into text.
    error.to_string().contains("No space left on device")
}

/// What a garbage collection found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub referenced: usize,
    /// Unreferenced but younger than the grace period: possibly a record about to commit.
    pub young: usize,
    pub removed: usize,
    /// Unfinished writes (the local store's staging files, `<name>#<n>`, left by a crash
    /// mid-write, of blobs or of the log's tiles) older than the grace period, removed.
    pub staging_removed: usize,
}

/// Removes blobs that no record references and that are older than `grace`. Safe while the
/// service runs, on any number of replicas: a blob is written before its record commits, and a
/// commit that has not happened within `grace` of its blob never will (requests time out long
/// before), so only true orphans are removed. Blob names are SHA-256s of files that embed a
/// unique record id, so a removed orphan is never the bytes of a later record.
///
/// # Errors
/// When the store or the database fails.
#[tracing::instrument(skip_all)]
pub async fn collect_garbage(
    pool: &PgPool,
    blobs: &Blobs,
    grace: Duration,
) -> Result<GcReport, anyhow::Error> {
    let now = chrono::Utc::now();
    let grace = chrono::Duration::from_std(grace)?;
    let listed = blobs.list().await?;
    let mut report = GcReport {
        blobs: listed.len(),
        ..GcReport::default()
    };
    for chunk in listed.chunks(1000) {
        let hashes: Vec<Vec<u8>> = chunk.iter().map(|(hash, _)| hash.clone()).collect();
        let known = super::records::existing_file_hashes(pool, &hashes).await?;
        for (hash, modified) in chunk {
            if known.contains(hash) {
                report.referenced += 1;
            } else if now - *modified < grace {
                report.young += 1;
            } else {
                blobs.delete(hash).await?;
                report.removed += 1;
                tracing::info!(blob = %hex::encode(hash), "removed an orphan blob");
            }
        }
    }
    if let Some(root) = blobs.local_root.clone() {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(grace.to_std().unwrap_or_default())
            .unwrap_or(std::time::UNIX_EPOCH);
        report.staging_removed =
            tokio::task::spawn_blocking(move || remove_stale_staging(&root, cutoff)).await??;
    }
    Ok(report)
}

/// Whether a file name is a local-store staging file: an object's name, `#`, a number (our
/// object names — hashes and the log's tile paths — never hold a `#`).
#[must_use]
pub fn is_staging_name(name: &str) -> bool {
    name.split_once('#').is_some_and(|(object, n)| {
        !object.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Removes staging files last written before `cutoff` under `root` (the blobs below `sha256/`
/// and the transparency log's static files below `log/`); returns how many.
fn remove_stale_staging(
    root: &std::path::Path,
    cutoff: std::time::SystemTime,
) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut dirs = vec![root.join("sha256"), root.join("log")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let stale = entry.metadata()?.modified()? < cutoff;
            if kind.is_file() && stale && name.to_str().is_some_and(is_staging_name) {
                std::fs::remove_file(entry.path())?;
                tracing::info!(file = %entry.path().display(), "removed an unfinished blob write");
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn storage(dir: &std::path::Path) -> StorageSettings {
        let mut storage = Settings::load(None).unwrap().storage;
        storage.data_dir = dir.to_path_buf();
        storage
    }

    #[tokio::test]
    async fn local_blobs_round_trip_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::from_settings(&storage(dir.path())).unwrap();
        let bytes = Bytes::from_static(b"signed image bytes");
        let sha = crate::fingerprint::sha256(&bytes);
        assert_eq!(blobs.get(&sha).await.unwrap(), None);
        blobs.put(&sha, bytes.clone()).await.unwrap();
        assert_eq!(blobs.get(&sha).await.unwrap(), Some(bytes));
        let hex = hex::encode(sha);
        let path = dir
            .path()
            .join(format!("blobs/sha256/{}/{}/{hex}", &hex[..2], &hex[2..4]));
        assert!(path.is_file(), "content-addressed at {}", path.display());
        let listed = blobs.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, sha.to_vec());
        blobs.delete(&sha).await.unwrap();
        blobs.delete(&sha).await.unwrap();
        assert_eq!(blobs.get(&sha).await.unwrap(), None);
    }

    #[test]
    fn staging_files_are_told_from_blobs() {
        let hash = "ab".repeat(32);
        assert!(is_staging_name(&format!("{hash}#1")));
        assert!(is_staging_name(&format!("{hash}#12345")));
        assert!(!is_staging_name(&hash));
        assert!(!is_staging_name(&format!("{hash}#")));
        assert!(!is_staging_name(&format!("{hash}#x")));
        assert!(is_staging_name("8#1"), "a partial tile's");
        assert!(!is_staging_name("#1"));
        assert!(!is_staging_name("8#1#2"));
    }

    #[test]
    fn s3_is_chosen_by_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = storage(dir.path());
        settings.blob_backend = BlobBackend::S3;
        settings.s3.bucket = "hallmark-images".into();
        settings.s3.endpoint = "http://127.0.0.1:9000".into();
        settings.s3.allow_http = true;
        settings.s3.access_key_id = "id".into();
        settings.s3.secret_access_key = "secret".to_owned().into();
        let blobs = Blobs::from_settings(&settings).unwrap();
        assert!(
            !blobs.needs_journal(),
            "an S3 put is durable when acknowledged"
        );
        assert!(
            format!("{blobs:?}").contains("hallmark-images"),
            "{blobs:?}"
        );
        assert!(
            !dir.path().join("blobs").exists(),
            "no local directory for S3"
        );

        settings.s3.bucket = String::new();
        assert!(
            Blobs::from_settings(&settings).is_err(),
            "a bucket is required"
        );
    }

    /// With no key in the settings the client takes the environment's (as `config/default.toml`
    /// says); a key in the settings wins. No other test reads `AWS_*` variables.
    #[test]
    fn s3_credentials_come_from_the_settings_or_else_the_environment() {
        use object_store::aws::AmazonS3ConfigKey as Key;
        let dir = tempfile::tempdir().unwrap();
        let mut s3 = storage(dir.path()).s3;
        s3.bucket = "hallmark-images".into();
        std::env::set_var("AWS_ACCESS_KEY_ID", "from-the-environment");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "environment-secret");
        let from_env = s3_builder(&s3);
        assert_eq!(
            from_env.get_config_value(&Key::AccessKeyId).as_deref(),
            Some("from-the-environment")
        );
        assert_eq!(
            from_env.get_config_value(&Key::SecretAccessKey).as_deref(),
            Some("environment-secret")
        );
        s3.access_key_id = "from-the-settings".into();
        s3.secret_access_key = "settings-secret".to_owned().into();
        let from_settings = s3_builder(&s3);
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        std::env::remove_var("AWS_SECRET_ACCESS_KEY");
        assert_eq!(
            from_settings.get_config_value(&Key::AccessKeyId).as_deref(),
            Some("from-the-settings")
        );
        assert_eq!(
            from_settings.get_config_value(&Key::Bucket).as_deref(),
            Some("hallmark-images")
        );
    }
}
