//! `Authorization: Bearer hm_...` → the calling key, or a coded 401/403.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
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

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let presented = presented?;
            let state = state.ok_or_else(|| {
                ApiError::internal(&std::io::Error::other("application state missing"))
            })?;
            match api_keys::authenticate(&state.pool, &presented).await? {
                Some(key) => Ok(Self(key)),
                None => Err(unauthorized(
                    code::INVALID_API_KEY,
                    "the API key is unknown or has been revoked",
                )),
            }
        })
    }
}
