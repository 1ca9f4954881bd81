//! The C2PA Soft Binding Resolution API 1.0 (OpenAPI 3.0.3, "C2PA Soft Binding Resolution API"),
//! mounted at `c2pa_api.prefix` (default `/c2pa/v1`): Hallmark as an open manifest repository for
//! the images it made. A stripped or re-encoded copy gets its manifest store back by either soft
//! binding of its manifest (`byBinding`, docs/soft-binding.md): Hallmark's fingerprint
//! (`org.hallmark.fingerprint.1`, the registry's pHashes) or the listed ISCC Content-Code Image
//! (`io.iscc.v0`, `record_iscc`); or by its pixels (`byContent`: the registry match verification
//! uses, or with `alg=io.iscc.v0` the upload's ISCC code). Public and rate-limited, or behind any
//! live API key with `c2pa_api.require_key`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::Authenticated;
use super::AppState;
use crate::api::error::{code, ApiError};
use crate::fingerprint::iscc::{self, ImageCode};
use crate::provenance::{
    parse_iscc_soft_binding_value, parse_soft_binding_value, ISCC_SOFT_BINDING_ALG,
    SOFT_BINDING_ALG,
};
use crate::registry::view::{self, ManifestFile};
use crate::registry::MatchKind;
use crate::verify::CheckKind;

/// `value` longer than this in a URL: 414, use POST (a Hallmark value is 12 characters).
const MAX_QUERY_VALUE: usize = 1024;
/// `value` longer than this in a POST body: 400.
const MAX_BODY_VALUE: usize = 64 * 1024;
/// Manifest ids are `urn:c2pa:<uuid>` (with optional claim generator and version parts).
const MAX_MANIFEST_ID: usize = 256;

/// One matched manifest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftBindingMatch {
    /// The `urn:c2pa:...` label of the matched image's active manifest; fetch its store from
    /// `/manifests/{manifestId}` on this endpoint.
    pub manifest_id: String,
    /// 0 (weakest) to 100 (strongest): for `byContent`, 100 for the very file or its exact pixels,
    /// else the confirmed aligned similarity × 100; for `byBinding` (and `byContent` with
    /// `io.iscc.v0`), the share of the hash bits that agree × 100 (of 64 for Hallmark's
    /// fingerprint, of 256 for the ISCC code).
    pub similarity_score: u8,
}

/// `c2pa.softBindingQueryResult`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SoftBindingQueryResult {
    pub matches: Vec<SoftBindingMatch>,
}

/// `c2pa.softBindingQuery`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SoftBindingQuery {
    /// The soft-binding algorithm: `org.hallmark.fingerprint.1` or `io.iscc.v0`.
    pub alg: String,
    /// Base64 of the algorithm's value: 8 bytes for Hallmark's fingerprint; an ISCC-SEQ holding a
    /// 256-bit ISCC Content-Code Image for `io.iscc.v0` (IEP-0020).
    pub value: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ByBindingParams {
    pub alg: Option<String>,
    pub value: Option<String>,
    /// 1 or more (default 10); at most `c2pa_api.max_results` are returned.
    pub max_results: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ByContentParams {
    /// Optional: `org.hallmark.fingerprint.1` (the default: the registry's match) or `io.iscc.v0`
    /// (the upload's ISCC Content-Code Image, matched as by `byBinding`).
    pub alg: Option<String>,
    pub max_results: Option<String>,
    /// With `hintValue`: a soft binding to fall back on when the content matches nothing (either
    /// algorithm above; others are ignored, as hints).
    pub hint_alg: Option<String>,
    pub hint_value: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ManifestParams {
    /// Only the active manifest (Hallmark's stores hold just that one, so the same bytes).
    pub return_active_manifest: Option<String>,
}

/// One algorithm name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlgName {
    pub alg: &'static str,
}

/// `c2pa.softBindingAlgList`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SoftBindingAlgList {
    pub watermarks: Vec<AlgName>,
    pub fingerprints: Vec<AlgName>,
}

