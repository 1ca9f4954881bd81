//! A registry record as it is shown: its fields, the key that signed it and whether the
//! signature holds now, for one audience (the public never sees the API key id). Domain code
//! (checks) and the HTTP layer both use it; `api/` serialises it.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fingerprint::{phash_from_db, Sha256Digest};
use crate::provenance::record::{api_key_commitment, encoding_name};
use crate::provenance::{verify_record, Record};
use crate::store::records;

/// A record with what is needed to check it offline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordView {
    pub id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub model: String,
    pub model_version: String,
    /// The generation seed (the signed value is this number's two's-complement i64).
    pub seed: u64,
    pub format: String,
    pub width: i32,
    pub height: i32,
    /// SHA-256 of the signed file, hex.
    #[schema(value_type = String)]
    pub file_sha256: Sha256Digest,
    /// SHA-256 of the decoded pixels (domain-separated: `fingerprint::pixel_sha256`), hex.
    #[schema(value_type = String)]
    pub pixel_sha256: Sha256Digest,
    pub phash: String,
    pub manifest_id: String,
    pub signing_key_id: String,
    /// The API key that made the image: shown to moderators and admins only, never in public
    /// answers (it would tie images to a customer and date the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
    /// SHA-256 commitment to the API key that made the image (hex; null for images made from
    /// the command line): see `src/provenance/record.rs`.
    pub api_key_commitment: Option<String>,
    /// The canonical encoding the signature covers: `hallmark-record-v2` (signs the commitment),
    /// `hallmark-record-v3` (an edit: also signs `parent_sha256` and `operation`) or
    /// `hallmark-record-v1` (older records; signs the key id, so they check offline only with
    /// it).
    pub encoding: &'static str,
    /// For an enhancement: the SHA-256 of the upload it edited, hex; absent for a generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub parent_sha256: Option<Sha256Digest>,
    /// For an enhancement: `restore`, `inpaint` or `upscale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The signing key's signature (`signing_key.algorithm`) over the canonical encoding named
    /// by `encoding`, hex.
    pub signature: String,
    /// Whether the signature verifies against `signing_key` right now, on the server.
    pub signature_valid: bool,
    pub signing_key: Option<SigningKeyView>,
    /// The record's index in the public transparency log (`GET /v1/records/{id}/proof` proves
    /// it); null until the next checkpoint includes it, and for records made before the log
    /// until `hallmark log backfill`.
    pub log_index: Option<u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SigningKeyView {
    pub id: String,
    /// `Ed25519`, `ES256` or `ES384`: how the record's signature is checked.
    pub algorithm: String,
    /// The raw public key, hex: 32 bytes for Ed25519, the uncompressed SEC1 point (65 or 97
    /// bytes) for ES256 and ES384.
    pub public_key: String,
    /// The signing certificate chain, leaf first, PEM.
    pub cert_chain_pem: String,
}

/// Who a record is shown to: the public never sees the API key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Public,
    Staff,
}

/// A record as the API shows it to `audience`, with its signature checked now against the
/// stored key.
///
/// # Errors
/// When the database fails.
pub async fn view(
    pool: &PgPool,
    record: Record,
    audience: Audience,
) -> Result<RecordView, sqlx::Error> {
    let signing_key = records::signing_key(pool, &record.fields.signing_key_id).await?;
    let log_index = crate::store::log::index_of(pool, record.fields.id)
        .await?
        .and_then(|index| u64::try_from(index).ok());
    let signature_valid = signing_key
        .as_ref()
        .and_then(|(stored, _)| stored.key())
        .is_some_and(|key| verify_record(&record, &key).is_ok());
    let f = record.fields;
    // 32 bytes by the table's CHECK constraints.
    let digest = |bytes: &[u8]| {
        Sha256Digest::try_from(bytes).map_err(|error| sqlx::Error::Decode(Box::new(error)))
    };
    Ok(RecordView {
        id: f.id,
        created_at: f.created_at,
        model: f.model,
        model_version: f.model_version,
        seed: u64::from_ne_bytes(f.seed.to_ne_bytes()),
        format: f.format,
        width: f.width,
        height: f.height,
        file_sha256: digest(&f.file_sha256)?,
        pixel_sha256: digest(&f.pixel_sha256)?,
        phash: format!("{:016x}", phash_from_db(f.phash)),
        manifest_id: f.manifest_id,
        signing_key: signing_key.map(|(stored, cert_chain_pem)| SigningKeyView {
            id: f.signing_key_id.clone(),
            algorithm: stored.algorithm,
            public_key: hex::encode(stored.public_key),
            cert_chain_pem,
        }),
        signing_key_id: f.signing_key_id,
        api_key_commitment: f
            .api_key_id
            .map(|key| hex::encode(api_key_commitment(f.id, key))),
        api_key_id: f.api_key_id.filter(|_| audience == Audience::Staff),
        encoding: encoding_name(f.encoding),
        parent_sha256: f.parent_sha256.as_deref().map(digest).transpose()?,
        operation: f.operation,
        signature: hex::encode(&record.signature),
        signature_valid,
        log_index,
    })
}

/// The record with this id as `audience` sees it; `None` when there is none.
///
/// # Errors
/// When the database fails.
pub async fn by_id(
    pool: &PgPool,
    id: Uuid,
    audience: Audience,
) -> Result<Option<RecordView>, sqlx::Error> {
    match records::by_id(pool, id).await? {
        Some(record) => view(pool, record, audience).await.map(Some),
        None => Ok(None),
    }
}

/// Every record of the file with this SHA-256 (the signed bytes), oldest first, as `audience`
/// sees them.
///
/// # Errors
/// When the database fails.
pub async fn by_file(
    pool: &PgPool,
    sha256: &Sha256Digest,
    audience: Audience,
) -> Result<Vec<RecordView>, sqlx::Error> {
    let mut views = Vec::new();
    for record in records::by_file_sha256(pool, sha256.as_bytes()).await? {
        views.push(view(pool, record, audience).await?);
    }
    Ok(views)
}

/// Whether a record with this id exists.
///
/// # Errors
/// When the database fails.
pub async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(records::by_id(pool, id).await?.is_some())
}

/// The stored record of `id` with every field (its owner's key, its file's SHA-256 and format):
/// for callers already allowed its bytes.
///
/// # Errors
/// When the database fails.
pub async fn stored(pool: &PgPool, id: Uuid) -> Result<Option<Record>, sqlx::Error> {
    records::by_id(pool, id).await
}

/// Where the manifest store of a manifest id is.
#[derive(Debug, PartialEq, Eq)]
pub enum ManifestFile {
    /// No record has this manifest id.
    Unknown,
    /// A record made before signed files were kept, until `hallmark backfill` stores it.
    NotStored,
    /// The SHA-256 of the signed file that carries the store.
    Stored(Vec<u8>),
}

/// The signed file that carries the manifest store of `manifest_id`.
///
/// # Errors
/// When the database fails.
pub async fn manifest_file(pool: &PgPool, manifest_id: &str) -> Result<ManifestFile, sqlx::Error> {
    Ok(
        match records::manifest_sha256_by_manifest_id(pool, manifest_id).await? {
            None => ManifestFile::Unknown,
            Some(None) => ManifestFile::NotStored,
            Some(Some(sha)) => ManifestFile::Stored(sha),
        },
    )
}
