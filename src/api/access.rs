//! Who may call what: the one authorization table of the service.
//!
//! [`ROUTES`] lists every route `hallmark serve` answers, with who may call it: anyone (no key),
//! any live key, or keys of some roles, where [`Role::allows`] decides (an admin key passes
//! everything). A grant can be limited to what the calling key made itself ([`Scope::Own`]: a
//! generator key fetches only its own images; the handler answers 404 for the others).
//!
//! Each route also says which listener serves it ([`Listener`]: `/metrics` has its own, off the
//! public port) and which cross-origin policy it carries ([`CorsPolicy`]: the public routes of
//! the API answer any origin, the keyed ones only `api.cors_origins`); every GET route answers
//! HEAD as well ([`Route::answers_head`]). `tests/api/cross_origin.rs` holds the routes to both.
//!
//! The handlers check roles themselves (`Authenticated::require`); `tests/api/authz.rs` calls
//! every route of `/openapi.json` with every kind of caller and holds them to this table, and
//! `GET /v1/keys/me` lists a key's permissions from it. `docs/authorization.md` is its prose
//! form.

use std::fmt;

use serde::Serialize;

use crate::store::api_keys::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

impl Method {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much of a route a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only what the calling key made itself; anything else answers as not found.
    Own,
    /// Everything the route serves.
    All,
    /// Open to anyone: no key needed.
    Public,
}

/// A role named for a route, and how far it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

impl Grant {
    #[must_use]
    pub const fn all(role: Role) -> Self {
        Self {
            role,
            scope: Scope::All,
        }
    }

    #[must_use]
    pub const fn own(role: Role) -> Self {
        Self {
            role,
            scope: Scope::Own,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a key (a key sent is not even looked at).
    Public,
    /// Any live key, whatever its role.
    AnyKey,
    /// A live key whose role [allows](Role::allows) one of these grants. Admin passes every
    /// grant, always with [`Scope::All`].
    Roles(&'static [Grant]),
}

/// Which listener answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The public port (`server.host`, `server.port`).
    Public,
    /// The operators' metrics listener (`metrics.listen`, loopback by default); also the public
    /// port when `metrics.on_public_port` is set.
    Metrics,
}

/// Which pages on other origins a browser lets read a route's answers (CORS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Any origin: `Access-Control-Allow-Origin: *`, no credentials. The public routes of the
    /// API, made for other sites and tools to check our images.
    AnyOrigin,
    /// Only the origins listed in `api.cors_origins` (none by default): the keyed routes.
    ListedOrigins,
    /// No CORS headers: the service's own routes (health, metrics, documents, pages), read by
    /// operators, probes and our own pages on our own origin.
    SameOrigin,
}

impl CorsPolicy {
    /// The policy in words, for documents.
    #[must_use]
    pub fn in_words(self) -> &'static str {
        match self {
            Self::AnyOrigin => "any origin",
            Self::ListedOrigins => "`api.cors_origins`",
            Self::SameOrigin => "same origin",
        }
    }
}

/// One route: method, path pattern (as in `/openapi.json`) and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// Part of the HTTP API, documented in `/openapi.json`. The others are the service's own
    /// routes: health, metrics, the API documents and the browser pages.
    pub in_openapi: bool,
    pub listener: Listener,
}

const fn api(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
        in_openapi: true,
        listener: Listener::Public,
    }
}

const fn service(path: &'static str) -> Route {
    Route {
        method: Method::Get,
        path,
        access: Access::Public,
        in_openapi: false,
        listener: Listener::Public,
    }
}

const fn operators(path: &'static str) -> Route {
    Route {
        listener: Listener::Metrics,
        ..service(path)
    }
}

const GENERATOR: &[Grant] = &[Grant::all(Role::Generator)];
const MODERATOR: &[Grant] = &[Grant::all(Role::Moderator)];
/// A generator key its own images; a moderator key any (to compare an upload with the original
/// it matched).
const IMAGE_READERS: &[Grant] = &[Grant::own(Role::Generator), Grant::all(Role::Moderator)];

