//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, the signature `v1,` + base64 of its
//! HMAC-SHA256 under the secret, which is given as `whsec_` + base64 of its bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Fewest secret bytes accepted (the specification suggests 24 to 64).
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a secret was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    /// Not `whsec_…`.
    #[error("the notification secret must look like whsec_<base64> (Standard Webhooks)")]
    Prefix,
    /// The part after `whsec_` is not base64.
    #[error("the notification secret's part after whsec_ is not base64")]
    Base64,
    /// Too short to be a secret.
    #[error("the notification secret must hold at least {MIN_SECRET_BYTES} bytes ({0} given)")]
    TooShort(usize),
}

/// The signing secret. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(whsec_…redacted)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.trim().strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Self { key })
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    /// Whether any `v1,` signature in the space-separated `header` matches: what a receiver
    /// does (our own tests use the official library; this is for a Rust receiver and the
    /// benchmark).
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected = self.mac(id, timestamp, body);
        header.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|sig| {
            STANDARD
                .decode(sig)
                .is_ok_and(|given| subtle::ConstantTimeEq::ct_eq(given.as_slice(), expected.as_slice()).into())
        })
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example in the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_specifications_example() {
        let secret = WebhookSecret::parse(SECRET).expect("secret");
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY.as_bytes()), EXPECTED);
        assert!(secret.verify(ID, TIMESTAMP, BODY.as_bytes(), &format!("v1,bogus {EXPECTED}")));
        assert!(!secret.verify(ID, TIMESTAMP + 1, BODY.as_bytes(), EXPECTED));
        assert!(!secret.verify(ID, TIMESTAMP, b"{}", EXPECTED));
    }

    #[test]
    fn refuses_bad_secrets_clearly() {
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(), SecretError::Prefix);
        assert_eq!(WebhookSecret::parse("whsec_!!!").unwrap_err(), SecretError::Base64);
        assert_eq!(WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(), SecretError::TooShort(5));
        assert!(!format!("{:?}", WebhookSecret::parse(SECRET).expect("secret")).contains("MfKQ"));
    }
}
