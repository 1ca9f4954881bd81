//! The HTTP layer: routes, and the JSON shape of every error.

pub mod access;
mod auth;
pub mod body;
pub mod cors;
mod enhancements;
pub mod error;
mod generations;
mod health;
mod keys;
pub mod limits;
mod log;
pub mod metrics;
mod openapi;
mod pages;
pub(crate) mod records;
mod softbinding;
mod state;
mod verify;
pub mod witness;

pub use state::AppState;

pub use openapi::ApiDoc;

use actix_web::error::JsonPayloadError;
use actix_web::{guard, web, HttpRequest, HttpResponse};

use crate::api::error::{code, ApiError};

/// What the routes depend on in the settings, made once and handed to every worker's `App`.
#[derive(Debug, Clone)]
pub struct Routing {
    /// `c2pa_api.prefix`, without a trailing slash.
    pub c2pa_prefix: String,
    /// `api.cors_origins`: the origins the keyed routes answer.
    pub cors_origins: Vec<String>,
    /// `metrics.on_public_port`.
    pub metrics_on_public_port: bool,
}

impl Routing {
    #[must_use]
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            c2pa_prefix: settings.c2pa_api.prefix.trim_end_matches('/').to_owned(),
            cors_origins: settings.api.cors_origins.clone(),
            metrics_on_public_port: settings.metrics.on_public_port,
        }
    }
}

/// A read: GET, and HEAD with the same status and headers and no body (actix-http leaves the
/// body of an answer to HEAD off the wire and keeps its `Content-Length`). So every GET route
/// answers HEAD, as caches, CDNs, link checkers and monitors expect.
fn read() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Every route of the public listener; the Soft Binding Resolution API under
/// `routing.c2pa_prefix`, the transparency log's static layout under `/log`. Each route of the
/// HTTP API carries the CORS policy the access table gives it ([`access::CorsPolicy`]): public
/// ones any origin, keyed ones the configured origins; the service's own routes none.
pub fn routes(cfg: &mut web::ServiceConfig, routing: &Routing) {
    let public = |path: &str| web::resource(path.to_owned()).wrap(cors::public());
    let keyed =
        |path: &str| web::resource(path.to_owned()).wrap(cors::keyed(&routing.cors_origins));
    cfg.route("/healthz", read().to(health::healthz))
        .route("/readyz", read().to(health::readyz))
        .route("/openapi.json", read().to(openapi::document))
        .route("/docs", read().to(openapi::page))
        .configure(pages::routes)
        .service(
            web::scope("/log")
                .service(public("/checkpoint").route(read().to(log::checkpoint)))
                .service(public("/key").route(read().to(log::key)))
                .service(public("/tile/{tile_path:.*}").route(read().to(log::tile))),
        )
        .service(
            web::scope("/v1")
                .service(keyed("/generations").route(web::post().to(generations::create)))
                .service(keyed("/enhancements").route(web::post().to(enhancements::create)))
                .service(keyed("/images/{id}").route(read().to(records::image)))
                .service(public("/records").route(read().to(records::find)))
                .service(public("/records/{id}").route(read().to(records::get)))
                .service(public("/records/{id}/proof").route(read().to(log::proof)))
                .service(keyed("/verify").route(web::post().to(verify::verify)))
                .service(public("/lookup").route(web::post().to(verify::lookup)))
                .service(keyed("/checks").route(read().to(verify::list_checks)))
                .service(keyed("/checks/{id}").route(read().to(verify::get_check)))
                .service(public("/thumbnails/{sha256}").route(read().to(verify::thumbnail)))
                .service(keyed("/keys/me").route(read().to(keys::me))),
        )
        .service(
            web::scope(&routing.c2pa_prefix)
                .service(
                    public("/matches/byBinding")
                        .route(read().to(softbinding::by_binding))
                        .route(web::post().to(softbinding::by_binding_post)),
                )
                .service(
                    public("/matches/byContent").route(web::post().to(softbinding::by_content)),
                )
                .service(public("/manifests/{manifest_id}").route(read().to(softbinding::manifest)))
                .service(
                    public("/services/supportedAlgorithms")
                        .route(read().to(softbinding::supported_algorithms)),
                ),
        );
    if routing.metrics_on_public_port {
        metrics_routes(cfg);
    }
}

/// The metrics listener's one route (`metrics.listen`); also on the public listener when
/// `metrics.on_public_port` is set.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", read().to(metrics::render));
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

/// Whether the client already holds the bytes with this ETag (`If-None-Match`, any of its
/// tags, or `*`): the answer is then `304 Not Modified`.
#[must_use]
pub(crate) fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(actix_web::http::header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == etag || tag == "*")
}

/// Every path no route claims.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        code::ROUTE_NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
