//! `POST /v1/verify` (moderators), `POST /v1/lookup` (public) and the stored checks.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Authenticated;
use super::body::{is_multipart, read_body, read_parts};
use super::limits::WithinQuota;
use super::AppState;
use crate::api::error::{code, ApiError};
use crate::store::api_keys::Role;
use crate::store::checks::{self, CheckSummary, Cursor, StoredCheck};
use crate::verify::{CheckKind, CheckTimes, Verdict, VerifyReport};

/// A refused file in a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemError {
    pub code: &'static str,
    pub message: String,
    /// The HTTP status the file alone would have had.
    pub status: u16,
}

/// One file's outcome in a batch: a report or an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchItem {
    pub file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<VerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// In upload order.
    pub results: Vec<BatchItem>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckList {
    pub checks: Vec<CheckSummary>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CheckQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only checks with this verdict.
    pub verdict: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VerifyQuery {
    /// `report` (the default): Hallmark's check, stored. `crjson`: the upload's C2PA manifest
    /// store as crJSON, the validator output the C2PA Conformance Program's rubrics judge
    /// (one file; nothing stored; no registry or detector).
    pub format: Option<String>,
}

/// Errors that belong to one file of a batch; the others (database down, model busy) fail the
/// whole request.
fn belongs_to_file(error: &ApiError) -> bool {
    error.status().is_client_error() && error.status() != StatusCode::TOO_MANY_REQUESTS
}

fn with_timing(
    mut response: actix_web::HttpResponseBuilder,
    times: &CheckTimes,
) -> actix_web::HttpResponseBuilder {
    response.insert_header(("Server-Timing", super::server_timing(&times.stages())));
    for (stage, time) in times.stages() {
        metrics::histogram!("hallmark_check_stage_seconds", "stage" => stage)
            .record(time.as_secs_f64());
    }
    response
}

/// Check uploaded images: provenance, registry, detector, verdict. Each check is stored.
///
/// A raw image body answers with one report; `multipart/form-data` with parts named `file`
/// answers with one result per file, in order, where a refused file carries its error and does
/// not fail the others. With `format=crjson`, one file's manifest store as crJSON instead.
#[utoipa::path(post, path = "/v1/verify",
    params(VerifyQuery),
    request_body(content = Vec<u8>, description = "An image (PNG, JPEG, WebP), or multipart/form-data with parts named \"file\"", content_type = "image/png"),
    responses(
        (status = 200, description = "One report (raw body), or `BatchResponse` (multipart); with format=crjson a crJSON document", body = VerifyReport),
        (status = 400, description = "empty_upload, no_files, too_many_files, too_many_parts, malformed_multipart, malformed_body, invalid_format"),
        (status = 408, description = "body_timeout"),
        (status = 401, description = "Missing, unknown or revoked key"),
        (status = 403, description = "Not a moderator or admin key"),
        (status = 413, description = "payload_too_large"),
        (status = 415, description = "unsupported_media_type (judged by content)"),
        (status = 422, description = "corrupt_image, image_too_large, aspect_ratio_too_large; with format=crjson: no_manifest, manifest_inaccessible, unreadable_manifest"),
        (status = 429, description = "queue_full"),
        (status = 503, description = "database_unavailable, model_unavailable, server_busy"),
    ),
    security(("api_key" = [])))]
pub async fn verify(
    auth: Authenticated,
    req: HttpRequest,
    query: web::Query<VerifyQuery>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = auth.require(Role::Moderator)?;
    match query.format.as_deref() {
        None | Some("report") => {}
        Some("crjson") => {
            let (bytes, _, _reservation) = read_one_upload(&req, payload, &state).await?;
            if bytes.is_empty() {
                return Err(ApiError::new(code::EMPTY_UPLOAD, "the upload has no bytes"));
            }
            return Ok(HttpResponse::Ok().json(state.verify.crjson(bytes).await?));
        }
        Some(other) => {
            return Err(ApiError::new(
                code::INVALID_FORMAT,
                format!("format must be report or crjson, got {other:?}"),
            ))
        }
    }
    let limit = state.settings.limits.max_request_bytes;
    let _reservation = state.uploads.reserve(req.headers(), limit)?;
    if !is_multipart(req.headers()) {
        let bytes = read_body(payload, limit).await?;
        let (mut report, times) = state.verify.check(bytes, None, CheckKind::Full).await?;
        crate::verify::store_checks(&state.pool, caller.key_id, &mut [&mut report]).await?;
        return Ok(with_timing(HttpResponse::Ok(), &times).json(report));
    }
    let parts = read_parts(
        req.headers(),
        payload,
        limit,
        state.settings.verify.max_files,
    )
    .await?;
    let names: Vec<Option<String>> = parts.iter().map(|p| p.file_name.clone()).collect();
    let outcomes = futures_util::future::join_all(parts.into_iter().map(|part| {
        let service = &state.verify;
        async move {
            service
                .check(part.bytes, part.file_name, CheckKind::Full)
                .await
                .map_err(ApiError::from)
        }
    }))
    .await;
    let mut times = CheckTimes::default();
    let mut results = Vec::with_capacity(outcomes.len());
    for (outcome, file_name) in outcomes.into_iter().zip(names) {
        match outcome {
            Ok((report, t)) => {
                times.add(&t);
                results.push(BatchItem {
                    file_name,
                    report: Some(report),
                    error: None,
                });
            }
            Err(error) if belongs_to_file(&error) => results.push(BatchItem {
                file_name,
                report: None,
                error: Some(ItemError {
                    code: error.code(),
                    message: error.message().to_owned(),
                    status: error.status().as_u16(),
                }),
            }),
            Err(error) => return Err(error),
        }
    }
    let mut reports: Vec<&mut VerifyReport> = results
        .iter_mut()
        .filter_map(|r| r.report.as_mut())
        .collect();
    crate::verify::store_checks(&state.pool, caller.key_id, &mut reports).await?;
    Ok(with_timing(HttpResponse::Ok(), &times).json(BatchResponse { results }))
}

