//! The authorization matrix: every route of `/openapi.json` must be in the access table
//! (`hallmark::api::access::ROUTES`) and the other way round, and every route of the table is
//! called by every kind of caller and must answer as the table says. `docs/authorization.md`
//! holds the same matrix in words and is checked against it here.

use std::collections::BTreeSet;

use hallmark::api::access::{self, Listener, Method, Route, Scope, ROUTES};
use hallmark::store::api_keys::{self, Role};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{error_code, spawn_app, TestApp};

/// Stands for every `{param}` of a path: a well-formed id that names nothing.
const DUMMY_ID: &str = "00000000-0000-7000-8000-000000000000";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoKey,
    /// An admin key, revoked: refused as if there were no key.
    Revoked,
    Key(Role),
}

const CALLERS: [Caller; 5] = [
    Caller::NoKey,
    Caller::Revoked,
    Caller::Key(Role::Generator),
    Caller::Key(Role::Moderator),
    Caller::Key(Role::Admin),
];

impl Caller {
    fn name(self) -> &'static str {
        match self {
            Self::NoKey => "No key",
            Self::Revoked => "Revoked key",
            Self::Key(Role::Generator) => "Generator",
            Self::Key(Role::Moderator) => "Moderator",
            Self::Key(Role::Admin) => "Admin",
        }
    }

    /// The role of a live key; none without one.
    fn role(self) -> Option<Role> {
        match self {
            Self::Key(role) => Some(role),
            Self::NoKey | Self::Revoked => None,
        }
    }
}

/// What the table says a caller gets on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthorized,
    Forbidden,
    Allowed(Scope),
}

fn expected(route: &Route, caller: Caller) -> Expect {
    match route.scope_for(caller.role()) {
        Some(scope) => Expect::Allowed(scope),
        None if caller.role().is_none() => Expect::Unauthorized,
        None => Expect::Forbidden,
    }
}

/// A cell of the matrix in `docs/authorization.md`.
fn cell(expect: Expect) -> &'static str {
    match expect {
        Expect::Unauthorized => "401",
        Expect::Forbidden => "403",
        Expect::Allowed(Scope::Public) => "public",
        Expect::Allowed(Scope::All) => "allowed",
        Expect::Allowed(Scope::Own) => "own only",
    }
}

/// The matrix as markdown tables: the HTTP API, then the service's own routes; after the
/// callers, which origins' pages may read the route in a browser (CORS) and whether it answers
/// HEAD.
fn matrix_markdown() -> String {
    let mut text = String::new();
    for (title, in_openapi) in [
        ("HTTP API (`/openapi.json`)", true),
        ("Service routes (not in `/openapi.json`)", false),
    ] {
        text.push_str(&format!("\n### {title}\n\n| Route | Who |"));
        for caller in CALLERS {
            text.push_str(&format!(" {} |", caller.name()));
        }
        text.push_str(" CORS | HEAD |\n|---|---|");
        text.push_str(&"---|".repeat(CALLERS.len() + 2));
        text.push('\n');
        for route in ROUTES.iter().filter(|r| r.in_openapi == in_openapi) {
            let listener = match route.listener {
                Listener::Public => "",
                Listener::Metrics => " (metrics listener)",
            };
            text.push_str(&format!("| `{route}`{listener} | {} |", route.who()));
            for caller in CALLERS {
                text.push_str(&format!(" {} |", cell(expected(route, caller))));
            }
            let head = if route.answers_head() { "yes" } else { "no" };
            text.push_str(&format!(" {} | {head} |\n", route.cors().in_words()));
        }
    }
    text
}

const MATRIX_BEGIN: &str = "<!-- BEGIN access matrix: checked by tests/api/authz.rs -->";
const MATRIX_END: &str = "<!-- END access matrix -->";

#[test]
fn the_documented_matrix_is_the_access_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/authorization.md");
    let doc = std::fs::read_to_string(&path).expect("docs/authorization.md");
    let start = doc.find(MATRIX_BEGIN).expect("begin marker") + MATRIX_BEGIN.len();
    let end = doc.find(MATRIX_END).expect("end marker");
    let want = matrix_markdown();
    assert_eq!(
        doc[start..end].trim(),
        want.trim(),
        "docs/authorization.md is out of date; the matrix between the markers should read:\n{want}"
    );
}

/// `METHOD /path` of every operation in the OpenAPI document.
fn documented_routes(spec: &Value) -> BTreeSet<(Method, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let method = match method.as_str() {
                "get" => Method::Get,
                "post" => Method::Post,
                "put" | "delete" | "patch" | "head" | "options" | "trace" => {
                    panic!("{method} {path}: the access table has no such method yet")
                }
                _ => continue, // summary, description, parameters, servers
            };
            routes.insert((method, path.clone()));
        }
    }
    routes
}

