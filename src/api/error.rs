//! The one error type the HTTP API answers with: a status, a stable machine-readable `code`
//! that clients switch on, and a human-readable `message`; the list of every code ([`CODES`]);
//! and how each domain error (generation, checks, the registry, the upload gate, the model
//! thread, the database) becomes one. Domain code returns its own error enums and never speaks
//! HTTP.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::blocking::BlockingError;
use crate::enhance::EnhanceError;
use crate::generation::GenerationError;
use crate::inference::InferenceError;
use crate::registry::RegistryError;
use crate::tlog::LogError;
use crate::verify::upload::UploadError;
use crate::verify::CheckError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

/// A stable, machine-readable error code and the HTTP status it always goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    pub status: u16,
    /// When the API answers with it.
    pub meaning: &'static str,
}

macro_rules! error_codes {
    ($($name:ident = ($code:literal, $status:literal, $meaning:literal);)*) => {
        /// Every error code the API answers with, as constants: handlers name a code, never
        /// spell it, so a code means one thing and has one status.
        pub mod code {
            use super::ErrorCode;
            $(pub const $name: ErrorCode = ErrorCode { code: $code, status: $status, meaning: $meaning };)*
        }

        /// Every error code, in the order of HTTP status (a test checks that none repeats).
        pub const CODES: &[ErrorCode] = &[$(code::$name),*];
    };
}

error_codes! {
    EMPTY_UPLOAD = ("empty_upload", 400, "the upload has no bytes");
    MALFORMED_BODY = ("malformed_body", 400, "the request body could not be read");
    MALFORMED_JSON = ("malformed_json", 400, "the JSON body does not parse");
    INVALID_BODY = ("invalid_body", 400, "the JSON body has the wrong shape");
    MALFORMED_MULTIPART = ("malformed_multipart", 400, "the multipart body does not parse");
    NO_FILES = ("no_files", 400, "a multipart upload without a part named file");
    TOO_MANY_FILES = ("too_many_files", 400, "more files than verify.max_files");
    TOO_MANY_PARTS = ("too_many_parts", 400, "too many form fields besides the files");
    INVALID_ID = ("invalid_id", 400, "a path id that is not a UUID");
    INVALID_SHA256 = ("invalid_sha256", 400, "a sha256 that is not 64 hex digits");
    INVALID_BINDING_VALUE = ("invalid_binding_value", 400, "a soft-binding value that is not base64 of the algorithm's bytes");
    UNKNOWN_ALGORITHM = ("unknown_algorithm", 400, "a soft-binding algorithm this service does not resolve");
    INVALID_MAX_RESULTS = ("invalid_max_results", 400, "a maxResults that is not a positive integer");
    INVALID_MANIFEST_ID = ("invalid_manifest_id", 400, "a manifest id that is not urn:c2pa:...");
    INVALID_CURSOR = ("invalid_cursor", 400, "a cursor that no page gave");
    INVALID_LIMIT = ("invalid_limit", 400, "a page size out of range");
    INVALID_VERDICT = ("invalid_verdict", 400, "an unknown verdict filter");
    INVALID_COUNT = ("invalid_count", 400, "an image count out of range");
    INVALID_FORMAT = ("invalid_format", 400, "a format parameter other than report or crjson");
    INVALID_QUALITY = ("invalid_quality", 400, "a JPEG quality out of range, or one for PNG");
    INVALID_OPERATION = ("invalid_operation", 400, "an enhancement op other than restore, inpaint or upscale, or a form field missing, repeated or malformed");
    INVALID_REGION = ("invalid_region", 400, "an inpaint region that is empty, leaves the picture, is of another size or leaves less than a quarter known");
    INVALID_FACTOR = ("invalid_factor", 400, "an upscale factor other than 2 or 4");
    INVALID_TILE_PATH = ("invalid_tile_path", 400, "a log tile path that is not tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>] as c2sp.org/tlog-tiles spells them");
    CORS_REFUSED = ("cors_refused", 400, "a CORS preflight from an origin, for a method or with headers the route's policy does not allow (api.cors_origins for the keyed routes)");
    MALFORMED_AUTHORIZATION = ("malformed_authorization", 401, "an Authorization header that is not Bearer");
    MISSING_API_KEY = ("missing_api_key", 401, "no API key");
    INVALID_API_KEY = ("invalid_api_key", 401, "an unknown or revoked API key");
    FORBIDDEN = ("forbidden", 403, "the key's role does not allow the route");
    ROUTE_NOT_FOUND = ("route_not_found", 404, "no route for the method and path");
    RECORD_NOT_FOUND = ("record_not_found", 404, "no such record");
    IMAGE_NOT_FOUND = ("image_not_found", 404, "no such image for this key");
    MANIFEST_NOT_FOUND = ("manifest_not_found", 404, "no manifest store with that id in the repository");
    THUMBNAIL_NOT_FOUND = ("thumbnail_not_found", 404, "no such thumbnail in the cache of recent checks");
    CHECK_NOT_FOUND = ("check_not_found", 404, "no such check");
    ASSET_NOT_FOUND = ("asset_not_found", 404, "no such web asset");
    UNKNOWN_MODEL = ("unknown_model", 404, "a model this service does not serve");
    TILE_NOT_FOUND = ("tile_not_found", 404, "a log tile or entry bundle beyond the current tree");
    NOT_IN_LOG = ("not_in_log", 404, "a record made before the transparency log, not yet handed to it (hallmark log backfill)");
    NOT_ACCEPTABLE = ("not_acceptable", 406, "an Accept header no answer satisfies");
    BODY_TIMEOUT = ("body_timeout", 408, "the body did not arrive within limits.body_timeout_s");
    PAYLOAD_TOO_LARGE = ("payload_too_large", 413, "a body over limits.max_request_bytes");
    BINDING_VALUE_TOO_LONG = ("binding_value_too_long", 414, "a soft-binding value too long for a URL: POST it");
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415, "not PNG, JPEG or WebP by content (or not JSON)");
    IMAGE_TOO_LARGE = ("image_too_large", 422, "more pixels than limits.max_image_pixels");
    ASPECT_RATIO_TOO_LARGE = ("aspect_ratio_too_large", 422, "sides further apart than limits.max_aspect_ratio");
    CORRUPT_IMAGE = ("corrupt_image", 422, "an image that does not decode");
    OUT_OF_DOMAIN = ("out_of_domain", 422, "a picture the served model cannot enhance: another size, or colour for a grey model");
    NO_MANIFEST = ("no_manifest", 422, "format=crjson for a file that carries no C2PA manifest store");
    MANIFEST_INACCESSIBLE = ("manifest_inaccessible", 422, "format=crjson for a file whose manifest is remote (remote manifests are never fetched)");
    UNREADABLE_MANIFEST = ("unreadable_manifest", 422, "format=crjson for a manifest store the C2PA reader cannot read");
    QUEUE_FULL = ("queue_full", 429, "the model queue or the commit queue is full: retry after Retry-After");
    RATE_LIMITED = ("rate_limited", 429, "too many public requests from one client");
    INTERNAL = ("internal", 500, "a fault of ours; logged");
    DATABASE_UNAVAILABLE = ("database_unavailable", 503, "PostgreSQL does not answer");
    MODEL_UNAVAILABLE = ("model_unavailable", 503, "the model thread has stopped");
    MODEL_TIMEOUT = ("model_timeout", 503, "the request waited too long for the model");
    LOG_TIMEOUT = ("log_timeout", 503, "wait_for_log: no checkpoint included the records within transparency_log.wait_timeout_ms (they are committed and will be logged)");
    DETECTOR_UNAVAILABLE = ("detector_unavailable", 503, "the served model has no detector");
    STORAGE_FULL = ("storage_full", 503, "the image store's disk is full");
    SERVER_BUSY = ("server_busy", 503, "the upload memory budget is spent");
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after_s: Option<u64>,
}

