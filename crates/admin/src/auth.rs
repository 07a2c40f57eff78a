//! Who may use the admin server, and how browsers are kept from being tricked into using it.
//!
//! - One shared secret, the [`AdminToken`]. API clients send it as `Authorization: Bearer`.
//!   Every comparison is constant time.
//! - Browsers log in once with the token and their name, and get a cookie holding a *session
//!   value* derived from the token (`<expiry>.<name>.<HMAC-SHA256(token,
//!   "session:v2:<expiry>:<name>")>`, the name percent-encoded), never the token itself: a
//!   leaked cookie expires, rotating the token ends every session, and the name the audit log
//!   records for the session's actions cannot be changed without breaking the MAC. The cookie
//!   is `HttpOnly` (no script can read it) and `SameSite=Strict` (not sent on cross-site
//!   requests).
//! - API clients name their operator in the `X-Subsync-Actor` header (else `api`); a name
//!   that fails validation is refused before the request runs.
//! - State changes are POST only. Every POST is refused when the browser says it comes from
//!   another site (`Sec-Fetch-Site`) or from another origin (`Origin`), and HTML forms also
//!   carry a CSRF token derived from the session. Bearer-authenticated POSTs need no CSRF
//!   token: a browser cannot attach an `Authorization` header to a cross-site request without
//!   a CORS preflight, which this server never approves.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::AdminState;
use crate::api::json_error;
use crate::audit::{API_DEFAULT_ACTOR, Actor, Via};
use crate::html;

/// The header an API client names its operator in, for the audit log.
pub const ACTOR_HEADER: &str = "x-subsync-actor";

/// The cookie that carries a browser session.
pub const SESSION_COOKIE: &str = "subsync_admin_session";

/// How long a browser session lasts: one on-call night.
pub const SESSION_SECONDS: i64 = 12 * 3600;

mod token;

pub use token::{AdminToken, TokenError};

/// How the current request proved itself, and who it acts for; handlers read it from the
/// request extensions.
#[derive(Debug, Clone)]
pub enum Principal {
    /// `Authorization: Bearer` with the right token (scripts, curl); the actor is the
    /// `X-Subsync-Actor` header's, else `api`.
    Bearer(Actor),
    /// A browser session cookie: the session value to derive the CSRF token from, and the
    /// name given at sign-in.
    Session {
        /// The cookie's value.
        value: String,
        /// Who signed in.
        actor: Actor,
    },
}

impl Principal {
    /// Who the request acts for, as the audit log records it.
    pub fn actor(&self) -> &Actor {
        match self {
            Principal::Bearer(actor) | Principal::Session { actor, .. } => actor,
        }
    }

    /// The CSRF token to embed in forms, when this is a browser session.
    pub(crate) fn csrf(&self, token: &AdminToken) -> Option<String> {
        match self {
            Principal::Session { value, .. } => Some(token.csrf_token(value)),
            Principal::Bearer(_) => None,
        }
    }

    /// Checks a submitted form's CSRF field. Bearer requests are CSRF-safe by construction.
    pub(crate) fn check_csrf(&self, token: &AdminToken, presented: Option<&str>) -> bool {
        match self {
            Principal::Bearer(_) => true,
            Principal::Session { value, .. } => presented.is_some_and(|p| token.verify_csrf(value, p)),
        }
    }
}

/// Who a bearer request acts for: the `X-Subsync-Actor` header (UTF-8, validated like every
/// actor name), else [`API_DEFAULT_ACTOR`]. The error is the message to answer with.
fn bearer_actor(headers: &HeaderMap) -> Result<Actor, String> {
    let name = match headers.get(ACTOR_HEADER) {
        None => API_DEFAULT_ACTOR,
        Some(value) => {
            std::str::from_utf8(value.as_bytes()).map_err(|_| "the X-Subsync-Actor header is not UTF-8".to_string())?
        }
    };
    Actor::new(name, Via::Api).map_err(|e| format!("X-Subsync-Actor: {e}"))
}

/// The session cookie's value from the request, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn session_set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that ends a session.
pub(crate) fn session_clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

/// Why a state-changing request looks cross-site, or `None` when it does not.
///
/// `Sec-Fetch-Site` is set by every current browser and cannot be forged by a page; `Origin`
/// covers older browsers. Tools like curl send neither and pass (they must still
/// authenticate). `same-site` is refused too: another port on the same host (the public
/// webhook listener) is "same site" but not "same origin".
pub(crate) fn cross_site_reason(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("invalid");
        if !matches!(site, "same-origin" | "none") {
            return Some(format!("request came from another site (Sec-Fetch-Site: {site})"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("invalid");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same = !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"));
        if !same {
            return Some(format!("request came from another origin (Origin: {origin})"));
        }
    }
    None
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else { return Some(Err(())) };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(Ok(token.trim())),
        _ => Some(Err(())),
    }
}

/// True for paths answered in JSON (and so with JSON errors), false for dashboard pages.
pub(crate) fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/api" || path == "/metrics"
}

