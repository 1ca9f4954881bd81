use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use super::auth::Authenticated;
use super::AppState;
use crate::api::error::{code, ApiError};
use crate::generation::{Generated, GenerationRequest};
use crate::store::api_keys::Role;

/// One generated image as listed in the JSON answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GeneratedImage {
    pub id: Uuid,
    /// The signed image bytes (generator key of the owner, or admin).
    pub image_url: String,
    /// The public, signed record.
    pub record_url: String,
    pub format: String,
    pub width: i32,
    pub height: i32,
    /// SHA-256 of the signed file, hex.
    pub sha256: String,
    /// SHA-256 of the decoded pixels, hex.
    pub pixel_sha256: String,
    /// 64-bit perceptual hash, hex.
    pub phash: String,
    pub manifest_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GenerationResponse {
    pub model: String,
    pub model_version: String,
    /// The seed used (the one given, or the random one chosen).
    pub seed: u64,
    pub images: Vec<GeneratedImage>,
}

impl From<&Generated> for GeneratedImage {
    fn from(generated: &Generated) -> Self {
        let f = &generated.record.fields;
        Self {
            id: f.id,
            image_url: format!("/v1/images/{}", f.id),
            record_url: format!("/v1/records/{}", f.id),
            format: f.format.clone(),
            width: f.width,
            height: f.height,
            sha256: hex::encode(&f.file_sha256),
            pixel_sha256: hex::encode(&f.pixel_sha256),
            phash: format!("{:016x}", crate::fingerprint::phash_from_db(f.phash)),
            manifest_id: f.manifest_id.clone(),
            created_at: f.created_at,
        }
    }
}

/// Whether the client asked for the image bytes themselves (`Accept: image/png` or `image/jpeg`).
fn wants_bytes(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|part| part.trim().starts_with("image/"))
        })
}

/// Generate signed images.
#[utoipa::path(
    post,
    path = "/v1/generations",
    request_body = GenerationRequest,
    responses(
        (status = 201, description = "Images generated, signed and registered", body = GenerationResponse),
        (status = 200, description = "With `Accept: image/png|image/jpeg` and count 1: the signed image bytes"),
        (status = 400, description = "Invalid body (codes: invalid_count, invalid_quality, invalid_body, malformed_json)"),
        (status = 401, description = "Missing, unknown or revoked key"),
        (status = 403, description = "Key without the generator role"),
        (status = 404, description = "unknown_model"),
        (status = 429, description = "queue_full: retry after Retry-After seconds"),
        (status = 503, description = "database_unavailable, model_timeout or storage_full"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    auth: Authenticated,
    req: HttpRequest,
    body: web::Json<GenerationRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(Role::Generator)?;
    let service = &state.generation;
    let info = service.inference.info();
    let spec = body.validate(&info.name)?;
    let raw = wants_bytes(&req);
    if raw && spec.count != 1 {
        return Err(ApiError::new(
            code::NOT_ACCEPTABLE,
            "image bytes can be returned for count 1 only; use JSON for more",
        ));
    }
    let (generated, times) = service.generate(spec, Some(caller.key_id)).await?;
    let timing = ("Server-Timing", super::server_timing(&times.stages()));
    if raw {
        let image = &generated[0];
        let id = image.record.fields.id;
        return Ok(HttpResponse::Ok()
            .content_type(image.format.mime())
            .insert_header((header::ETAG, etag(&image.record.fields.file_sha256)))
            .insert_header(("X-Hallmark-Record-Id", id.to_string()))
            .insert_header(timing)
            .insert_header((header::LOCATION, format!("/v1/images/{id}")))
            .body(image.bytes.clone()));
    }
    Ok(HttpResponse::Created()
        .insert_header(timing)
        .content_type(ContentType::json())
        .json(GenerationResponse {
            model: info.name.clone(),
            model_version: info.version.clone(),
            seed: spec.seed,
            images: generated.iter().map(GeneratedImage::from).collect(),
        }))
}

pub fn etag(file_sha256: &[u8]) -> String {
    format!("\"{}\"", hex::encode(file_sha256))
}