/// Public (rate-limited) or any live key, as `c2pa_api.require_key` says.
fn admit(
    req: &HttpRequest,
    state: &AppState,
    auth: Result<Authenticated, ApiError>,
) -> Result<(), ApiError> {
    if state.settings.c2pa_api.require_key {
        auth.map(|_| ())
    } else {
        state.public_limiter.check(req)
    }
}

/// `maxResults`: absent → 10; not a positive integer → 400; capped at the setting.
fn max_results(raw: Option<&str>, cap: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(10.min(cap));
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(cap)),
        _ => Err(ApiError::new(
            code::INVALID_MAX_RESULTS,
            "maxResults must be an integer of at least 1",
        )),
    }
}

/// The soft-binding algorithms this service resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    /// `org.hallmark.fingerprint.1`: the registry's 64-bit pHashes (with crop windows).
    Hallmark,
    /// `io.iscc.v0`: the 256-bit ISCC Content-Code Images of `record_iscc`.
    Iscc,
}

fn check_alg(alg: &str) -> Result<Alg, ApiError> {
    match alg.trim() {
        SOFT_BINDING_ALG => Ok(Alg::Hallmark),
        ISCC_SOFT_BINDING_ALG => Ok(Alg::Iscc),
        _ => Err(ApiError::new(
            code::UNKNOWN_ALGORITHM,
            format!("this service resolves {SOFT_BINDING_ALG} and {ISCC_SOFT_BINDING_ALG}"),
        )),
    }
}

async fn resolve_binding(
    state: &AppState,
    alg: &str,
    value: &str,
    limit: usize,
) -> Result<HttpResponse, ApiError> {
    if check_alg(alg)? == Alg::Iscc {
        let codes = parse_iscc_soft_binding_value(value).map_err(|why| {
            ApiError::new(
                code::INVALID_BINDING_VALUE,
                format!("{why} (io.iscc.v0: base64 of an ISCC-SEQ, IEP-0020)"),
            )
        })?;
        return resolve_iscc(state, &codes, limit).await;
    }
    let phash = parse_soft_binding_value(value).ok_or_else(|| {
        ApiError::new(
            code::INVALID_BINDING_VALUE,
            "value must be base64 of 8 bytes (docs/soft-binding.md)",
        )
    })?;
    let registry = state.verify.registry().ok_or_else(|| {
        ApiError::new(code::DATABASE_UNAVAILABLE, "the registry is not reachable")
    })?;
    let found = registry
        .by_binding(phash, state.settings.c2pa_api.max_binding_distance, limit)
        .await?;
    let matches = found
        .into_iter()
        .map(|(record, distance)| SoftBindingMatch {
            manifest_id: record.fields.manifest_id,
            similarity_score: score(1.0 - f64::from(distance) / 64.0),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SoftBindingQueryResult { matches }))
}

/// The records whose ISCC Content-Code Image is within `4 × c2pa_api.max_binding_distance` bits
/// of one of `codes` (the same share of the 256 bits as of Hallmark's 64), nearest first.
async fn resolve_iscc(
    state: &AppState,
    codes: &[ImageCode],
    limit: usize,
) -> Result<HttpResponse, ApiError> {
    let max_distance = state
        .settings
        .c2pa_api
        .max_binding_distance
        .saturating_mul(iscc::BITS / 64);
    let found = crate::registry::by_iscc(&state.pool, codes, max_distance, limit).await?;
    let matches = found
        .into_iter()
        .map(|(record, distance)| SoftBindingMatch {
            manifest_id: record.fields.manifest_id,
            similarity_score: score(1.0 - f64::from(distance) / f64::from(iscc::BITS)),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SoftBindingQueryResult { matches }))
}

/// A 0-1 similarity as the spec's 0-100 integer.
fn score(similarity: f64) -> u8 {
    // Clamped first, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let score = (similarity.clamp(0.0, 1.0) * 100.0).round() as u8;
    score
}