/// The gate in front of every route: refuses cross-site POSTs, then requires the bearer
/// token or a valid session (except for `/healthz` and the login page).
pub(crate) async fn require_auth(State(state): State<AdminState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let api = is_api_path(&path);
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);

    if unsafe_method && let Some(reason) = cross_site_reason(req.headers()) {
        tracing::warn!(path = %path, reason = %reason, "refused cross-site request");
        let message = format!("{reason}; state-changing requests must come from the admin dashboard itself");
        return if api {
            json_error(StatusCode::FORBIDDEN, "forbidden", &message)
        } else {
            html::error_page(StatusCode::FORBIDDEN, "Forbidden", &message)
        };
    }
    if path == "/healthz" || path == "/login" {
        return next.run(req).await;
    }

    let principal = match bearer(req.headers()) {
        Some(Ok(token)) if state.token.matches(token) => match bearer_actor(req.headers()) {
            Ok(actor) => Some(Principal::Bearer(actor)),
            Err(message) if api => return json_error(StatusCode::BAD_REQUEST, "bad_request", &message),
            Err(message) => return html::error_page(StatusCode::BAD_REQUEST, "Bad Request", &message),
        },
        // A wrong bearer token is an error even if a cookie is also present: the client meant
        // to use the token.
        Some(_) => None,
        None => {
            let now = chrono::Utc::now().timestamp();
            session_cookie(req.headers()).and_then(|value| {
                let actor = state.token.verify_session(&value, now)?;
                Some(Principal::Session { value, actor })
            })
        }
    };

    match principal {
        Some(Principal::Session { .. }) if api && unsafe_method => json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "API POST requests need `Authorization: Bearer <token>`; a browser session is not enough",
        ),
        Some(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        None if api => {
            let message = if req.headers().contains_key(header::AUTHORIZATION) {
                "wrong admin token"
            } else {
                "missing credentials: send `Authorization: Bearer <token>`"
            };
            json_error(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        None => {
            let target = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
            let next_param = if unsafe_method { "/".to_string() } else { target.to_string() };
            Redirect::to(&format!("/login?next={}", html::url_encode(&next_param))).into_response()
        }
    }
}

/// Only local paths are valid redirect targets after login (no open redirect to `//evil`).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.contains("/\\") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_requests_name_their_actor_in_a_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_actor(&h).unwrap().name(), "api");
        h.insert(ACTOR_HEADER, "deploy-bot".parse().unwrap());
        let actor = bearer_actor(&h).unwrap();
        assert_eq!((actor.name(), actor.via()), ("deploy-bot", Via::Api));
        h.insert(ACTOR_HEADER, axum::http::HeaderValue::from_bytes("Zoë".as_bytes()).unwrap());
        assert_eq!(bearer_actor(&h).unwrap().name(), "Zoë");
        h.insert(ACTOR_HEADER, "".parse().unwrap());
        assert!(bearer_actor(&h).unwrap_err().contains("empty"));
        h.insert(ACTOR_HEADER, "a\tb".parse().unwrap());
        assert!(bearer_actor(&h).unwrap_err().contains("control"));
        h.insert(ACTOR_HEADER, axum::http::HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap());
        assert!(bearer_actor(&h).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn cross_site_detection() {
        let mut h = HeaderMap::new();
        assert_eq!(cross_site_reason(&h), None, "curl sends neither header");
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        h.insert(header::HOST, "127.0.0.1:8081".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8081".parse().unwrap());
        assert_eq!(cross_site_reason(&h), None);
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(cross_site_reason(&h).is_some(), "another port is another origin");
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(cross_site_reason(&h).is_some());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site_reason(&h).is_some());
        h.remove("sec-fetch-site");
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_site_reason(&h).is_some());
    }

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/jobs/1?x=1")), "/jobs/1?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("a=b; {SESSION_COOKIE}=123.abc; c=d").parse().unwrap());
        assert_eq!(session_cookie(&h).as_deref(), Some("123.abc"));
        let set = session_set_cookie("v", false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"));
        assert!(session_set_cookie("v", true).ends_with("; Secure"));
    }
}
