//! What other sites and tools get: every route carries the CORS policy the access table gives it
//! (`Route::cors`), every GET route answers HEAD with the GET's status and headers and no body,
//! and `GET /metrics` lives on its own listener. Generated from the access table, which
//! `tests/api/authz.rs` holds to `/openapi.json`, so a new route is covered when it is added.
//! The same in a real browser: `tests/browser.rs`.

use hallmark::api::access::{CorsPolicy, Listener, Method, Route, ROUTES};
use hallmark::store::api_keys::Role;
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::authz::{concrete_path, request};
use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp};

/// A page's origin on another site.
const OTHER: &str = "https://other.example";
/// A console hosted elsewhere, listed in `api.cors_origins`.
const CONSOLE: &str = "https://console.example:8443";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// A comma-separated header's items, lower-cased.
fn items(headers: &HeaderMap, name: &str) -> Vec<String> {
    header(headers, name)
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// An answer no page on another origin may read: no `Access-Control-Allow-Origin`.
fn assert_not_readable(what: &str, response: &reqwest::Response) {
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        None,
        "{what}"
    );
}

fn public_routes() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(|r| r.listener == Listener::Public)
}

/// The browser's question before a non-simple request: may `origin` send `route.method` with a
/// key and a JSON or image body?
async fn preflight(app: &TestApp, route: &Route, origin: &str) -> reqwest::Response {
    app.client
        .request(
            reqwest::Method::OPTIONS,
            app.url(&concrete_path(route.path)),
        )
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, route.method.as_str())
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

/// A preflight the route answers for `origin`: the origin (or `*`) back, the route's method and
/// the requested headers allowed, cached for a day, never with credentials.
fn assert_preflight_allows(what: &str, response: &reqwest::Response, route: &Route, allow: &str) {
    let headers = response.headers();
    assert_eq!(response.status(), StatusCode::OK, "{what}");
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(allow),
        "{what}"
    );
    let methods = items(headers, "access-control-allow-methods");
    assert!(
        methods.contains(&route.method.as_str().to_ascii_lowercase()),
        "{what}: {methods:?}"
    );
    let allowed = items(headers, "access-control-allow-headers");
    for wanted in ["authorization", "content-type"] {
        assert!(allowed.iter().any(|h| h == wanted), "{what}: {allowed:?}");
    }
    assert_eq!(
        header(headers, "access-control-max-age"),
        Some("86400"),
        "{what}"
    );
    assert_eq!(
        header(headers, "access-control-allow-credentials"),
        None,
        "{what}"
    );
}

/// An answer a page on `origin` may read: `allow` back, and the headers clients need exposed.
fn assert_readable(what: &str, headers: &HeaderMap, allow: &str) {
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(allow),
        "{what}"
    );
    let exposed = items(headers, "access-control-expose-headers");
    for wanted in [
        "etag",
        "last-modified",
        "retry-after",
        "x-hallmark-record-id",
    ] {
        assert!(exposed.iter().any(|h| h == wanted), "{what}: {exposed:?}");
    }
    assert_eq!(
        header(headers, "access-control-allow-credentials"),
        None,
        "{what}"
    );
    assert!(
        items(headers, "vary").iter().any(|h| h == "origin"),
        "{what}: caches keep answers with and without CORS headers apart"
    );
}