/// `route` with every `{param}` filled with [`DUMMY_ID`].
pub fn concrete_path(pattern: &str) -> String {
    let mut path = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').expect("closing brace");
        path.push_str(&rest[..open]);
        path.push_str(DUMMY_ID);
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    path
}

/// A request to `route` that gets past its extractors, so only the role check can refuse it:
/// the handlers then refuse the dummy id or body with a 400/404, which is fine.
pub fn request(app: &TestApp, route: &Route, key: Option<&str>) -> reqwest::RequestBuilder {
    let path = concrete_path(route.path);
    let url = match route.listener {
        Listener::Public => app.url(&path),
        Listener::Metrics => app.metrics_url(&path),
    };
    let builder = match route.method {
        Method::Get => app.client.get(url),
        Method::Post => app.client.post(url),
    };
    let builder = match (route.method, route.path) {
        // Parses, then is refused as invalid_count once the role check has passed.
        (Method::Post, "/v1/generations") => builder.json(&json!({"count": 0})),
        // Uploads: an empty body (empty_upload).
        (Method::Post, _) => builder
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Vec::new()),
        (Method::Get, _) => builder,
    };
    match key {
        Some(key) => builder.bearer_auth(key),
        None => builder,
    }
}

async fn secret_of(app: &TestApp, name: &str, role: Role) -> (api_keys::ApiKeyInfo, String) {
    let key = api_keys::create(&app.pool, name, role).await.unwrap();
    (key.info, key.secret.expose_secret().to_owned())
}

#[sqlx::test]
async fn every_route_answers_every_caller_as_the_table_says(pool: PgPool) {
    let app = spawn_app(pool).await;

    // The table and the OpenAPI document name the same routes.
    let spec: Value = app.get_json("/openapi.json").await;
    let documented = documented_routes(&spec);
    let table: BTreeSet<(Method, String)> = ROUTES
        .iter()
        .filter(|r| r.in_openapi)
        .map(|r| (r.method, r.path.to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&table).collect();
    let stale: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "in /openapi.json but not in the access table: {missing:?}; \
         in the table but not in /openapi.json: {stale:?}"
    );
    assert!(documented.len() >= 9, "{documented:?}");

    // Every route of the table (service routes too), every caller.
    let (revoked_info, revoked) = secret_of(&app, "revoked admin", Role::Admin).await;
    assert!(api_keys::revoke(&app.pool, &revoked_info.id.to_string())
        .await
        .unwrap());
    let mut keys = Vec::new();
    for caller in CALLERS {
        let key = match caller {
            Caller::NoKey => None,
            Caller::Revoked => Some(revoked.clone()),
            Caller::Key(role) => Some(secret_of(&app, caller.name(), role).await.1),
        };
        keys.push((caller, key));
    }

    let mut checked = 0;
    for route in ROUTES {
        for (caller, key) in &keys {
            let want = expected(route, *caller);
            let response = request(&app, route, key.as_deref()).send().await.unwrap();
            let status = response.status();
            let what = format!("{route} as {}: {status}", caller.name());
            match want {
                Expect::Unauthorized => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                    let code = error_code(response).await;
                    let want_code = if *caller == Caller::NoKey {
                        "missing_api_key"
                    } else {
                        "invalid_api_key"
                    };
                    assert_eq!(code, want_code, "{what}");
                }
                Expect::Forbidden => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert_eq!(error_code(response).await, "forbidden", "{what}");
                }
                Expect::Allowed(_) => {
                    assert!(
                        status != StatusCode::UNAUTHORIZED
                            && status != StatusCode::FORBIDDEN
                            && !status.is_server_error(),
                        "{what} (allowed by the table): {}",
                        response.text().await.unwrap_or_default()
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * CALLERS.len());
}

#[sqlx::test]
async fn revocation_takes_effect_on_the_very_next_request(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (info, key) = secret_of(&app, "soon revoked", Role::Moderator).await;
    let checks = || {
        app.client
            .get(app.url("/v1/checks"))
            .bearer_auth(&key)
            .send()
    };
    let me = || {
        app.client
            .get(app.url("/v1/keys/me"))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(checks().await.unwrap().status(), StatusCode::OK);
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);

    assert!(api_keys::revoke(&app.pool, &info.id.to_string())
        .await
        .unwrap());
    let after = checks().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(after).await, "invalid_api_key");
    let after = me().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(after).await, "invalid_api_key");

    // By the shown prefix, likewise; and a second revocation changes nothing.
    let (other, other_key) = secret_of(&app, "revoked by prefix", Role::Generator).await;
    let generate = || {
        app.client
            .post(app.url("/v1/generations"))
            .bearer_auth(&other_key)
            .json(&json!({"count": 0}))
            .send()
    };
    assert_eq!(generate().await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert!(api_keys::revoke(&app.pool, &other.prefix).await.unwrap());
    assert_eq!(generate().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(!api_keys::revoke(&app.pool, &other.prefix).await.unwrap());
}

/// A key revoked between two generations is refused on its very next request, with a valid body
/// too, and nothing of that request is stored or answered: the promise any speed-up of the key
/// check (a cache, a lookup beside the model) must keep.
#[sqlx::test]
async fn a_key_revoked_between_generations_gets_no_image(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (info, key) = secret_of(&app, "busy generator", Role::Generator).await;
    let records = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM records")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    for accept in ["application/json", "image/png"] {
        let made = app
            .client
            .post(app.url("/v1/generations"))
            .bearer_auth(&key)
            .header(reqwest::header::ACCEPT, accept)
            .json(&json!({"count": 1}))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "{accept}: {}", made.status());
    }
    assert_eq!(records().await, 2);

    assert!(api_keys::revoke(&app.pool, &info.id.to_string())
        .await
        .unwrap());
    for (accept, body) in [
        ("application/json", json!({"count": 3})),
        ("image/png", json!({"count": 1})),
        ("image/png", json!({"count": 2})),
    ] {
        let refused = app
            .client
            .post(app.url("/v1/generations"))
            .bearer_auth(&key)
            .header(reqwest::header::ACCEPT, accept)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "{accept} {body}"
        );
        assert_eq!(error_code(refused).await, "invalid_api_key");
    }
    assert_eq!(records().await, 2, "nothing stored for the revoked key");

    // A live key of another role, seen lately, is told 403; revoked, 401.
    let (moderator_info, moderator) = secret_of(&app, "moderator", Role::Moderator).await;
    let checks = app
        .client
        .get(app.url("/v1/checks"))
        .bearer_auth(&moderator)
        .send()
        .await
        .unwrap();
    assert_eq!(checks.status(), StatusCode::OK);
    let as_moderator = || {
        app.client
            .post(app.url("/v1/generations"))
            .bearer_auth(&moderator)
            .json(&json!({"count": 1}))
            .send()
    };
    let refused = as_moderator().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(api_keys::revoke(&app.pool, &moderator_info.id.to_string())
        .await
        .unwrap());
    let refused = as_moderator().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(records().await, 2);
}

