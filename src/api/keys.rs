//! `GET /v1/keys/me`: the calling key, and what it may do.

use actix_web::HttpResponse;
use serde::Serialize;
use uuid::Uuid;

use super::access::{self, Permission};
use super::auth::Authenticated;
use crate::store::api_keys::Role;

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
pub async fn me(auth: Authenticated) -> HttpResponse {
    // The row authentication just read: a key revoked since is refused by the next request.
    let key = auth.0;
    let role = key.role.0;
    HttpResponse::Ok().json(KeyView {
        id: key.id,
        name: key.name,
        role,
        prefix: key.prefix,
        created_at: key.created_at,
        permissions: access::permissions(role),
    })
}
