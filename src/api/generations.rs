use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

use super::auth::CachedKey;
use super::AppState;
use crate::api::error::{code, ApiError};
use crate::generation::{Generated, GenerationRequest};
use crate::store::api_keys::Role;
use crate::tlog::proof::InclusionProof;

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
    /// The record's index in the transparency log; with `wait_for_log` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
    /// The record's offline inclusion proof (c2sp.org/tlog-proof@v1 text, as
    /// `GET /v1/records/{id}/proof` serves it); with `wait_for_log` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_proof: Option<String>,
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
            log_index: None,
            log_proof: None,
        }
    }
}

/// Whether the client asked for the image bytes themselves (`Accept: image/png` or `image/jpeg`).
pub(crate) fn wants_bytes(req: &HttpRequest) -> bool {
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
        (status = 201, description = "Images generated, signed and registered (with `wait_for_log`: and included in a signed checkpoint of the transparency log, each image with its `log_index` and `log_proof`)", body = GenerationResponse),
        (status = 200, description = "With `Accept: image/png|image/jpeg` and count 1: the signed image bytes (with `wait_for_log`: and an `X-Hallmark-Log-Index` header)"),
        (status = 400, description = "Invalid body (codes: invalid_count, invalid_quality, invalid_body, malformed_json)"),
        (status = 401, description = "Missing, unknown or revoked key"),
        (status = 403, description = "Key without the generator role"),
        (status = 404, description = "unknown_model"),
        (status = 429, description = "queue_full: retry after Retry-After seconds"),
        (status = 503, description = "database_unavailable, model_timeout or storage_full; log_timeout with `wait_for_log` past `transparency_log.wait_timeout_ms` (the records are committed: fetch their proofs later)"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    auth: CachedKey,
    req: HttpRequest,
    body: Result<web::Json<GenerationRequest>, actix_web::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // The key may come from the cache: the commit checks that it is still live before an image
    // is answered, and any other answer is checked by `refuse_if_revoked`.
    let answer = match body {
        Ok(body) => generate(&auth, &req, &body, &state)
            .await
            .map_err(actix_web::Error::from),
        Err(error) => Err(error),
    };
    match answer {
        Ok(response) => Ok(response),
        Err(error) => Err(auth.refuse_if_revoked(&state, error).await),
    }
}

async fn generate(
    auth: &CachedKey,
    req: &HttpRequest,
    body: &GenerationRequest,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.key.clone().require(Role::Generator)?;
    let service = &state.generation;
    let info = service.inference.info();
    let spec = body.validate(&info.name)?;
    let raw = wants_bytes(req);
    if raw && spec.count != 1 {
        return Err(ApiError::new(
            code::NOT_ACCEPTABLE,
            "image bytes can be returned for count 1 only; use JSON for more",
        ));
    }
    let (generated, times) = service.generate(spec, Some(caller.key_id)).await?;
    let timing = ("Server-Timing", super::server_timing(&times.stages()));
    let proofs = if body.wait_for_log {
        Some(wait_for_log(state, &generated).await?)
    } else {
        None
    };
    if raw {
        let image = &generated[0];
        let id = image.record.fields.id;
        let mut response = HttpResponse::Ok();
        response
            .content_type(image.format.mime())
            .insert_header((header::ETAG, etag(&image.record.fields.file_sha256)))
            .insert_header(("X-Hallmark-Record-Id", id.to_string()))
            .insert_header(timing)
            .insert_header((header::LOCATION, format!("/v1/images/{id}")));
        if let Some(proof) = proofs.as_ref().and_then(|proofs| proofs.first()) {
            response.insert_header(("X-Hallmark-Log-Index", proof.index.to_string()));
        }
        return Ok(response.body(image.bytes.clone()));
    }
    let mut images: Vec<GeneratedImage> = generated.iter().map(GeneratedImage::from).collect();
    for (image, proof) in images.iter_mut().zip(proofs.iter().flatten()) {
        image.log_index = Some(proof.index);
        image.log_proof = Some(proof.to_text());
    }
    Ok(HttpResponse::Created()
        .insert_header(timing)
        .content_type(ContentType::json())
        .json(GenerationResponse {
            model: info.name.clone(),
            model_version: info.version.clone(),
            seed: spec.seed,
            images,
        }))
}

/// Waits (up to `transparency_log.wait_timeout_ms`) until a signed checkpoint includes every
/// generated record; their inclusion proofs, in order.
///
/// # Errors
/// 503 `log_timeout` with `Retry-After` when the wait runs out (the records are committed and
/// stay in the log's queue); the log's own errors.
async fn wait_for_log(
    state: &AppState,
    generated: &[Generated],
) -> Result<Vec<InclusionProof>, ApiError> {
    let settings = &state.settings.transparency_log;
    let ids: Vec<Uuid> = generated.iter().map(|g| g.record.fields.id).collect();
    let timeout = Duration::from_millis(settings.wait_timeout_ms);
    if let Some(proofs) = state.log.wait_for_proofs(&ids, timeout).await? {
        return Ok(proofs);
    }
    let listed: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    Err(ApiError::new(
        code::LOG_TIMEOUT,
        format!(
            "no checkpoint of the transparency log included the records within {} ms; they are committed and will be logged: fetch /v1/records/{{id}}/proof later for {}",
            settings.wait_timeout_ms,
            listed.join(", ")
        ),
    )
    .retry_after(settings.checkpoint_interval_ms.div_ceil(1000).max(1)))
}

pub fn etag(file_sha256: &[u8]) -> String {
    format!("\"{}\"", hex::encode(file_sha256))
}