/// Public: the provenance and registry parts for one image (no detector; nothing stored).
#[utoipa::path(post, path = "/v1/lookup",
    request_body(content = Vec<u8>, description = "An image (PNG, JPEG, WebP), raw or as one multipart part named \"file\"", content_type = "image/png"),
    responses(
        (status = 200, body = VerifyReport),
        (status = 400, description = "empty_upload, no_files, too_many_files, too_many_parts, malformed_multipart, malformed_body"),
        (status = 408, description = "body_timeout"),
        (status = 413, description = "payload_too_large"),
        (status = 415, description = "unsupported_media_type"),
        (status = 422, description = "corrupt_image, image_too_large, aspect_ratio_too_large"),
        (status = 429, description = "rate_limited"),
        (status = 503, description = "server_busy, database_unavailable"),
    ))]
pub async fn lookup(
    _: WithinQuota,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (bytes, file_name, _reservation) = read_one_upload(&req, payload, &state).await?;
    let (report, times) = state
        .verify
        .check(bytes, file_name, CheckKind::Lookup)
        .await?;
    Ok(with_timing(HttpResponse::Ok(), &times).json(report))
}

/// One uploaded image, raw or as one multipart part, within the size limit and the upload
/// memory budget (held by the returned reservation until the request is answered).
pub(super) async fn read_one_upload(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Vec<u8>, Option<String>, super::body::Reservation), ApiError> {
    let limit = state.settings.limits.max_request_bytes;
    let reservation = state.uploads.reserve(req.headers(), limit)?;
    if is_multipart(req.headers()) {
        let part = read_parts(req.headers(), payload, limit, 1)
            .await?
            .remove(0);
        Ok((part.bytes, part.file_name, reservation))
    } else {
        Ok((read_body(payload, limit).await?, None, reservation))
    }
}

/// The history of checks, newest first, with keyset paging and a verdict filter.
#[utoipa::path(get, path = "/v1/checks",
    params(CheckQuery),
    responses(
        (status = 200, body = CheckList),
        (status = 400, description = "invalid_limit, invalid_cursor, invalid_verdict"),
        (status = 401, description = "Missing, unknown or revoked key"),
        (status = 403, description = "Not a moderator or admin key"),
    ),
    security(("api_key" = [])))]
pub async fn list_checks(
    auth: Authenticated,
    query: web::Query<CheckQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Role::Moderator)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            code::INVALID_LIMIT,
            format!("limit must be between 1 and 100, got {limit}"),
        ));
    }
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            ApiError::new(
                code::INVALID_CURSOR,
                "cursor must be a next_cursor from a previous page",
            )
        })?),
        None => None,
    };
    let verdict = match query.verdict.as_deref().filter(|v| !v.is_empty()) {
        Some(name) => Some(
            name.parse::<Verdict>()
                .map_err(|error| ApiError::new(code::INVALID_VERDICT, error.to_string()))?,
        ),
        None => None,
    };
    // One more than asked tells whether there is a next page.
    let mut rows = checks::list(&state.pool, limit + 1, cursor, verdict).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| {
            Cursor {
                created_at: last.created_at,
                id: last.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(CheckList {
        checks: rows,
        next_cursor,
    }))
}

/// One stored check with its report exactly as it was answered.
#[utoipa::path(get, path = "/v1/checks/{id}",
    params(("id" = Uuid, Path, description = "Check id")),
    responses(
        (status = 200, body = StoredCheck),
        (status = 400, description = "invalid_id"),
        (status = 404, description = "check_not_found"),
    ),
    security(("api_key" = [])))]
pub async fn get_check(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Role::Moderator)?;
    let id = Uuid::parse_str(&path).map_err(|_| {
        ApiError::new(
            code::INVALID_ID,
            format!("{:?} is not a check id (a UUID)", *path),
        )
    })?;
    let check = checks::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::new(code::CHECK_NOT_FOUND, format!("no check {id}")))?;
    Ok(HttpResponse::Ok().json(check))
}

/// A thumbnail from the Content Credentials of a file checked lately (`history` in a report
/// links to it), by the SHA-256 of its bytes. Kept in a bounded in-memory cache: a thumbnail may
/// be gone later (404).
#[utoipa::path(get, path = "/v1/thumbnails/{sha256}",
    params(("sha256" = String, Path, description = "SHA-256 of the thumbnail, 64 hex digits")),
    responses(
        (status = 200, description = "The thumbnail (PNG, JPEG or WebP, by its bytes)", content_type = "image/jpeg"),
        (status = 400, description = "invalid_sha256"),
        (status = 404, description = "thumbnail_not_found"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn thumbnail(
    _: WithinQuota,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sha = super::records::parse_sha256(&path)?.to_string();
    let found = state.verify.thumbnails().get(&sha).ok_or_else(|| {
        ApiError::new(
            code::THUMBNAIL_NOT_FOUND,
            "no such thumbnail (they are kept for a while after a check)",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type(found.format.mime())
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "public, max-age=86400, immutable",
        ))
        .insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(found.bytes.to_vec()))
}