/// Every route, and who may call it.
pub const ROUTES: &[Route] = &[
    api(Method::Post, "/v1/generations", Access::Roles(GENERATOR)),
    api(Method::Post, "/v1/enhancements", Access::Roles(GENERATOR)),
    api(Method::Get, "/v1/images/{id}", Access::Roles(IMAGE_READERS)),
    api(Method::Get, "/v1/records", Access::Public),
    api(Method::Get, "/v1/records/{id}", Access::Public),
    api(Method::Get, "/v1/records/{id}/proof", Access::Public),
    api(Method::Post, "/v1/verify", Access::Roles(MODERATOR)),
    api(Method::Post, "/v1/lookup", Access::Public),
    api(Method::Get, "/v1/checks", Access::Roles(MODERATOR)),
    api(Method::Get, "/v1/checks/{id}", Access::Roles(MODERATOR)),
    api(Method::Get, "/v1/thumbnails/{sha256}", Access::Public),
    // The Soft Binding Resolution API (default prefix); `c2pa_api.require_key` makes these
    // "any live key" instead.
    api(Method::Get, "/c2pa/v1/matches/byBinding", Access::Public),
    api(Method::Post, "/c2pa/v1/matches/byBinding", Access::Public),
    api(Method::Post, "/c2pa/v1/matches/byContent", Access::Public),
    api(
        Method::Get,
        "/c2pa/v1/manifests/{manifestId}",
        Access::Public,
    ),
    api(
        Method::Get,
        "/c2pa/v1/services/supportedAlgorithms",
        Access::Public,
    ),
    api(Method::Get, "/v1/keys/me", Access::AnyKey),
    // The transparency log (c2sp.org/tlog-tiles): public, like the static files it mirrors.
    api(Method::Get, "/log/checkpoint", Access::Public),
    api(Method::Get, "/log/key", Access::Public),
    api(Method::Get, "/log/tile/{tile_path}", Access::Public),
    service("/healthz"),
    service("/readyz"),
    operators("/metrics"),
    service("/openapi.json"),
    service("/docs"),
    service("/"),
    service("/console"),
    service("/assets/{name}"),
];

impl Route {
    /// What a caller gets here: `None` for no key (or a key that is unknown or revoked), else the
    /// live key's role. `None` back means refused: 401 without a live key, 403 with one.
    #[must_use]
    pub fn scope_for(&self, role: Option<Role>) -> Option<Scope> {
        match (self.access, role) {
            (Access::Public, _) => Some(Scope::Public),
            (_, None) => None,
            (Access::AnyKey, Some(_)) => Some(Scope::All),
            (Access::Roles(grants), Some(role)) => grants
                .iter()
                .filter(|grant| role.allows(grant.role))
                .map(|grant| {
                    if role == grant.role {
                        grant.scope
                    } else {
                        Scope::All
                    }
                })
                .max(),
        }
    }

    /// Which origins' pages may read the route's answers in a browser: the API's public routes
    /// any origin, its keyed routes the listed origins, the service's own routes none.
    #[must_use]
    pub fn cors(&self) -> CorsPolicy {
        match (self.in_openapi, self.access) {
            (false, _) => CorsPolicy::SameOrigin,
            (true, Access::Public) => CorsPolicy::AnyOrigin,
            (true, _) => CorsPolicy::ListedOrigins,
        }
    }

    /// Every GET route answers HEAD too: the same status and headers, no body.
    #[must_use]
    pub fn answers_head(&self) -> bool {
        self.method == Method::Get
    }

