//! Who may use the admin server, and how browsers are kept from being tricked into using it.
//!
//! - One shared secret, the [`AdminToken`]. API clients send it as `Authorization: Bearer`.
//!   Every comparison is constant time.
//! - Browsers log in once with the token and get a cookie holding a *session value* derived
//!   from it (`<expiry>.<HMAC-SHA256(token, "session:v1:<expiry>")>`), never the token itself:
//!   a leaked cookie expires, and rotating the token ends every session. The cookie is
//!   `HttpOnly` (no script can read it) and `SameSite=Strict` (not sent on cross-site requests).
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
use crate::html;

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

    /// A session value valid until `expires` (unix seconds).
    pub(crate) fn session_value(&self, expires: i64) -> String {
        format!("{expires}.{}", self.mac_hex(&format!("session:v1:{expires}")))
    }

    /// True when `value` is a session this token issued and it has not expired.
    pub(crate) fn verify_session(&self, value: &str, now: i64) -> bool {
        let Some((expires, _)) = value.split_once('.') else { return false };
        let Ok(expires) = expires.parse::<i64>() else { return false };
        if expires <= now || expires > now + SESSION_SECONDS + 60 {
            return false;
        }
        let want = self.session_value(expires);
        want.as_bytes().ct_eq(value.as_bytes()).into()
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

/// How the current request proved itself; handlers read it from the request extensions.
#[derive(Debug, Clone)]
pub enum Principal {
    /// `Authorization: Bearer` with the right token (scripts, curl).
    Bearer,
    /// A browser session cookie; carries the session value to derive the CSRF token from.
    Session(String),
}

impl Principal {
    /// The CSRF token to embed in forms, when this is a browser session.
    pub(crate) fn csrf(&self, token: &AdminToken) -> Option<String> {
        match self {
            Principal::Session(s) => Some(token.csrf_token(s)),
            Principal::Bearer => None,
        }
    }

    /// Checks a submitted form's CSRF field. Bearer requests are CSRF-safe by construction.
    pub(crate) fn check_csrf(&self, token: &AdminToken, presented: Option<&str>) -> bool {
        match self {
            Principal::Bearer => true,
            Principal::Session(s) => presented.is_some_and(|p| token.verify_csrf(s, p)),
        }
    }
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
        Some(Ok(token)) if state.token.matches(token) => Some(Principal::Bearer),
        // A wrong bearer token is an error even if a cookie is also present: the client meant
        // to use the token.
        Some(_) => None,
        None => {
            let now = chrono::Utc::now().timestamp();
            session_cookie(req.headers()).filter(|s| state.token.verify_session(s, now)).map(Principal::Session)
        }
    };

    match principal {
        Some(Principal::Session(_)) if api && unsafe_method => json_error(
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

    #[test]
    fn sessions_expire_and_never_contain_the_token() {
        let t = token();
        let now = 1_800_000_000;
        let s = t.session_value(now + SESSION_SECONDS);
        assert!(!s.contains("0123456789abcdef-secret"));
        assert!(t.verify_session(&s, now));
        assert!(!t.verify_session(&s, now + SESSION_SECONDS), "expired");
        let other = AdminToken::new("another-token-0123456789").unwrap();
        assert!(!other.verify_session(&s, now), "a rotated token ends sessions");
        // Tampering with the expiry breaks the MAC.
        let forged = s.replacen(&(now + SESSION_SECONDS).to_string(), &(now + SESSION_SECONDS - 1).to_string(), 1);
        assert!(!t.verify_session(&forged, now));
        assert!(!t.verify_session("garbage", now));
        assert!(!t.verify_session("", now));
    }

    #[test]
    fn csrf_is_bound_to_the_session() {
        let t = token();
        let a = t.session_value(2_000_000_000);
        let b = t.session_value(2_000_000_001);
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