#[sqlx::test]
async fn every_route_carries_the_cors_policy_of_the_access_table(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut seen = [0; 3];
    for route in public_routes() {
        let what = format!("{route} from {OTHER}");
        let answer = request(&app, route, None)
            .header(header::ORIGIN, OTHER)
            .send()
            .await
            .unwrap();
        let asked = preflight(&app, route, OTHER).await;
        match route.cors() {
            CorsPolicy::AnyOrigin => {
                seen[0] += 1;
                assert_readable(&what, answer.headers(), "*");
                assert_preflight_allows(&what, &asked, route, "*");
            }
            CorsPolicy::ListedOrigins => {
                seen[1] += 1;
                // Served (curl sends Origin too), but nothing a browser would hand the page.
                assert_not_readable(&what, &answer);
                assert_not_readable(&what, &asked);
                assert_eq!(asked.status(), StatusCode::BAD_REQUEST, "{what}");
                assert_eq!(error_code(asked).await, "cors_refused", "{what}");
            }
            CorsPolicy::SameOrigin => {
                seen[2] += 1;
                assert_not_readable(&what, &answer);
                assert_not_readable(&what, &asked);
                assert!(
                    asked.status().is_client_error(),
                    "{what}: {}",
                    asked.status()
                );
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "each policy has routes: {seen:?}"
    );

    // Without an Origin (curl, servers) nothing changes, and no CORS header is sent.
    let plain = app
        .client
        .get(app.url("/log/checkpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_not_readable("GET /log/checkpoint without Origin", &plain);
    // A preflight asking for a method no route takes is refused in the API's error shape.
    let odd = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/records"))
        .header(header::ORIGIN, OTHER)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(odd).await, "cors_refused");
}

#[sqlx::test]
async fn listed_origins_reach_the_keyed_routes_and_no_others(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.api.cors_origins = vec![CONSOLE.to_owned()]).await;
    for route in public_routes() {
        let listed = preflight(&app, route, CONSOLE).await;
        let other = preflight(&app, route, OTHER).await;
        let what = format!("{route}");
        match route.cors() {
            CorsPolicy::AnyOrigin => {
                assert_preflight_allows(&what, &listed, route, "*");
                assert_preflight_allows(&what, &other, route, "*");
            }
            CorsPolicy::ListedOrigins => {
                assert_preflight_allows(&what, &listed, route, CONSOLE);
                assert_not_readable(&what, &other);
                assert_eq!(error_code(other).await, "cors_refused", "{what}");
            }
            CorsPolicy::SameOrigin => {
                assert_not_readable(&what, &listed);
            }
        }
    }

    // The console generates an image from its own origin: the answer is readable there, with
    // the record id exposed.
    let key = app.key(Role::Generator).await;
    let made = app
        .client
        .post(app.url("/v1/generations"))
        .header(header::ORIGIN, CONSOLE)
        .header(header::ACCEPT, "image/png")
        .bearer_auth(&key)
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::OK);
    assert_readable(
        "POST /v1/generations from the console",
        made.headers(),
        CONSOLE,
    );
    assert!(made.headers().contains_key("x-hallmark-record-id"));
}

/// The headers a HEAD answer must share with the GET's.
const SAME_HEADERS: [&str; 9] = [
    "content-type",
    "etag",
    "cache-control",
    "last-modified",
    "location",
    "retry-after",
    "x-content-type-options",
    "content-security-policy",
    "vary",
];

/// GET and HEAD of `path` with `key`: the same status and headers; HEAD without a body, and with
/// the GET's `Content-Length` where the content is the same (an `ETag` says so).
async fn assert_head_is_get(app: &TestApp, base: &str, path: &str, key: &str) -> HeaderMap {
    let url = format!("{base}{path}");
    let get = app.client.get(&url).bearer_auth(key).send().await.unwrap();
    let head = app.client.head(&url).bearer_auth(key).send().await.unwrap();
    let what = format!("HEAD {path}");
    assert_eq!(head.status(), get.status(), "{what}");
    assert_ne!(head.status(), StatusCode::METHOD_NOT_ALLOWED, "{what}");
    for name in SAME_HEADERS {
        assert_eq!(
            header(head.headers(), name),
            header(get.headers(), name),
            "{what}: {name}"
        );
    }
    if get.headers().contains_key(header::ETAG) {
        let get_length = get.bytes().await.unwrap().len().to_string();
        assert_eq!(
            header(head.headers(), "content-length"),
            Some(get_length.as_str()),
            "{what}: the GET's length"
        );
    }
    let headers = head.headers().clone();
    assert!(head.bytes().await.unwrap().is_empty(), "{what}: no body");
    headers
}

#[sqlx::test]
async fn every_get_route_answers_head_with_the_get_headers(pool: PgPool) {
    let app = spawn_app(pool).await;
    let admin = app.key(Role::Admin).await;
    let generator = app.key(Role::Generator).await;
    let made = app
        .generate(&generator, json!({"count": 1, "wait_for_log": true}))
        .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: serde_json::Value = made.json().await.unwrap();
    let image = &made["images"][0];
    let id = image["id"].as_str().unwrap();
    let tile = format!(
        "/log/{}",
        crate::fixtures::first_log_tile(&app.address).await
    );

    // Each GET route of the table, at a path that names something real where one exists.
    let metrics_base = app.metrics_address.clone().unwrap();
    let mut covered = 0;
    for route in ROUTES.iter().filter(|r| r.answers_head()) {
        let path = match route.path {
            "/v1/records/{id}" | "/v1/records/{id}/proof" | "/v1/images/{id}" => {
                route.path.replace("{id}", id)
            }
            "/c2pa/v1/manifests/{manifestId}" => route
                .path
                .replace("{manifestId}", image["manifest_id"].as_str().unwrap()),
            "/log/tile/{tile_path}" => tile.clone(),
            "/assets/{name}" => "/assets/app.css".to_owned(),
            "/c2pa/v1/matches/byBinding" => format!(
                "{}?alg=org.hallmark.fingerprint.1&value=AAAAAAAAAAA%3D",
                route.path
            ),
            other => concrete_path(other),
        };
        let base = match route.listener {
            Listener::Public => app.address.as_str(),
            Listener::Metrics => metrics_base.as_str(),
        };
        assert_head_is_get(&app, base, &path, &admin).await;
        covered += 1;
    }
    assert_eq!(
        covered,
        ROUTES.iter().filter(|r| r.method == Method::Get).count()
    );

    // Conditional HEAD: a tile and an image the client holds answer 304.
    for path in [tile.clone(), format!("/v1/images/{id}")] {
        let headers = assert_head_is_get(&app, &app.address, &path, &admin).await;
        let etag = header(&headers, "etag").expect("an ETag").to_owned();
        let again = app
            .client
            .head(app.url(&path))
            .bearer_auth(&admin)
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    // HEAD of a path no route claims: the 404's headers, no body.
    let none = app
        .client
        .head(app.url("/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        header(none.headers(), "content-type"),
        Some("application/json")
    );
}

#[sqlx::test]
async fn metrics_have_their_own_listener_off_the_public_port(pool: PgPool) {
    let defaults = hallmark::config::Settings::load(None).unwrap().metrics;
    assert_eq!(defaults.listen, "127.0.0.1:9464", "loopback by default");
    assert!(!defaults.on_public_port);

    let app = spawn_app(pool.clone()).await;
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(public).await, "route_not_found");
    let text = app.metrics().await;
    assert!(text.contains("hallmark_http_requests_total"), "{text}");
    // The metrics listener serves nothing else.
    for path in ["/healthz", "/v1/records", "/log/checkpoint", "/"] {
        let other = app.client.get(app.metrics_url(path)).send().await.unwrap();
        assert_eq!(other.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Health stays public.
    for path in ["/healthz", "/readyz"] {
        let health = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK, "{path}");
    }

    // Today's behaviour on request, and no listener of its own when `listen` is empty.
    let both = spawn_app_with(pool, |s| {
        s.metrics.on_public_port = true;
        s.metrics.listen = String::new();
    })
    .await;
    assert!(both.metrics_address.is_none());
    let public = both.client.get(both.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::OK);
    assert!(public.text().await.unwrap().contains("hallmark_"));
}
