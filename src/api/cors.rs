//! Cross-origin requests from browsers (CORS), with `actix-cors`.
//!
//! Two policies, chosen per route by the access table ([`crate::api::access::CorsPolicy`]):
//!
//! - the **public** routes (records, look-up, the Soft Binding Resolution API, the transparency
//!   log, thumbnails) answer any origin with `Access-Control-Allow-Origin: *` and never with
//!   credentials, so a verify site of another organisation, a browser extension or a log monitor
//!   in JavaScript can check our images;
//! - the **keyed** routes answer only the origins an operator lists in `api.cors_origins` (a
//!   console hosted elsewhere); with none listed they send no CORS headers at all, so the browser
//!   keeps other origins' pages from using a key there.
//!
//! A request from an origin a policy does not allow is still served (curl and servers send
//! `Origin` too): it only gets no CORS headers, and the browser withholds the answer from the
//! page. A preflight the policy refuses answers `400 cors_refused` in the API's error shape.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use crate::api::error::{code, ApiError};

/// Response headers a page on another origin may read (besides the CORS-safelisted ones).
const EXPOSED: [&str; 7] = [
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "server-timing",
    "x-hallmark-record-id",
    "x-hallmark-log-index",
];

/// Request headers a page may send: JSON or image bodies, a key where a route takes one,
/// conditional requests for the log's tiles and thumbnails.
const ALLOWED_HEADERS: [header::HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    header::IF_NONE_MATCH,
    header::ACCEPT,
];

/// How long a browser may cache a preflight's answer: a day.
const PREFLIGHT_MAX_AGE_S: usize = 86_400;

/// What both policies allow and expose, before their origins.
fn common() -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_methods([Method::GET, Method::HEAD, Method::POST])
        .allowed_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED)
        .max_age(PREFLIGHT_MAX_AGE_S)
}

/// The public routes' policy: any origin, `*`, no credentials.
pub fn public() -> actix_cors::Cors {
    common().allow_any_origin().send_wildcard()
}

/// The keyed routes' policy: exactly the listed origins, echoed back; none listed, no origin.
/// The key travels in `Authorization`, never in a cookie, so credentials stay off here too.
pub fn keyed(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(common(), |cors, origin| cors.allowed_origin(origin))
}

/// The origins of `api.cors_origins`, each `scheme://host[:port]` as browsers send `Origin`.
///
/// # Errors
/// The first entry that is not such an origin (a path, a wildcard, a trailing slash), named.
pub fn validate_origins(origins: &[String]) -> anyhow::Result<()> {
    for origin in origins {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty()
                && !host.contains(['/', '*', '?', '#', ' '])
                && header::HeaderValue::from_str(origin).is_ok()
        });
        anyhow::ensure!(
            valid,
            "api.cors_origins: {origin:?} is not an origin (scheme://host[:port], no path, no \
             wildcard; the public routes already answer every origin)"
        );
    }
    Ok(())
}

/// Turns `actix-cors`'s plain-text refusals of a preflight into the API's coded error.
pub async fn coded_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let refusal = response
        .response()
        .error()
        .and_then(|error| error.as_error::<actix_cors::CorsError>())
        .map(ToString::to_string);
    Ok(match refusal {
        Some(message) => {
            let (request, _) = response.into_parts();
            let error = ApiError::new(
                code::CORS_REFUSED,
                format!("cross-origin request refused: {message}"),
            );
            ServiceResponse::new(request, error.error_response())
        }
        None => response.map_into_boxed_body(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let ok = |list: &[&str]| {
            validate_origins(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert!(ok(&[]).is_ok());
        assert!(ok(&["https://console.example.org", "http://127.0.0.1:3000"]).is_ok());
        for bad in [
            "*",
            "console.example.org",
            "https://console.example.org/",
            "https://*.example.org",
            "https://",
            "ftp://example.org",
        ] {
            let error = ok(&[bad]).expect_err(bad).to_string();
            assert!(error.contains("api.cors_origins"), "{error}");
        }
    }
}
