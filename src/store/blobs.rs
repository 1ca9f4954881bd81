//! Image bytes, content-addressed by the SHA-256 of the signed file. `object_store` gives one
//! interface over a local directory (writes land atomically: a temporary file, then a rename)
//! and S3-compatible buckets, so no blob-store trait of our own is needed.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use secrecy::ExposeSecret;

use crate::config::{BlobBackend, StorageSettings};

pub type BlobError = object_store::Error;

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
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
        let store: Arc<dyn ObjectStore> = match settings.blob_backend {
            BlobBackend::Local => {
                let dir = settings.blobs_dir();
                std::fs::create_dir_all(&dir).map_err(|source| object_store::Error::Generic {
                    store: "local",
                    source: Box::new(source),
                })?;
                Arc::new(LocalFileSystem::new_with_prefix(dir)?)
            }
            BlobBackend::S3 => {
                let s3 = &settings.s3;
                if s3.bucket.trim().is_empty() {
                    return Err(object_store::Error::Generic {
                        store: "S3",
                        source: "storage.s3.bucket must be set when storage.blob_backend = \"s3\""
                            .into(),
                    });
                }
                let mut builder = AmazonS3Builder::new()
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
                Arc::new(builder.build()?)
            }
        };
        Ok(Self { store })
    }

    /// # Errors
    /// When the store fails.
    pub async fn put(&self, sha256: &[u8], bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&key(sha256), PutPayload::from(bytes))
            .await
            .map(|_| ())
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
        blobs.delete(&sha).await.unwrap();
        blobs.delete(&sha).await.unwrap();
        assert_eq!(blobs.get(&sha).await.unwrap(), None);
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
}