#[sqlx::test]
async fn keys_me_shows_each_role_and_its_permissions(pool: PgPool) {
    let app = spawn_app(pool).await;
    let all_api: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| r.in_openapi)
        .map(ToString::to_string)
        .collect();
    for role in [Role::Generator, Role::Moderator, Role::Admin] {
        let name = format!("{role} console");
        let (info, key) = secret_of(&app, &name, role).await;
        let response = app
            .client
            .get(app.url("/v1/keys/me"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{role}");
        let body: Value = response.json().await.unwrap();
        let fields: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from(["id", "name", "role", "prefix", "created_at", "permissions"]),
            "{role}: nothing secret, nothing missing"
        );
        assert_eq!(body["id"], info.id.to_string(), "{role}");
        assert_eq!(body["name"], name);
        assert_eq!(body["role"], role.as_str());
        assert_eq!(body["prefix"], info.prefix);
        assert!(key.starts_with(body["prefix"].as_str().unwrap()));
        let created: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(body["created_at"].clone()).unwrap();
        assert_eq!(created, info.created_at);

        // Exactly the table's answer for the role...
        assert_eq!(
            body["permissions"],
            serde_json::to_value(access::permissions(role)).unwrap(),
            "{role}"
        );
        // ...which says, in the handlers' own terms:
        let perms: BTreeSet<String> = body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p["method"].as_str().unwrap(),
                    p["path"].as_str().unwrap()
                )
            })
            .collect();
        let scope = |route: &str| {
            body["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| {
                    format!(
                        "{} {}",
                        p["method"].as_str().unwrap(),
                        p["path"].as_str().unwrap()
                    ) == route
                })
                .map(|p| p["scope"].as_str().unwrap().to_owned())
        };
        assert_eq!(
            perms.contains("POST /v1/generations"),
            role != Role::Moderator,
            "{role}"
        );
        for route in ["POST /v1/verify", "GET /v1/checks", "GET /v1/checks/{id}"] {
            assert_eq!(
                perms.contains(route),
                role != Role::Generator,
                "{role} {route}"
            );
        }
        let image_scope = if role == Role::Generator {
            "own"
        } else {
            "all"
        };
        assert_eq!(scope("GET /v1/images/{id}").as_deref(), Some(image_scope));
        for route in ["GET /v1/records/{id}", "GET /v1/records", "POST /v1/lookup"] {
            assert_eq!(scope(route).as_deref(), Some("public"), "{role} {route}");
        }
        assert_eq!(scope("GET /v1/keys/me").as_deref(), Some("all"));
        if role == Role::Admin {
            assert_eq!(perms, all_api);
        }
    }

    let none = app.client.get(app.url("/v1/keys/me")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(none).await, "missing_api_key");
    let unknown = app
        .client
        .get(app.url("/v1/keys/me"))
        .bearer_auth(format!("hm_{}", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(unknown).await, "invalid_api_key");
}