    /// The route in words, for documents: "anyone", "any key", or the roles with their scope.
    #[must_use]
    pub fn who(&self) -> String {
        match self.access {
            Access::Public => "anyone (no key)".to_owned(),
            Access::AnyKey => "any key".to_owned(),
            Access::Roles(grants) => {
                let mut names: Vec<String> = grants
                    .iter()
                    .map(|grant| match grant.scope {
                        Scope::Own => format!("{} (own only)", grant.role),
                        _ => grant.role.to_string(),
                    })
                    .collect();
                if !grants.iter().any(|grant| grant.role == Role::Admin) {
                    names.push(Role::Admin.to_string());
                }
                names.join(", ")
            }
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The table's entry for a method and path pattern.
#[must_use]
pub fn route(method: Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|route| route.method == method && route.path == path)
}

/// A route of the HTTP API that a key may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Permission {
    pub method: Method,
    /// The path pattern, as in `/openapi.json`.
    #[schema(value_type = String, example = "/v1/records/{id}")]
    pub path: &'static str,
    /// `public`: open to anyone; `all`: everything the route serves; `own`: only what this key
    /// made itself.
    pub scope: Scope,
}

/// The routes of the HTTP API (those in `/openapi.json`) a live key with `role` may call, in
/// table order, public ones included.
#[must_use]
pub fn permissions(role: Role) -> Vec<Permission> {
    ROUTES
        .iter()
        .filter(|route| route.in_openapi)
        .filter_map(|route| {
            route.scope_for(Some(role)).map(|scope| Permission {
                method: route.method,
                path: route.path,
                scope,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const ROLES: [Role; 3] = [Role::Generator, Role::Moderator, Role::Admin];

    fn has(perms: &[Permission], method: Method, path: &str) -> Option<Scope> {
        perms
            .iter()
            .find(|p| p.method == method && p.path == path)
            .map(|p| p.scope)
    }

    /// The HTTP API's own routes and the Soft Binding Resolution API's.
    fn is_api(path: &str) -> bool {
        path.starts_with("/v1/") || path.starts_with("/c2pa/v1/") || path.starts_with("/log/")
    }

    #[test]
    fn every_route_is_listed_once_with_a_pattern() {
        let mut seen = HashSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((route.method, route.path)),
                "{route} listed twice"
            );
            assert!(route.path.starts_with('/'), "{route}");
            assert_eq!(
                route.in_openapi,
                is_api(route.path),
                "{route}: the API is /v1, /c2pa/v1 and /log, and all of it is documented"
            );
            if let Access::Roles(grants) = route.access {
                assert!(!grants.is_empty(), "{route} names no role");
            }
        }
        assert!(route(Method::Get, "/v1/keys/me").is_some());
        assert!(route(Method::Post, "/v1/keys/me").is_none());
    }

    #[test]
    fn no_key_reaches_only_public_routes() {
        for route in ROUTES {
            let open = route.access == Access::Public;
            assert_eq!(route.scope_for(None).is_some(), open, "{route}");
            for role in ROLES {
                if open {
                    assert_eq!(route.scope_for(Some(role)), Some(Scope::Public));
                }
            }
        }
    }

    #[test]
    fn admin_passes_everything_with_full_scope() {
        for route in ROUTES {
            assert!(
                matches!(
                    route.scope_for(Some(Role::Admin)),
                    Some(Scope::All | Scope::Public)
                ),
                "{route}"
            );
        }
        let all = permissions(Role::Admin);
        assert_eq!(all.len(), ROUTES.iter().filter(|r| r.in_openapi).count());
    }

    #[test]
    fn roles_get_what_the_handlers_give_them() {
        let generator = permissions(Role::Generator);
        assert_eq!(
            has(&generator, Method::Post, "/v1/generations"),
            Some(Scope::All)
        );
        assert_eq!(
            has(&generator, Method::Get, "/v1/images/{id}"),
            Some(Scope::Own)
        );
        assert_eq!(has(&generator, Method::Post, "/v1/verify"), None);
        assert_eq!(has(&generator, Method::Get, "/v1/checks"), None);
        assert_eq!(
            has(&generator, Method::Get, "/v1/records/{id}"),
            Some(Scope::Public)
        );

        let moderator = permissions(Role::Moderator);
        assert_eq!(has(&moderator, Method::Post, "/v1/generations"), None);
        assert_eq!(
            has(&moderator, Method::Get, "/v1/images/{id}"),
            Some(Scope::All)
        );
        for path in ["/v1/checks", "/v1/checks/{id}"] {
            assert_eq!(has(&moderator, Method::Get, path), Some(Scope::All));
        }
        assert_eq!(
            has(&moderator, Method::Post, "/v1/verify"),
            Some(Scope::All)
        );

        for role in ROLES {
            let perms = permissions(role);
            assert_eq!(
                has(&perms, Method::Get, "/v1/keys/me"),
                Some(Scope::All),
                "{role}"
            );
            assert!(perms.iter().all(|p| is_api(p.path)), "{role}");
        }
    }

    #[test]
    fn public_api_routes_answer_any_origin_and_keyed_ones_only_the_listed() {
        for route in ROUTES {
            let want = match (route.in_openapi, route.access) {
                (false, _) => CorsPolicy::SameOrigin,
                (true, Access::Public) => CorsPolicy::AnyOrigin,
                (true, _) => CorsPolicy::ListedOrigins,
            };
            assert_eq!(route.cors(), want, "{route}");
            assert_eq!(route.answers_head(), route.method == Method::Get, "{route}");
        }
        let cors = |method, path| route(method, path).unwrap().cors();
        assert_eq!(
            cors(Method::Post, "/c2pa/v1/matches/byContent"),
            CorsPolicy::AnyOrigin
        );
        assert_eq!(
            cors(Method::Get, "/log/tile/{tile_path}"),
            CorsPolicy::AnyOrigin
        );
        assert_eq!(
            cors(Method::Post, "/v1/generations"),
            CorsPolicy::ListedOrigins
        );
        assert_eq!(cors(Method::Get, "/v1/keys/me"), CorsPolicy::ListedOrigins);
        assert_eq!(cors(Method::Get, "/metrics"), CorsPolicy::SameOrigin);
        let off_public: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.listener != Listener::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(off_public, ["/metrics"]);
    }

    #[test]
    fn routes_read_in_words() {
        let image = route(Method::Get, "/v1/images/{id}").unwrap();
        assert_eq!(image.who(), "generator (own only), moderator, admin");
        assert_eq!(image.to_string(), "GET /v1/images/{id}");
        assert_eq!(
            route(Method::Post, "/v1/lookup").unwrap().who(),
            "anyone (no key)"
        );
    }

    #[test]
    fn permissions_serialize_as_method_path_scope() {
        let json = serde_json::to_value(permissions(Role::Generator)).unwrap();
        assert!(json.as_array().unwrap().iter().any(|p| p["method"] == "GET"
            && p["path"] == "/v1/images/{id}"
            && p["scope"] == "own"));
    }
}
