//! The HTTP layer: routes, and the JSON shape of every error.

pub mod access;
mod auth;
pub mod body;
pub mod error;
mod generations;
mod health;
mod keys;
pub mod limits;
mod log;
pub mod metrics;
mod openapi;
#[path = "web.rs"]
mod pages;
pub(crate) mod records;
mod softbinding;
mod state;
mod verify;
pub mod witness;

pub use state::AppState;

pub use openapi::ApiDoc;

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::error::{code, ApiError};

/// Every route; the Soft Binding Resolution API under `c2pa_prefix` (`c2pa_api.prefix`), the
/// transparency log's static layout under `/log`.
pub fn routes(cfg: &mut web::ServiceConfig, c2pa_prefix: &str) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::render))
        .route("/openapi.json", web::get().to(openapi::document))
        .route("/docs", web::get().to(openapi::page))
        .configure(pages::routes)
        .service(
            web::scope("/log")
                .route("/checkpoint", web::get().to(log::checkpoint))
                .route("/key", web::get().to(log::key))
                .route("/tile/{tile_path:.*}", web::get().to(log::tile)),
        )
        .service(
            web::scope("/v1")
                .route("/generations", web::post().to(generations::create))
                .route("/images/{id}", web::get().to(records::image))
                .route("/records", web::get().to(records::find))
                .route("/records/{id}", web::get().to(records::get))
                .route("/records/{id}/proof", web::get().to(log::proof))
                .route("/verify", web::post().to(verify::verify))
                .route("/lookup", web::post().to(verify::lookup))
                .route("/checks", web::get().to(verify::list_checks))
                .route("/checks/{id}", web::get().to(verify::get_check))
                .route("/thumbnails/{sha256}", web::get().to(verify::thumbnail))
                .route("/keys/me", web::get().to(keys::me)),
        )
        .service(
            web::scope(c2pa_prefix)
                .route("/matches/byBinding", web::get().to(softbinding::by_binding))
                .route(
                    "/matches/byBinding",
                    web::post().to(softbinding::by_binding_post),
                )
                .route(
                    "/matches/byContent",
                    web::post().to(softbinding::by_content),
                )
                .route(
                    "/manifests/{manifest_id}",
                    web::get().to(softbinding::manifest),
                )
                .route(
                    "/services/supportedAlgorithms",
                    web::get().to(softbinding::supported_algorithms),
                ),
        );
}

/// JSON bodies: size limit, and a coded 4xx for anything that does not parse.
#[must_use]
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|error, _req| json_error(&error).into())
}

fn json_error(error: &JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(code::PAYLOAD_TOO_LARGE, error.to_string())
        }
        JsonPayloadError::ContentType => ApiError::new(
            code::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(inner) if inner.is_data() => {
            ApiError::new(code::INVALID_BODY, inner.to_string())
        }
        JsonPayloadError::Payload(payload) => body::payload_error(payload, code::MALFORMED_JSON),
        other => ApiError::new(code::MALFORMED_JSON, other.to_string()),
    }
}

/// A W3C `Server-Timing` header value: each stage's time in milliseconds.
#[must_use]
pub fn server_timing(stages: &[(&str, std::time::Duration)]) -> String {
    stages
        .iter()
        .map(|(name, time)| format!("{name};dur={:.3}", time.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every path no route claims.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        code::ROUTE_NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
