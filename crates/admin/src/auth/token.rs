//! The admin token and what is derived from it: browser sessions (carrying the signed-in
//! name) and CSRF tokens. Every comparison is constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::SESSION_SECONDS;
use crate::audit::{Actor, Via};
use crate::html;

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
    fn csrf_is_bound_to_the_session() {
        let t = token();
        let a = t.session_value(2_000_000_000, &alice());
        let b = t.session_value(2_000_000_001, &alice());
        let csrf = t.csrf_token(&a);
        assert!(t.verify_csrf(&a, &csrf));
        assert!(!t.verify_csrf(&b, &csrf));
        assert!(!t.verify_csrf(&a, ""));
    }
}
