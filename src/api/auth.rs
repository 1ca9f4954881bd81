//! `Authorization: Bearer hm_...` → the calling key, or a coded 401/403.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::SecretString;

use super::AppState;
use crate::api::error::{code, ApiError, ErrorCode};
use crate::store::api_keys::{self, ApiKeyInfo, Caller, Role};

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

/// A key the database passed on this request or an earlier one ([`api_keys::KeyCache`]): for
/// routes whose effect checks the key again in its own statement, which the generation route's
/// commit does, and which [`CachedKey::refuse_if_revoked`] every other answer. Anywhere else use
/// [`Authenticated`], which asks the database every time.
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub key: Authenticated,
    /// Whether the key came from the cache (unconfirmed for this request).
    pub from_cache: bool,
}

impl CachedKey {
    /// `error` as the answer to this request, unless the key came from the cache and has been
    /// revoked since: then 401 `invalid_api_key`, as a request checked against the database
    /// would have been told. So a revoked key hears 401 on its very next request whatever that
    /// request is, and the database is asked only when the answer is an error anyway. A cached
    /// key refused (by the commit's own check, or here) leaves the cache.
    pub async fn refuse_if_revoked(
        &self,
        state: &AppState,
        error: actix_web::Error,
    ) -> actix_web::Error {
        let id = self.key.0.id;
        if !self.from_cache {
            return error;
        }
        if error.as_response_error().status_code() == StatusCode::UNAUTHORIZED {
            state.keys.forget(id);
            return error;
        }
        match api_keys::is_live(&state.pool, id).await {
            Ok(true) => error,
            Ok(false) => {
                state.keys.forget(id);
                invalid_key().into()
            }
            Err(failure) => ApiError::from(failure).into(),
        }
    }
}

/// The presented key and the state, or the coded refusal.
fn presented(req: &HttpRequest) -> Result<(SecretString, web::Data<AppState>), ApiError> {
    let presented = bearer(req)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&std::io::Error::other("application state missing")))?;
    Ok((presented, state))
}

fn invalid_key() -> ApiError {
    unauthorized(
        code::INVALID_API_KEY,
        "the API key is unknown or has been revoked",
    )
}

fn known(found: Option<ApiKeyInfo>) -> Result<Authenticated, ApiError> {
    found.map(Authenticated).ok_or_else(invalid_key)
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = presented(req);
        Box::pin(async move {
            let (presented, state) = presented?;
            known(api_keys::authenticate(&state.pool, &presented).await?)
        })
    }
}

impl FromRequest for CachedKey {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = presented(req);
        Box::pin(async move {
            let (presented, state) = presented?;
            let found = state.keys.authenticate(&state.pool, &presented).await?;
            let from_cache = found.as_ref().is_some_and(|(_, cached)| *cached);
            let key = known(found.map(|(info, _)| info))?;
            Ok(Self { key, from_cache })
        })
    }
}
