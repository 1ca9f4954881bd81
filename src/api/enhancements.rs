//! `POST /v1/enhancements`: an upload enhanced by the served model (restore, inpaint, upscale),
//! signed as an edit of the upload and registered like a generated image.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::auth::Authenticated;
use super::body::{is_multipart, read_form};
use super::error::{code, ApiError};
use super::generations::{etag, GeneratedImage};
use super::AppState;
use crate::enhance::{Operation, Region};
use crate::generation::EnhancementSpec;
use crate::store::api_keys::Role;
use crate::verify::upload::inspect;

/// The answer in JSON: the signed result and what it was made from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnhancementResponse {
    pub model: String,
    pub model_version: String,
    /// `restore`, `inpaint` or `upscale`.
    pub operation: String,
    /// What was done, in words.
    pub description: String,
    /// SHA-256 of the upload as received, hex: the record's `parent_sha256`.
    pub parent_sha256: String,
    /// The seed of the inversion's starts (the one given, or the random one chosen).
    pub seed: u64,
    pub image: GeneratedImage,
}

/// Enhance an upload with the served model; the result is signed as an edit whose ingredient
/// is the upload.
///
/// A `multipart/form-data` body: `image` (PNG, JPEG or WebP, in the model's domain: the model's
/// size — for `upscale`, the model's size divided by `factor` — and grey for a grey model),
/// `op` (`restore`, `inpaint`, `upscale`), for `inpaint` either `rect` (`x,y,w,h`) or `mask`
/// (an image of the picture's size, white where pixels are missing), for `upscale` `factor`
/// (2 or 4), and optionally `seed` (the same upload, operation and seed give the same pixels).
/// `Accept: image/*` answers the signed PNG itself.
#[utoipa::path(
    post,
    path = "/v1/enhancements",
    request_body(content_type = "multipart/form-data", description = "image, op, rect or mask, factor, seed"),
    responses(
        (status = 201, body = EnhancementResponse),
        (status = 200, description = "The signed PNG (Accept: image/*)", content_type = "image/png"),
        (status = 400, description = "invalid_operation, invalid_region, invalid_factor, no_files, malformed_multipart"),
        (status = 401, description = "Missing, unknown or revoked key"),
        (status = 403, description = "Not a generator key"),
        (status = 413, description = "payload_too_large"),
        (status = 415, description = "unsupported_media_type: not PNG, JPEG or WebP by content"),
        (status = 422, description = "out_of_domain, corrupt_image, image_too_large"),
        (status = 429, description = "queue_full"),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    auth: Authenticated,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(Role::Generator)?;
    let limits = &state.settings.limits;
    let _reservation = state
        .uploads
        .reserve(req.headers(), limits.max_request_bytes)?;
    if !is_multipart(req.headers()) {
        return Err(ApiError::new(
            code::INVALID_OPERATION,
            "send multipart/form-data with the fields image and op",
        ));
    }
    let mut form = read_form(
        req.headers(),
        payload,
        limits.max_request_bytes,
        &["image", "mask"],
        &["op", "rect", "factor", "seed"],
    )
    .await?;
    let upload = form
        .files
        .remove("image")
        .ok_or_else(|| ApiError::new(code::NO_FILES, "the form has no image"))?
        .bytes;
    let op = form.fields.get("op").map_or("", String::as_str);
    let gate = limits.clone();
    let mask = form.files.remove("mask").map(|part| part.bytes);
    let (upload, image, mask) = crate::blocking::run(move || {
        let image = inspect(&upload, &gate)?.image;
        let mask = match mask {
            Some(bytes) => Some(inspect(&bytes, &gate)?.image),
            None => None,
        };
        Ok::<_, crate::verify::upload::UploadError>((upload, image, mask))
    })
    .await??;
    let info = state.generation.inference.info();
    let operation = operation(op, &form.fields, mask.as_ref(), info.image_size)?;
    let seed = match form.fields.get("seed") {
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::new(code::INVALID_OPERATION, "seed is a number from 0 to 2^64-1")
        })?,
        None => rand::random(),
    };
    let description = operation.describe();
    let spec = EnhancementSpec {
        upload: upload.into(),
        image,
        operation,
        seed,
        settings: state.settings.enhancement,
    };
    let (generated, times) = state.generation.enhance(spec, Some(caller.key_id)).await?;
    let timing = ("Server-Timing", super::server_timing(&times.stages()));
    let fields = &generated.record.fields;
    let id = fields.id;
    if super::generations::wants_bytes(&req) {
        return Ok(HttpResponse::Ok()
            .content_type(generated.format.mime())
            .insert_header((header::ETAG, etag(&fields.file_sha256)))
            .insert_header(("X-Hallmark-Record-Id", id.to_string()))
            .insert_header(timing)
            .insert_header((header::LOCATION, format!("/v1/images/{id}")))
            .body(generated.bytes.clone()));
    }
    Ok(HttpResponse::Created()
        .insert_header(timing)
        .content_type(ContentType::json())
        .json(EnhancementResponse {
            model: fields.model.clone(),
            model_version: fields.model_version.clone(),
            operation: fields.operation.clone().unwrap_or_default(),
            description,
            parent_sha256: hex::encode(fields.parent_sha256.as_deref().unwrap_or_default()),
            seed,
            image: GeneratedImage::from(&generated),
        }))
}

/// The operation the form asks for.
fn operation(
    op: &str,
    fields: &std::collections::HashMap<String, String>,
    mask: Option<&image::DynamicImage>,
    size: u32,
) -> Result<Operation, ApiError> {
    let invalid = |message: &str| ApiError::new(code::INVALID_OPERATION, message);
    let unused = |name: &str| {
        if fields.contains_key(name) {
            Err(invalid(&format!("{name} does not apply to op {op}")))
        } else {
            Ok(())
        }
    };
    match op {
        "restore" => {
            unused("rect")?;
            unused("factor")?;
            if mask.is_some() {
                return Err(invalid("mask does not apply to op restore"));
            }
            Ok(Operation::Restore)
        }
        "inpaint" => {
            unused("factor")?;
            let region = match (fields.get("rect"), mask) {
                (Some(rect), None) => Region::parse_rect(rect)?,
                (None, Some(mask)) => Region::from_mask_image(mask, size)?,
                _ => {
                    return Err(invalid(
                        "inpaint takes either rect (x,y,w,h) or a mask image",
                    ))
                }
            };
            Ok(Operation::Inpaint(region))
        }
        "upscale" => {
            unused("rect")?;
            if mask.is_some() {
                return Err(invalid("mask does not apply to op upscale"));
            }
            let factor = fields
                .get("factor")
                .map_or(Ok(2), |f| f.parse::<u32>())
                .map_err(|_| ApiError::new(code::INVALID_FACTOR, "factor is 2 or 4"))?;
            Ok(Operation::Upscale { factor })
        }
        "" => Err(invalid("the form has no op: restore, inpaint or upscale")),
        other => Err(invalid(&format!(
            "op {:?}: restore, inpaint or upscale",
            other.chars().take(32).collect::<String>()
        ))),
    }
}
