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
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

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

/// Why a token was refused at start-up.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// Short tokens can be guessed; 16 characters is the floor, 32+ random is better.
    #[error(
        "admin token is too short: {len} characters, need at least {min} (generate one with `openssl rand -hex 32`)"
    )]
    TooShort {
        /// Characters given.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// Leading/trailing whitespace or control characters are almost always a copy-paste
    /// accident (a trailing newline from a secrets file) and would never match a header.
    #[error("admin token contains whitespace or control characters; remove them (a trailing newline?)")]
    BadCharacters,
}

/// The admin secret. Its `Debug` never shows the value, so it cannot leak through logs.
#[derive(Clone)]
pub struct AdminToken {
    secret: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl AdminToken {
    /// The shortest token accepted.
    pub const MIN_LEN: usize = 16;

    /// Validates and wraps the token (from `SUBSYNC_ADMIN_TOKEN`).
    pub fn new(secret: impl Into<String>) -> Result<Self, TokenError> {
        let secret = secret.into();
        let len = secret.chars().count();
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::BadCharacters);
        }
        if len < Self::MIN_LEN {
            return Err(TokenError::TooShort { len, min: Self::MIN_LEN });
        }
        Ok(Self { secret })
    }

    /// Constant-time check of a presented token. Both sides are hashed first so the
    /// comparison does not even leak the token's length.
    pub fn matches(&self, presented: &str) -> bool {
        let want = Sha256::digest(self.secret.as_bytes());
        let got = Sha256::digest(presented.as_bytes());
        want.as_slice().ct_eq(got.as_slice()).into()
    }

    fn mac_hex(&self, message: &str) -> String {
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(message.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            // HMAC takes keys of any length; this arm cannot happen, and an empty MAC
            // matches nothing a client can send.
            Err(_) => String::new(),
        }
    }

    /// A session for `actor` (a validated name) valid until `expires` (unix seconds).
    pub(crate) fn session_value(&self, expires: i64, actor: &Actor) -> String {
        self.session_for_encoded(expires, &html::url_encode(actor.name()))
    }

    fn session_for_encoded(&self, expires: i64, name: &str) -> String {
        format!("{expires}.{name}.{}", self.mac_hex(&format!("session:v2:{expires}:{name}")))
    }

    /// The session's actor when `value` is a session this token issued and it has not
    /// expired. The name sits between the first and the last dot (neither the expiry nor the
    /// hex MAC has one).
    pub(crate) fn verify_session(&self, value: &str, now: i64) -> Option<Actor> {
        let (expires, rest) = value.split_once('.')?;
        let (name, _) = rest.rsplit_once('.')?;
        let expires = expires.parse::<i64>().ok()?;
        if expires <= now || expires > now + SESSION_SECONDS + 60 {
            return None;
        }
        let want = self.session_for_encoded(expires, name);
        if !bool::from(want.as_bytes().ct_eq(value.as_bytes())) {
            return None;
        }
        let name = percent_encoding::percent_decode_str(name).decode_utf8().ok()?;
        Actor::new(&name, Via::Dashboard).ok()
    }

    /// The CSRF token for forms shown to the holder of `session`.
    pub(crate) fn csrf_token(&self, session: &str) -> String {
        self.mac_hex(&format!("csrf:v1:{session}"))
    }

    /// Constant-time CSRF check.
    pub(crate) fn verify_csrf(&self, session: &str, presented: &str) -> bool {
        let want = self.csrf_token(session);
        !want.is_empty() && want.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

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

    fn token() -> AdminToken {
        AdminToken::new("0123456789abcdef-secret").unwrap()
    }

    #[test]
    fn token_rules() {
        assert_eq!(AdminToken::new("short").err(), Some(TokenError::TooShort { len: 5, min: 16 }));
        assert_eq!(AdminToken::new("0123456789abcdef\n").err(), Some(TokenError::BadCharacters));
        assert!(AdminToken::new("0123456789abcdef").is_ok());
        assert_eq!(format!("{:?}", token()), "AdminToken(***)");
        assert!(token().matches("0123456789abcdef-secret"));
        assert!(!token().matches("0123456789abcdef-secreT"));
        assert!(!token().matches(""));
    }

    fn alice() -> Actor {
        Actor::new("alice", Via::Dashboard).unwrap()
    }

    #[test]
    fn sessions_expire_and_never_contain_the_token() {
        let t = token();
        let now = 1_800_000_000;
        let s = t.session_value(now + SESSION_SECONDS, &alice());
        assert!(!s.contains("0123456789abcdef-secret"));
        assert_eq!(t.verify_session(&s, now), Some(alice()));
        assert_eq!(t.verify_session(&s, now + SESSION_SECONDS), None, "expired");
        let other = AdminToken::new("another-token-0123456789").unwrap();
        assert_eq!(other.verify_session(&s, now), None, "a rotated token ends sessions");
        // Tampering with the expiry breaks the MAC.
        let forged = s.replacen(&(now + SESSION_SECONDS).to_string(), &(now + SESSION_SECONDS - 1).to_string(), 1);
        assert_eq!(t.verify_session(&forged, now), None);
        assert_eq!(t.verify_session("garbage", now), None);
        assert_eq!(t.verify_session("", now), None);
        // A session of the old form (no name) is no session: sign in again.
        let v1 = format!("{}.{}", now + 60, t.mac_hex(&format!("session:v1:{}", now + 60)));
        assert_eq!(t.verify_session(&v1, now), None);
    }

    #[test]
    fn the_session_carries_its_name_and_the_name_cannot_be_changed() {
        let t = token();
        let now = 1_800_000_000;
        let odd = Actor::new("Zoë O'Brien. (on call); x=1", Via::Dashboard).unwrap();
        let s = t.session_value(now + 60, &odd);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%".contains(c)), "cookie-safe: {s}");
        assert_eq!(t.verify_session(&s, now), Some(odd));
        let mallory = s.replacen("Zo", "Mo", 1);
        assert_ne!(mallory, s);
        assert_eq!(t.verify_session(&mallory, now), None, "renaming the session breaks its MAC");
        // A MAC'd name that no longer passes validation (never issued, but belt and braces).
        let bad = t.session_for_encoded(now + 60, "a%0Ab");
        assert_eq!(t.verify_session(&bad, now), None);
    }

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
    fn csrf_is_bound_to_the_session() {
        let t = token();
        let a = t.session_value(2_000_000_000, &alice());
        let b = t.session_value(2_000_000_001, &alice());
        let csrf = t.csrf_token(&a);
        assert!(t.verify_csrf(&a, &csrf));
        assert!(!t.verify_csrf(&b, &csrf));
        assert!(!t.verify_csrf(&a, ""));
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