/// `own only` in the table is held for real: a generator key fetches its own image, not another
/// generator's (404, as if it did not exist); moderator and admin keys fetch any.
#[sqlx::test]
async fn own_only_grants_reach_only_the_keys_own_images(pool: PgPool) {
    let own_only: Vec<String> = ROUTES
        .iter()
        .filter(|route| {
            [Role::Generator, Role::Moderator, Role::Admin]
                .into_iter()
                .any(|role| route.scope_for(Some(role)) == Some(Scope::Own))
        })
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        own_only,
        ["GET /v1/images/{id}"],
        "a new own-only route needs its case here"
    );

    let app = spawn_app(pool).await;
    let owner = app.key(Role::Generator).await;
    let other = app.key(Role::Generator).await;
    let moderator = app.key(Role::Moderator).await;
    let admin = app.key(Role::Admin).await;
    let answer: Value = app
        .generate(&owner, json!({"count": 1}))
        .await
        .json()
        .await
        .unwrap();
    let id = answer["images"][0]["id"]
        .as_str()
        .expect("an image")
        .to_owned();
    let image = |key: &str| {
        app.client
            .get(app.url(&format!("/v1/images/{id}")))
            .bearer_auth(key)
            .send()
    };
    for key in [&owner, &moderator, &admin] {
        assert_eq!(image(key).await.unwrap().status(), StatusCode::OK);
    }
    let refused = image(&other).await.unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(refused).await, "image_not_found");
}

/// The generation route takes keys from a cache of keys the database passed before
/// (`api::auth::CachedKey`). A key revoked while cached still hears 401 on its very next request,
/// whatever that request is: a valid one is refused by the commit's own key check, any other is
/// checked against the database before its error is answered.
#[sqlx::test]
async fn a_cached_key_revoked_hears_401_whatever_its_next_request(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = [
        ("a valid body", r#"{"count": 1}"#, "application/json"),
        ("an invalid count", r#"{"count": 0}"#, "application/json"),
        ("malformed JSON", r#"{"count": "#, "application/json"),
        ("bytes of two images", r#"{"count": 2}"#, "image/png"),
        (
            "an unknown model",
            r#"{"count": 1, "model": "nope"}"#,
            "application/json",
        ),
    ];
    for (what, body, accept) in cases {
        let (info, key) = secret_of(&app, what, Role::Generator).await;
        let send = |body: &'static str| {
            app.client
                .post(app.url("/v1/generations"))
                .bearer_auth(&key)
                .header(CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, accept)
                .body(body)
                .send()
        };
        // Passed by the database once (the key is cached now), then revoked.
        let first = send(r#"{"count": 1}"#).await.unwrap();
        assert!(first.status().is_success(), "{what}: {}", first.status());
        assert!(api_keys::revoke(&app.pool, &info.id.to_string())
            .await
            .unwrap());
        let refused = send(body).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error_code(refused).await, "invalid_api_key", "{what}");
    }
    // A cached key of another role: told 403 while live, 401 once revoked.
    let (info, moderator) = secret_of(&app, "moderator", Role::Moderator).await;
    let generate = || {
        app.client
            .post(app.url("/v1/generations"))
            .bearer_auth(&moderator)
            .json(&json!({"count": 1}))
            .send()
    };
    assert_eq!(generate().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert!(api_keys::revoke(&app.pool, &info.id.to_string())
        .await
        .unwrap());
    assert_eq!(generate().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        cases.len() as i64,
        "only the generations made while live"
    );
}