/// Manifests whose image's soft binding (Hallmark's fingerprint or the ISCC code) is near the
/// given value.
#[utoipa::path(get, path = "/c2pa/v1/matches/byBinding", tag = "c2pa",
    params(ByBindingParams),
    responses(
        (status = 200, body = SoftBindingQueryResult),
        (status = 400, description = "invalid_binding_value, unknown_algorithm, invalid_max_results"),
        (status = 414, description = "binding_value_too_long: use POST"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn by_binding(
    req: HttpRequest,
    auth: Result<Authenticated, ApiError>,
    query: web::Query<ByBindingParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admit(&req, &state, auth)?;
    let (Some(alg), Some(value)) = (query.alg.as_deref(), query.value.as_deref()) else {
        return Err(ApiError::new(
            code::INVALID_BINDING_VALUE,
            "alg and value are required",
        ));
    };
    if value.len() > MAX_QUERY_VALUE {
        return Err(ApiError::new(
            code::BINDING_VALUE_TOO_LONG,
            "the value is too long for a URL; POST it as JSON",
        ));
    }
    let limit = max_results(
        query.max_results.as_deref(),
        state.settings.c2pa_api.max_results,
    )?;
    resolve_binding(&state, alg, value, limit).await
}

/// As `GET`, with the query as JSON (for values too long for a URL).
#[utoipa::path(post, path = "/c2pa/v1/matches/byBinding", tag = "c2pa",
    params(("maxResults" = Option<u32>, Query, description = "1 or more (default 10)")),
    request_body = SoftBindingQuery,
    responses(
        (status = 200, body = SoftBindingQueryResult),
        (status = 400, description = "invalid_binding_value, unknown_algorithm, invalid_max_results, invalid_body"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn by_binding_post(
    req: HttpRequest,
    auth: Result<Authenticated, ApiError>,
    query: web::Query<ByBindingParams>,
    body: web::Json<SoftBindingQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admit(&req, &state, auth)?;
    if body.value.len() > MAX_BODY_VALUE {
        return Err(ApiError::new(
            code::INVALID_BINDING_VALUE,
            "the value is longer than any this service stores",
        ));
    }
    let limit = max_results(
        query.max_results.as_deref(),
        state.settings.c2pa_api.max_results,
    )?;
    resolve_binding(&state, &body.alg, &body.value, limit).await
}

/// Manifests of the images this content is (the very file, its pixels, or a confirmed near
/// duplicate: re-encoded, resized, cropped), as `/v1/lookup` finds them.
#[utoipa::path(post, path = "/c2pa/v1/matches/byContent", tag = "c2pa",
    params(ByContentParams),
    request_body(content = Vec<u8>, content_type = "image/*", description = "PNG, JPEG or WebP"),
    responses(
        (status = 200, body = SoftBindingQueryResult),
        (status = 400, description = "empty_upload, unknown_algorithm, invalid_max_results"),
        (status = 413, description = "payload_too_large"),
        (status = 415, description = "unsupported_media_type: not an image this service reads"),
        (status = 422, description = "corrupt_image, image_too_large, aspect_ratio_too_large"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn by_content(
    req: HttpRequest,
    auth: Result<Authenticated, ApiError>,
    query: web::Query<ByContentParams>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admit(&req, &state, auth)?;
    let alg = query.alg.as_deref().map(check_alg).transpose()?;
    let limit = max_results(
        query.max_results.as_deref(),
        state.settings.c2pa_api.max_results,
    )?;
    let (bytes, _, _reservation) = super::verify::read_one_upload(&req, payload, &state).await?;
    if alg == Some(Alg::Iscc) {
        // The upload through the same gate as every upload (format, pixel count, aspect ratio,
        // bounded decode), then its code.
        let limits = state.settings.limits.clone();
        let code = crate::blocking::run(move || {
            crate::verify::upload::inspect(&bytes, &limits)
                .map(|upload| ImageCode::of_decoded(upload.image, &bytes))
        })
        .await??;
        return resolve_iscc(&state, &[code], limit).await;
    }
    let (report, _) = state.verify.check(bytes, None, CheckKind::Match).await?;
    let registry = report.registry;
    let matches = match (registry.matched, registry.record) {
        (Some(kind), Some(record)) if limit > 0 => vec![SoftBindingMatch {
            manifest_id: record.manifest_id,
            similarity_score: match kind {
                MatchKind::FileSha256 | MatchKind::PixelSha256 => 100,
                MatchKind::Phash => score(registry.similarity.unwrap_or_default()),
            },
        }],
        _ => Vec::new(),
    };
    if matches.is_empty() {
        if let (Some(alg), Some(value)) = (query.hint_alg.as_deref(), query.hint_value.as_deref()) {
            if check_alg(alg).is_ok() && value.len() <= MAX_QUERY_VALUE {
                return resolve_binding(&state, alg, value, limit).await;
            }
        }
    }
    Ok(HttpResponse::Ok().json(SoftBindingQueryResult { matches }))
}

/// The manifest store (`application/c2pa`, JUMBF) of one of this service's images.
#[utoipa::path(get, path = "/c2pa/v1/manifests/{manifestId}", tag = "c2pa",
    params(
        ("manifestId" = String, Path, description = "urn:c2pa:..."),
        ManifestParams,
    ),
    responses(
        (status = 200, description = "The C2PA manifest store", content_type = "application/c2pa"),
        (status = 400, description = "invalid_manifest_id"),
        (status = 404, description = "manifest_not_found"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn manifest(
    req: HttpRequest,
    auth: Result<Authenticated, ApiError>,
    path: web::Path<String>,
    query: web::Query<ManifestParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admit(&req, &state, auth)?;
    let id = path.into_inner();
    if id.len() > MAX_MANIFEST_ID || !id.starts_with("urn:c2pa:") {
        return Err(ApiError::new(
            code::INVALID_MANIFEST_ID,
            "a manifest id is urn:c2pa:<uuid>",
        ));
    }
    if let Some(flag) = query.return_active_manifest.as_deref() {
        if !matches!(flag, "true" | "false") {
            return Err(ApiError::new(
                code::INVALID_MANIFEST_ID,
                "returnActiveManifest is true or false",
            ));
        }
    }
    let sha = match view::manifest_file(&state.pool, &id).await? {
        ManifestFile::Stored(sha) => sha,
        ManifestFile::Unknown => {
            return Err(ApiError::new(
                code::MANIFEST_NOT_FOUND,
                format!("no manifest {id}"),
            ))
        }
        ManifestFile::NotStored => {
            return Err(ApiError::new(
                code::MANIFEST_NOT_FOUND,
                format!("the store of {id} is not in the repository yet (hallmark backfill)"),
            ))
        }
    };
    let bytes = state
        .generation
        .blobs
        .get(&sha)
        .await
        .map_err(|error| ApiError::internal(&error))?
        .ok_or_else(|| {
            tracing::error!(%id, "record without its manifest store blob");
            ApiError::internal(&std::io::Error::other("manifest store missing"))
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/c2pa")
        .insert_header((header::ETAG, format!("\"{}\"", hex::encode(&sha))))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400, immutable"))
        .body(bytes))
}

/// The soft-binding algorithms this service resolves.
#[utoipa::path(get, path = "/c2pa/v1/services/supportedAlgorithms", tag = "c2pa",
    responses((status = 200, body = SoftBindingAlgList)))]
pub async fn supported_algorithms() -> HttpResponse {
    HttpResponse::Ok().json(SoftBindingAlgList {
        watermarks: Vec::new(),
        fingerprints: vec![
            AlgName {
                alg: SOFT_BINDING_ALG,
            },
            AlgName {
                alg: ISCC_SOFT_BINDING_ALG,
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_results_defaults_caps_and_refuses() {
        assert_eq!(max_results(None, 100).unwrap(), 10);
        assert_eq!(max_results(Some("1000000000"), 100).unwrap(), 100);
        assert_eq!(max_results(Some("3"), 100).unwrap(), 3);
        for bad in ["0", "-1", "x", ""] {
            assert_eq!(
                max_results(Some(bad), 100).unwrap_err().code(),
                "invalid_max_results"
            );
        }
    }

    #[test]
    fn scores_are_integers_from_0_to_100() {
        assert_eq!(score(1.0), 100);
        assert_eq!(score(0.914), 91);
        assert_eq!(score(-0.3), 0);
        assert_eq!(score(f64::NAN.max(0.0)), 0);
    }
}
