use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::api::error::{code, ApiError};
use crate::registry::index::HashIndex;
use crate::store;

/// The process is up and answering.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready to serve: the database answers. Also says which model is served with how many torch
/// threads (as torch reports them on the model thread), what the in-memory near-duplicate index holds
/// (`null` when it is off; an index still loading does not make the service unready, as
/// searches go to PostgreSQL meanwhile) and each trust list's state (a list that failed to load
/// shows its `error`, and keeps its last good copy in use: that does not make the service
/// unready either).
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    store::ping(&state.pool).await.map_err(|error| {
        tracing::warn!(error = %error, "readiness: database unreachable");
        ApiError::new(code::DATABASE_UNAVAILABLE, "the database is not reachable").retry_after(5)
    })?;
    let index = state.index.as_ref().map(HashIndex::status);
    let trust_lists = state.verify.trust().statuses();
    let model = state.generation.inference.info();
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "database": "ok",
        "model": {
            "name": model.name,
            "version": model.version,
            "intra_op_threads": model.threads.intra_op,
            "inter_op_threads": model.threads.inter_op,
        },
        "index": index,
        "trust_lists": trust_lists,
    })))
}
