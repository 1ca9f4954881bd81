//! `Authorization: Bearer hm_...` → the calling key, or a coded 401/403.
//!
//! Every request's key is looked up in the database ([`Authenticated`]), so a revoked key is
//! refused on its very next request. `POST /v1/generations` ([`KeyCheck`]) runs that lookup side
//! by side with the model instead of before it, for a key the lookup passed lately
//! ([`KeyHints`]): the images are stored and answered only once the lookup says the key is
//! live, so the promise holds and a lone request does not wait for the database before the
//! model starts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::{ExposeSecret, SecretString};

use super::AppState;
use crate::api::error::{code, ApiError, ErrorCode};
use crate::generation::{Confirmation, GenerationError};
use crate::store::api_keys::{self, ApiKeyInfo, Caller, Role};

/// Most keys [`KeyHints`] remembers; past it, it starts afresh.
const MAX_HINTS: usize = 4096;

/// Keys the database check passed lately, by the SHA-256 of the secret, with the id and role
/// they had: a hint of who is calling, never an authorization by itself. A key enters only
/// through a successful check and leaves on a failed one; roles never change.
#[derive(Debug, Default)]
pub struct KeyHints(Mutex<HashMap<[u8; 32], Caller>>);

impl KeyHints {
    fn get(&self, hash: &[u8; 32]) -> Option<Caller> {
        self.0.lock().ok()?.get(hash).copied()
    }

    fn remember(&self, hash: [u8; 32], caller: Caller) {
        if let Ok(mut hints) = self.0.lock() {
            if hints.len() >= MAX_HINTS && !hints.contains_key(&hash) {
                hints.clear();
            }
            hints.insert(hash, caller);
        }
    }

    fn forget(&self, hash: &[u8; 32]) {
        if let Ok(mut hints) = self.0.lock() {
            hints.remove(hash);
        }
    }
}

fn key_hash(presented: &SecretString) -> [u8; 32] {
    crate::fingerprint::sha256(presented.expose_secret().as_bytes())
}

/// The database's answer for a presented key; remembered as a hint when it is live, forgotten
/// when not.
async fn look_up(
    state: &AppState,
    presented: &SecretString,
) -> Result<Option<ApiKeyInfo>, sqlx::Error> {
    let hash = key_hash(presented);
    let found = api_keys::authenticate(&state.pool, presented).await?;
    match &found {
        Some(key) => state.key_hints.remember(hash, key.caller()),
        None => state.key_hints.forget(&hash),
    }
    Ok(found)
}

fn forbidden(caller: Caller, needed: Role) -> ApiError {
    ApiError::new(
        code::FORBIDDEN,
        format!(
            "this route needs a {needed} key; yours is a {} key",
            caller.role
        ),
    )
}

fn invalid_key() -> ApiError {
    unauthorized(
        code::INVALID_API_KEY,
        "the API key is unknown or has been revoked",
    )
}

/// A request made with a live API key (as listed: never the key itself). Handlers then ask for a
/// role with [`Authenticated::require`].
#[derive(Debug, Clone)]
pub struct Authenticated(pub ApiKeyInfo);

impl Authenticated {
    /// # Errors
    /// 403 `forbidden` when the key's role does not allow the route.
    pub fn require(self, needed: Role) -> Result<Caller, ApiError> {
        self.require_any(&[needed])
    }

    /// As [`Authenticated::require`], for a route open to several roles (admin always passes).
    ///
    /// # Errors
    /// 403 `forbidden` when the key has none of them.
    pub fn require_any(self, roles: &[Role]) -> Result<Caller, ApiError> {
        let caller = self.0.caller();
        if roles.iter().any(|&role| caller.role.allows(role)) {
            return Ok(caller);
        }
        let names: Vec<String> = roles.iter().map(ToString::to_string).collect();
        Err(ApiError::new(
            code::FORBIDDEN,
            format!(
                "this route needs a {} key; yours is a {} key",
                names.join(" or "),
                caller.role
            ),
        ))
    }
}

fn unauthorized(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

fn bearer(req: &HttpRequest) -> Result<SecretString, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        unauthorized(
            code::MISSING_API_KEY,
            "send Authorization: Bearer <api key>",
        )
    })?;
    let text = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            unauthorized(
                code::MALFORMED_AUTHORIZATION,
                "expected Authorization: Bearer <api key>",
            )
        })?;
    Ok(SecretString::from(text.to_owned()))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = bearer(req);
        let state = state_of(req);
        Box::pin(async move {
            let (presented, state) = (presented?, state?);
            match look_up(&state, &presented).await? {
                Some(key) => Ok(Self(key)),
                None => Err(invalid_key()),
            }
        })
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&std::io::Error::other("application state missing")))
}

/// A request's key for work that is only stored once the key is confirmed live
/// (`POST /v1/generations`): checked in the database before the handler runs when it is new
/// here; otherwise by a [`Confirmation`] that runs beside the work.
pub enum KeyCheck {
    /// Looked up already: live.
    Confirmed(Caller),
    /// Live when last looked up; the lookup runs again, beside the work.
    Hinted {
        caller: Caller,
        state: web::Data<AppState>,
        presented: SecretString,
    },
}

impl KeyCheck {
    /// The caller if its role allows `needed`, and what must succeed before its work is stored.
    ///
    /// # Errors
    /// 401 `invalid_api_key` for a key no longer live, 403 `forbidden` for another role (a
    /// hinted key is looked up first, so a revoked key is always told 401).
    pub async fn require(self, needed: Role) -> Result<(Caller, Confirmation), ApiError> {
        let (caller, confirmation) = match self {
            Self::Confirmed(caller) => (caller, Box::pin(async { Ok(()) }) as Confirmation),
            Self::Hinted {
                caller,
                state,
                presented,
            } => {
                let confirmation: Confirmation = Box::pin(async move {
                    match look_up(&state, &presented).await? {
                        Some(key) if key.id == caller.key_id => Ok(()),
                        _ => Err(GenerationError::NotAuthorized),
                    }
                });
                if !caller.role.allows(needed) {
                    // Another role's key: refused either way, but a revoked one hears 401.
                    confirmation.await?;
                    return Err(forbidden(caller, needed));
                }
                (caller, confirmation)
            }
        };
        if caller.role.allows(needed) {
            return Ok((caller, confirmation));
        }
        Err(forbidden(caller, needed))
    }
}

impl FromRequest for KeyCheck {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = bearer(req);
        let state = state_of(req);
        Box::pin(async move {
            let (presented, state) = (presented?, state?);
            if let Some(caller) = state.key_hints.get(&key_hash(&presented)) {
                return Ok(Self::Hinted {
                    caller,
                    state,
                    presented,
                });
            }
            match look_up(&state, &presented).await? {
                Some(key) => Ok(Self::Confirmed(key.caller())),
                None => Err(invalid_key()),
            }
        })
    }
}