impl ApiError {
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(code.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: ErrorBody {
                code: code.code,
                message: message.into(),
            },
            retry_after_s: None,
        }
    }

    /// An error whose detail is for the logs only; the client sees a generic message.
    #[must_use]
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "internal error");
        Self::new(code::INTERNAL, "internal error; it has been logged")
    }

    /// Adds a `Retry-After` header (seconds), for 429 and 503 answers.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        self.body.code
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    #[must_use]
    pub fn message(&self) -> &str {
        &self.body.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status, self.body.code, self.body.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after_s {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.json(&self.body)
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        let code = match error {
            UploadError::Empty => code::EMPTY_UPLOAD,
            UploadError::TooLarge { .. } => code::PAYLOAD_TOO_LARGE,
            UploadError::Unsupported => code::UNSUPPORTED_MEDIA_TYPE,
            UploadError::TooManyPixels { .. } => code::IMAGE_TOO_LARGE,
            UploadError::AspectRatio { .. } => code::ASPECT_RATIO_TOO_LARGE,
            UploadError::Corrupt { .. } => code::CORRUPT_IMAGE,
        };
        Self::new(code, error.to_string())
    }
}

impl From<InferenceError> for ApiError {
    fn from(error: InferenceError) -> Self {
        match error {
            InferenceError::QueueFull { .. } => {
                Self::new(code::QUEUE_FULL, error.to_string()).retry_after(1)
            }
            InferenceError::Timeout(_) => {
                Self::new(code::MODEL_TIMEOUT, error.to_string()).retry_after(1)
            }
            InferenceError::Stopped => Self::new(code::MODEL_UNAVAILABLE, error.to_string()),
            InferenceError::NoDetector => Self::new(code::DETECTOR_UNAVAILABLE, error.to_string()),
            InferenceError::Model(_) => Self::internal(&error),
        }
    }
}

