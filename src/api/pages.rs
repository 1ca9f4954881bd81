//! The browser pages, served by `hallmark serve` itself: the public verify page (`/`), the
//! moderator console (`/console`) and their assets (`/assets/{name}`). Plain HTML, CSS and
//! JavaScript modules from `src/web/`, embedded in the binary: no build step, no CDN, nothing
//! fetched at run time.
//!
//! Caching: every answer carries a strong `ETag` (SHA-256 of the bytes) and honours
//! `If-None-Match`. The pages themselves are `no-cache` (revalidated each time, so a new binary
//! is picked up at once); they load their stylesheet and entry script as
//! `/assets/NAME?v=VERSION` (a hash of all assets), which is cached for a year as immutable. An
//! asset requested without the current version (a module's own `import`) is `no-cache` too.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::api::error::{code, ApiError};
use crate::fingerprint::sha256;

/// Only our own origin; images also from `blob:` (object URLs of uploads) and `data:`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:";

/// Placeholder in the HTML pages replaced by the asset version.
const VERSION_PLACEHOLDER: &str = "{{version}}";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../web/app.css"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/api.js"),
    },
    Asset {
        name: "report.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/report.js"),
    },
    Asset {
        name: "tlog.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/tlog.js"),
    },
    Asset {
        name: "verify.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/verify.js"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/console.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../web/favicon.svg"),
    },
];

const INDEX_HTML: &str = include_str!("../web/index.html");
const CONSOLE_HTML: &str = include_str!("../web/console.html");

/// A page with the version filled in, and its ETag.
struct Page {
    body: String,
    etag: String,
}

struct Built {
    version: String,
    index: Page,
    console: Page,
    asset_etags: Vec<String>,
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&sha256(bytes)[..16]))
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut all = Vec::new();
        for asset in ASSETS {
            all.extend_from_slice(asset.name.as_bytes());
            all.extend_from_slice(&sha256(asset.bytes));
        }
        let version = hex::encode(&sha256(&all)[..8]);
        let page = |html: &str| {
            let body = html.replace(VERSION_PLACEHOLDER, &version);
            let etag = etag_of(body.as_bytes());
            Page { body, etag }
        };
        Built {
            index: page(INDEX_HTML),
            console: page(CONSOLE_HTML),
            asset_etags: ASSETS.iter().map(|a| etag_of(a.bytes)).collect(),
            version,
        }
    })
}

/// The pages' routes, each a read (GET and HEAD).
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::read;
    cfg.route("/", read().to(index))
        .route("/console", read().to(console))
        .route("/assets/{name}", read().to(asset));
}

fn respond(
    req: &HttpRequest,
    content_type: &'static str,
    etag: &str,
    cache_control: &'static str,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    let mut response = if super::not_modified(req, etag) {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type))
            .body(body)
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache_control),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

const HTML: &str = "text/html; charset=utf-8";

/// The public verify page.
pub async fn index(req: HttpRequest) -> HttpResponse {
    let page = &built().index;
    respond(&req, HTML, &page.etag, "no-cache", page.body.clone())
}

/// The moderator console.
pub async fn console(req: HttpRequest) -> HttpResponse {
    let page = &built().console;
    respond(&req, HTML, &page.etag, "no-cache", page.body.clone())
}

#[derive(Debug, Deserialize)]
pub struct AssetQuery {
    v: Option<String>,
}

/// An embedded stylesheet, script or icon.
pub async fn asset(
    req: HttpRequest,
    name: web::Path<String>,
    query: web::Query<AssetQuery>,
) -> Result<HttpResponse, ApiError> {
    let built = built();
    let (index, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, asset)| asset.name == name.as_str())
        .ok_or_else(|| ApiError::new(code::ASSET_NOT_FOUND, format!("no asset {name:?}")))?;
    let cache_control = if query.v.as_deref() == Some(built.version.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(respond(
        &req,
        asset.content_type,
        &built.asset_etags[index],
        cache_control,
        asset.bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_reference_only_embedded_assets_with_the_version() {
        let built = built();
        for page in [&built.index, &built.console] {
            assert!(!page.body.contains(VERSION_PLACEHOLDER));
            for (at, _) in page.body.match_indices("/assets/") {
                let rest = &page.body[at + "/assets/".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "page links /assets/{name}, which is not embedded"
                );
            }
        }
    }

    #[test]
    fn modules_import_only_embedded_assets() {
        let mut imports = 0;
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            // Every `... from './x.js';` (imports may span lines).
            for (at, _) in text.match_indices("} from '") {
                let rest = &text[at + "} from '".len()..];
                let target = &rest[..rest.find('\'').unwrap()];
                let target = target.trim_start_matches("./");
                imports += 1;
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {target:?}, which is not embedded",
                    asset.name
                );
            }
        }
        assert!(imports >= 4, "the modules' imports were found");
    }
}
