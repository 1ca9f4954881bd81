use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Authenticated;
use super::generations::etag;
use super::limits::WithinQuota;
use super::AppState;
use crate::api::error::{code, ApiError};
use crate::fingerprint::Sha256Digest;
use crate::provenance::ImageFormat;
use crate::registry::{
    self,
    view::{Audience, RecordView},
};
use crate::store::api_keys::Role;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordList {
    pub records: Vec<RecordView>,
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            code::INVALID_ID,
            format!("{raw:?} is not a record id (a UUID)"),
        )
    })
}

/// The record id of a route's `{id}`, parsed before the handler runs (400 `invalid_id` when it
/// is not a UUID). On public routes it follows [`WithinQuota`], so a caller over its quota hears
/// 429 whatever id it sends.
#[derive(Debug, Clone, Copy)]
pub struct RecordId(pub Uuid);

impl RecordId {
    /// 404 `record_not_found` for this id.
    #[must_use]
    pub fn not_found(self) -> ApiError {
        ApiError::new(code::RECORD_NOT_FOUND, format!("no record {}", self.0))
    }
}

impl actix_web::FromRequest for RecordId {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_id(req.match_info().get("id").unwrap_or_default()).map(Self))
    }
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
    _: WithinQuota,
    id: RecordId,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = registry::view::by_id(&state.pool, id.0, Audience::Public)
        .await?
        .ok_or_else(|| id.not_found())?;
    Ok(HttpResponse::Ok().json(record))
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
    _: WithinQuota,
    query: web::Query<RecordQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sha = parse_sha256(query.sha256.as_deref().unwrap_or_default())?;
    let records = registry::view::by_file(&state.pool, &sha, Audience::Public).await?;
    Ok(HttpResponse::Ok().json(RecordList { records }))
}

/// A SHA-256 given as 64 hex digits (either case; surrounding spaces ignored), or 400
/// `invalid_sha256`.
pub(crate) fn parse_sha256(text: &str) -> Result<Sha256Digest, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::new(code::INVALID_SHA256, "sha256 must be 64 hex digits"))
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
    RecordId(id): RecordId,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require_any(&[Role::Generator, Role::Moderator])?;
    let not_found = || ApiError::new(code::IMAGE_NOT_FOUND, format!("no image {id}"));
    let record = registry::view::stored(&state.pool, id)
        .await?
        .ok_or_else(not_found)?;
    if caller.role == Role::Generator && record.fields.api_key_id != Some(caller.key_id) {
        return Err(not_found());
    }
    let tag = etag(&record.fields.file_sha256);
    if super::not_modified(&req, &tag) {
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