impl From<GenerationError> for ApiError {
    fn from(error: GenerationError) -> Self {
        match error {
            GenerationError::UnknownModel { .. } => {
                Self::new(code::UNKNOWN_MODEL, error.to_string())
            }
            GenerationError::InvalidCount(_) => Self::new(code::INVALID_COUNT, error.to_string()),
            GenerationError::QualityForPng | GenerationError::InvalidQuality(_) => {
                Self::new(code::INVALID_QUALITY, error.to_string())
            }
            GenerationError::Inference(inner) => inner.into(),
            GenerationError::Enhance(inner) => inner.into(),
            GenerationError::CommitQueueFull { .. } => {
                Self::new(code::QUEUE_FULL, error.to_string()).retry_after(1)
            }
            GenerationError::StorageFull(_) => Self::new(
                code::STORAGE_FULL,
                "the image store is full; try again later",
            )
            .retry_after(30),
            GenerationError::KeyRevoked => Self::new(code::INVALID_API_KEY, error.to_string()),
            GenerationError::Database(inner) => inner.into(),
            GenerationError::Storage(_)
            | GenerationError::Blocking(_)
            | GenerationError::Image(_) => Self::internal(&error),
        }
    }
}

impl From<EnhanceError> for ApiError {
    fn from(error: EnhanceError) -> Self {
        let code = match error {
            EnhanceError::OutOfDomain(_) => code::OUT_OF_DOMAIN,
            EnhanceError::InvalidRegion(_) => code::INVALID_REGION,
            EnhanceError::InvalidFactor(_) => code::INVALID_FACTOR,
        };
        Self::new(code, error.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Database(inner) => inner.into(),
            RegistryError::Blob(_) | RegistryError::Blocking(_) => Self::internal(&error),
        }
    }
}

impl From<CheckError> for ApiError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Upload(inner) => inner.into(),
            CheckError::Inference(inner) => inner.into(),
            CheckError::Registry(inner) => inner.into(),
            CheckError::Database(inner) => inner.into(),
            CheckError::Blocking(_) | CheckError::Report(_) => Self::internal(&error),
            CheckError::CrJson(inner) => {
                use crate::provenance::verify::CrJsonError;
                let code = match inner {
                    CrJsonError::Unsupported => code::UNSUPPORTED_MEDIA_TYPE,
                    CrJsonError::NoManifest => code::NO_MANIFEST,
                    CrJsonError::Inaccessible(_) => code::MANIFEST_INACCESSIBLE,
                    CrJsonError::Unreadable(_) => code::UNREADABLE_MANIFEST,
                };
                Self::new(code, inner.to_string())
            }
            CheckError::ShuttingDown => {
                Self::new(code::MODEL_UNAVAILABLE, error.to_string()).retry_after(1)
            }
        }
    }
}

impl From<BlockingError> for ApiError {
    fn from(error: BlockingError) -> Self {
        Self::internal(&error)
    }
}

impl From<LogError> for ApiError {
    fn from(error: LogError) -> Self {
        match error {
            LogError::Database(error) => error.into(),
            other => Self::internal(&other),
        }
    }
}

/// Database failures: an unreachable database is the client's 503, anything else a 500.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if database_unreachable(&error) {
            tracing::warn!(error = %error, "database unavailable");
            Self::new(code::DATABASE_UNAVAILABLE, "the database is not reachable").retry_after(5)
        } else {
            Self::internal(&error)
        }
    }
}

/// Errors that mean "no working connection" rather than a bad query: I/O, pool time-outs, and
/// PostgreSQL's connection-exception (08), shutdown (57P0x) and too-many-connections codes.
#[must_use]
pub fn database_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }),
        _ => false,
    }
}

/// Writes an error and each of its sources, `outer: inner: innermost`.
#[must_use]
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for code in CODES {
            assert!(seen.insert(code.code), "{} is listed twice", code.code);
            assert!(
                StatusCode::from_u16(code.status).is_ok()
                    && (400..600).contains(&code.status)
                    && !code.meaning.is_empty(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn upload_refusals_keep_their_codes() {
        let cases = [
            (UploadError::Empty, 400, "empty_upload"),
            (UploadError::Unsupported, 415, "unsupported_media_type"),
            (
                UploadError::TooManyPixels {
                    width: 1,
                    height: 1,
                    limit: 0,
                },
                422,
                "image_too_large",
            ),
            (
                UploadError::AspectRatio {
                    width: 100,
                    height: 1,
                    limit: 32,
                },
                422,
                "aspect_ratio_too_large",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code()), (status, code));
        }
        let full = ApiError::from(GenerationError::StorageFull(
            object_store::Error::NotImplemented,
        ));
        assert_eq!((full.status().as_u16(), full.code()), (503, "storage_full"));
    }
}
