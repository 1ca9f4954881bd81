//! `GET /v1/keys/me`: the calling key, and what it may do.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use uuid::Uuid;

use super::access::{self, Permission};
use super::auth::Authenticated;
use super::AppState;
use crate::api::error::ApiError;
use crate::store::api_keys::{self, Role};

/// The calling key as listed (never the key itself), with its permissions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, shown in listings (`hm_` and 8 hex digits).
    pub prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The routes of this API the key may call (public ones included), from the access table.
    pub permissions: Vec<Permission>,
}

/// The calling key: its name, role and the routes it may call. Any live key.
#[utoipa::path(get, path = "/v1/keys/me",
    responses(
        (status = 200, body = KeyView),
        (status = 401, description = "Missing, unknown or revoked key"),
    ),
    security(("api_key" = [])))]
pub async fn me(auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let caller = auth.0;
    // Revoked between authentication and now: as refused as a revoked key.
    let info = api_keys::find_live(&state.pool, caller.key_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is unknown or has been revoked",
            )
        })?;
    Ok(HttpResponse::Ok().json(KeyView {
        id: info.id,
        name: info.name,
        role: caller.role,
        prefix: info.prefix,
        created_at: info.created_at,
        permissions: access::permissions(caller.role),
    }))
}
