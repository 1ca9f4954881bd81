//! The transparency log over HTTP (`src/tlog/`), as c2sp.org/tlog-tiles lays it out under
//! `/log`: the checkpoint (short-lived), hash tiles and entry bundles (immutable), the
//! verifier key; and a record's offline inclusion proof (`/v1/records/{id}/proof`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{code, ApiError};
use super::limits::WithinQuota;
use super::records::RecordId;
use super::AppState;

use crate::tlog::{ProofState, TilePath};

const TEXT: &str = "text/plain; charset=utf-8";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The latest signed checkpoint (c2sp.org/tlog-checkpoint, a c2sp.org/signed-note signed by the
/// log key under the origin's name).
#[utoipa::path(get, path = "/log/checkpoint",
    responses(
        (status = 200, description = "The checkpoint note", content_type = "text/plain; charset=utf-8", body = String),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn checkpoint(
    _: WithinQuota,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let note = state.log.checkpoint().await?;
    Ok(HttpResponse::Ok()
        .content_type(TEXT)
        // Mutable: a new checkpoint every integration.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(note))
}

/// The C2SP verifier key (`<origin>+<key id>+<base64(0x01 ‖ Ed25519 public key)>`) that checks
/// the log's checkpoints. Pin it out of band: an answer from the log itself proves nothing.
#[utoipa::path(get, path = "/log/key",
    responses((status = 200, description = "The verifier key and a newline", content_type = "text/plain; charset=utf-8", body = String)))]
pub async fn key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(TEXT)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(format!("{}\n", state.log.signer().verifier_key()))
}

/// A hash tile (`tile/<L>/<N>[.p/<W>]`, 32-byte hashes) or an entry bundle
/// (`tile/entries/<N>[.p/<W>]`, each entry a big-endian uint16 length then its bytes) of
/// c2sp.org/tlog-tiles; `N` in 3-digit groups, all but the last prefixed `x`.
#[utoipa::path(get, path = "/log/tile/{tile_path}",
    params(("tile_path" = String, Path, description = "The rest of the tile's path, e.g. `0/x001/234.p/7` or `entries/000`")),
    responses(
        (status = 200, description = "The tile, immutable, with a strong `ETag`", content_type = "application/octet-stream"),
        (status = 304, description = "Not modified: the client holds the tile (`If-None-Match`)"),
        (status = 400, description = "invalid_tile_path"),
        (status = 404, description = "tile_not_found: beyond the current tree"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn tile(
    _: WithinQuota,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tile = TilePath::parse(&format!("tile/{path}"))
        .map_err(|error| ApiError::new(code::INVALID_TILE_PATH, error.to_string()))?;
    let bytes = state.log.tile(tile).await?.ok_or_else(|| {
        ApiError::new(
            code::TILE_NOT_FOUND,
            format!("the log's current tree has no {}", tile.path()),
        )
    })?;
    // A tile path names the same bytes for ever (a partial tile has its width in its path), so
    // its hash is a strong ETag: monitors and caches revalidate without fetching it again.
    let tag = super::generations::etag(&Sha256::digest(&bytes));
    let held = super::not_modified(&req, &tag);
    let mut response = if held {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, IMMUTABLE));
    Ok(if held {
        response.finish()
    } else {
        response
            .content_type("application/octet-stream")
            .body(bytes)
    })
}

/// The 202 answer while a record waits for the next checkpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProofPending {
    /// Always `pending`.
    pub status: &'static str,
    pub message: String,
}

/// A record's offline inclusion proof, c2sp.org/tlog-proof@v1: `index <i>`, the RFC 6962 audit
/// path and the checkpoint it leads to. The entry it proves is the record's canonical signed
/// encoding followed by its signature (see `src/tlog/mod.rs`).
#[utoipa::path(get, path = "/v1/records/{id}/proof",
    params(("id" = Uuid, Path, description = "Record id")),
    responses(
        (status = 200, description = "The proof; `Last-Modified` is when its checkpoint was signed", content_type = "text/plain; charset=utf-8", body = String),
        (status = 202, description = "Logged but not yet in a checkpoint: retry after Retry-After seconds", body = ProofPending),
        (status = 400, description = "invalid_id"),
        (status = 404, description = "record_not_found, or not_in_log for a record made before the log until `hallmark log backfill` hands it over"),
        (status = 429, description = "rate_limited"),
    ))]
pub async fn proof(
    _: WithinQuota,
    record: RecordId,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = record.0;
    match state.log.proof(id).await? {
        ProofState::Integrated(proof, signed_at) => Ok(HttpResponse::Ok()
            .content_type(TEXT)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            // When the proof's checkpoint was signed (the public page shows it).
            .insert_header((
                header::LAST_MODIFIED,
                header::HttpDate::from(std::time::SystemTime::from(signed_at)),
            ))
            .body(proof.to_text())),
        ProofState::Pending => {
            let seconds = state
                .settings
                .transparency_log
                .checkpoint_interval_ms
                .div_ceil(1000)
                .max(1);
            Ok(HttpResponse::Accepted()
                .insert_header((header::RETRY_AFTER, seconds))
                .json(ProofPending {
                    status: "pending",
                    message: format!("record {id} is logged and waits for the next checkpoint"),
                }))
        }
        ProofState::NotLogged => {
            if !crate::registry::view::exists(&state.pool, id).await? {
                return Err(record.not_found());
            }
            Err(ApiError::new(
                code::NOT_IN_LOG,
                format!("record {id} was made before the transparency log: `hallmark log backfill` adds it"),
            ))
        }
    }
}
