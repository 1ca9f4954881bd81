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
use crate::generation::GenerationError;
use crate::inference::InferenceError;
use crate::registry::RegistryError;
use crate::verify::upload::UploadError;
use crate::verify::CheckError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

/// Every error code the API answers with, its HTTP status and when. One list, so a code means
/// one thing (a test checks that none repeats, and debug builds check that every error made is
/// listed).
pub const CODES: &[(&str, u16, &str)] = &[
    ("empty_upload", 400, "the upload has no bytes"),
    ("malformed_body", 400, "the request body could not be read"),
    ("malformed_json", 400, "the JSON body does not parse"),
    ("invalid_body", 400, "the JSON body has the wrong shape"),
    (
        "malformed_multipart",
        400,
        "the multipart body does not parse",
    ),
    (
        "no_files",
        400,
        "a multipart upload without a part named file",
    ),
    ("too_many_files", 400, "more files than verify.max_files"),
    (
        "too_many_parts",
        400,
        "too many form fields besides the files",
    ),
    ("invalid_id", 400, "a path id that is not a UUID"),
    ("invalid_sha256", 400, "a sha256 that is not 64 hex digits"),
    ("invalid_cursor", 400, "a cursor that no page gave"),
    ("invalid_limit", 400, "a page size out of range"),
    ("invalid_verdict", 400, "an unknown verdict filter"),
    ("invalid_count", 400, "an image count out of range"),
    (
        "invalid_quality",
        400,
        "a JPEG quality out of range, or one for PNG",
    ),
    (
        "malformed_authorization",
        401,
        "an Authorization header that is not Bearer",
    ),
    ("missing_api_key", 401, "no API key"),
    ("invalid_api_key", 401, "an unknown or revoked API key"),
    ("forbidden", 403, "the key's role does not allow the route"),
    ("route_not_found", 404, "no route for the method and path"),
    ("record_not_found", 404, "no such record"),
    ("image_not_found", 404, "no such image for this key"),
    ("check_not_found", 404, "no such check"),
    ("asset_not_found", 404, "no such web asset"),
    ("unknown_model", 404, "a model this service does not serve"),
    (
        "not_acceptable",
        406,
        "an Accept header no answer satisfies",
    ),
    (
        "body_timeout",
        408,
        "the body did not arrive within limits.body_timeout_s",
    ),
    (
        "payload_too_large",
        413,
        "a body over limits.max_request_bytes",
    ),
    (
        "unsupported_media_type",
        415,
        "not PNG, JPEG or WebP by content (or not JSON)",
    ),
    (
        "image_too_large",
        422,
        "more pixels than limits.max_image_pixels",
    ),
    (
        "aspect_ratio_too_large",
        422,
        "sides further apart than limits.max_aspect_ratio",
    ),
    ("corrupt_image", 422, "an image that does not decode"),
    ("queue_full", 429, "the model queue is full"),
    (
        "rate_limited",
        429,
        "too many public requests from one client",
    ),
    ("internal", 500, "a fault of ours; logged"),
    ("database_unavailable", 503, "PostgreSQL does not answer"),
    ("model_unavailable", 503, "the model thread has stopped"),
    (
        "model_timeout",
        503,
        "the request waited too long for the model",
    ),
    (
        "detector_unavailable",
        503,
        "the served model has no detector",
    ),
    ("storage_full", 503, "the image store's disk is full"),
    ("server_busy", 503, "the upload memory budget is spent"),
];

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after_s: Option<u64>,
}

impl ApiError {
    #[must_use]
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            CODES
                .iter()
                .any(|&(c, s, _)| c == code && s == status.as_u16()),
            "error code {code} with status {status} is not in api::error::CODES"
        );
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
            },
            retry_after_s: None,
        }
    }

    #[must_use]
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    #[must_use]
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    #[must_use]
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// An error whose detail is for the logs only; the client sees a generic message.
    #[must_use]
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
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
        let (status, code) = match error {
            UploadError::Empty => (StatusCode::BAD_REQUEST, "empty_upload"),
            UploadError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            UploadError::Unsupported => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            UploadError::TooManyPixels { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "image_too_large")
            }
            UploadError::AspectRatio { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "aspect_ratio_too_large")
            }
            UploadError::Corrupt { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "corrupt_image"),
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<InferenceError> for ApiError {
    fn from(error: InferenceError) -> Self {
        match error {
            InferenceError::QueueFull { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                error.to_string(),
            )
            .retry_after(1),
            InferenceError::Timeout(_) => {
                Self::unavailable("model_timeout", error.to_string()).retry_after(1)
            }
            InferenceError::Stopped => Self::unavailable("model_unavailable", error.to_string()),
            InferenceError::NoDetector => {
                Self::unavailable("detector_unavailable", error.to_string())
            }
            InferenceError::Model(_) => Self::internal(&error),
        }
    }
}

impl From<GenerationError> for ApiError {
    fn from(error: GenerationError) -> Self {
        match error {
            GenerationError::UnknownModel { .. } => {
                Self::not_found("unknown_model", error.to_string())
            }
            GenerationError::InvalidCount(_) => {
                Self::bad_request("invalid_count", error.to_string())
            }
            GenerationError::QualityForPng | GenerationError::InvalidQuality(_) => {
                Self::bad_request("invalid_quality", error.to_string())
            }
            GenerationError::Inference(inner) => inner.into(),
            GenerationError::StorageFull(_) => {
                Self::unavailable("storage_full", "the image store is full; try again later")
                    .retry_after(30)
            }
            GenerationError::Database(inner) => inner.into(),
            GenerationError::Storage(_)
            | GenerationError::Blocking(_)
            | GenerationError::Image(_) => Self::internal(&error),
        }
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
            CheckError::Blocking(_) => Self::internal(&error),
            CheckError::ShuttingDown => {
                Self::unavailable("model_unavailable", error.to_string()).retry_after(1)
            }
        }
    }
}

impl From<BlockingError> for ApiError {
    fn from(error: BlockingError) -> Self {
        Self::internal(&error)
    }
}

/// Database failures: an unreachable database is the client's 503, anything else a 500.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if database_unreachable(&error) {
            tracing::warn!(error = %error, "database unavailable");
            Self::unavailable("database_unavailable", "the database is not reachable")
                .retry_after(5)
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
        for (code, status, meaning) in CODES {
            assert!(seen.insert(code), "{code} is listed twice");
            assert!((400..600).contains(status) && !meaning.is_empty(), "{code}");
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
