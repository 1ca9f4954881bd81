use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::auth::Authenticated;
use super::generations::etag;
use crate::error::ApiError;
use crate::fingerprint::phash_from_db;
use crate::provenance::record::{api_key_commitment, encoding_name};
use crate::provenance::{verify_record, ImageFormat, Record};
use crate::startup::AppState;
use crate::store::api_keys::Role;
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
    pub file_sha256: String,
    pub pixel_sha256: String,
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
    /// The canonical encoding the signature covers: `hallmark-record-v2` (signs the commitment)
    /// or `hallmark-record-v1` (older records; signs the key id, so they check offline only
    /// with it).
    pub encoding: &'static str,
    /// Ed25519 signature over the canonical encoding named by `encoding`, hex.
    pub signature: String,
    /// Whether the signature verifies against `signing_key` right now, on the server.
    pub signature_valid: bool,
    pub signing_key: Option<SigningKeyView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SigningKeyView {
    pub id: String,
    pub algorithm: &'static str,
    /// Raw 32-byte Ed25519 public key, hex.
    pub public_key: String,
    /// The signing certificate chain, leaf first, PEM.
    pub cert_chain_pem: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordList {
    pub records: Vec<RecordView>,
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
    let signature_valid = signing_key
        .as_ref()
        .and_then(|(public, _)| <[u8; 32]>::try_from(public.as_slice()).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .is_some_and(|key| verify_record(&record, &key).is_ok());
    let f = record.fields;
    Ok(RecordView {
        id: f.id,
        created_at: f.created_at,
        model: f.model,
        model_version: f.model_version,
        seed: u64::from_ne_bytes(f.seed.to_ne_bytes()),
        format: f.format,
        width: f.width,
        height: f.height,
        file_sha256: hex::encode(&f.file_sha256),
        pixel_sha256: hex::encode(&f.pixel_sha256),
        phash: format!("{:016x}", phash_from_db(f.phash)),
        manifest_id: f.manifest_id,
        signing_key: signing_key.map(|(public_key, cert_chain_pem)| SigningKeyView {
            id: f.signing_key_id.clone(),
            algorithm: "Ed25519",
            public_key: hex::encode(public_key),
            cert_chain_pem,
        }),
        signing_key_id: f.signing_key_id,
        api_key_commitment: f
            .api_key_id
            .map(|key| hex::encode(api_key_commitment(f.id, key))),
        api_key_id: f.api_key_id.filter(|_| audience == Audience::Staff),
        encoding: encoding_name(f.encoding),
        signature: hex::encode(&record.signature),
        signature_valid,
    })
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request("invalid_id", format!("{raw:?} is not a record id (a UUID)"))
    })
}

fn record_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("record_not_found", format!("no record {id}"))
}

/// A record by id: public, rate-limited per client address.
#[utoipa::path(get, path = "/v1/records/{id}",
    params(("id" = Uuid, Path, description = "Record id")),
    responses(
        (status = 200, body = RecordView),
        (status = 400, description = "invalid_id"),
        (status = 404, description = "record_not_found"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.public_limiter.check(&req)?;
    let id = parse_id(&path)?;
    let record = records::by_id(&state.pool, id)
        .await?
        .ok_or_else(|| record_not_found(id))?;
    Ok(HttpResponse::Ok().json(view(&state.pool, record, Audience::Public).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RecordQuery {
    /// SHA-256 of the signed file, 64 hex digits.
    pub sha256: Option<String>,
}

/// Records by the SHA-256 of the file: public, rate-limited.
#[utoipa::path(get, path = "/v1/records",
    params(RecordQuery),
    responses(
        (status = 200, body = RecordList),
        (status = 400, description = "invalid_sha256"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn find(
    req: HttpRequest,
    query: web::Query<RecordQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.public_limiter.check(&req)?;
    let raw = query.sha256.as_deref().unwrap_or_default();
    let sha = hex::decode(raw.trim())
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| ApiError::bad_request("invalid_sha256", "sha256 must be 64 hex digits"))?;
    let mut views = Vec::new();
    for record in records::by_file_sha256(&state.pool, &sha).await? {
        views.push(view(&state.pool, record, Audience::Public).await?);
    }
    Ok(HttpResponse::Ok().json(RecordList { records: views }))
}

/// The exact signed bytes of an image: its owner's generator key, a moderator key (to compare an
/// upload with the original it matched), or an admin key.
#[utoipa::path(get, path = "/v1/images/{id}",
    params(("id" = Uuid, Path, description = "Record id")),
    responses(
        (status = 200, description = "The signed image", content_type = "image/png"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 401, description = "Missing, unknown or revoked key"),
        (status = 403, description = "Not a generator, moderator or admin key"),
        (status = 404, description = "image_not_found (also for other keys' images)"),
    ),
    security(("api_key" = [])))]
pub async fn image(
    auth: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require_any(&[Role::Generator, Role::Moderator])?;
    let id = parse_id(&path)?;
    let not_found = || ApiError::not_found("image_not_found", format!("no image {id}"));
    let record = records::by_id(&state.pool, id)
        .await?
        .ok_or_else(not_found)?;
    if caller.role == Role::Generator && record.fields.api_key_id != Some(caller.key_id) {
        return Err(not_found());
    }
    let tag = etag(&record.fields.file_sha256);
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if cached {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    let bytes = state
        .generation
        .blobs
        .get(&record.fields.file_sha256)
        .await
        .map_err(|error| ApiError::internal(&error))?
        .ok_or_else(|| {
            tracing::error!(%id, "record without its blob");
            ApiError::internal(&std::io::Error::other(
                "image bytes missing from the blob store",
            ))
        })?;
    // `records.format` is constrained to the three names by the table's CHECK.
    let mime = ImageFormat::from_name(&record.fields.format).map_or("image/png", ImageFormat::mime);
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((header::ETAG, tag))
        .insert_header((
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        ))
        .body(bytes))
}
