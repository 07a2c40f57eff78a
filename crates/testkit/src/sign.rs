//! Stripe webhook signing for test senders, implemented directly (not via subsync-stripe)
//! so the verifier is checked against an independent implementation.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The `Stripe-Signature` header value for `body` sent at `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`, keyed with the whole
/// `whsec_…` string as UTF-8 bytes, exactly as Stripe does.
pub fn sign_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature_hex(secret, timestamp, body))
}

/// Just the lowercase hex `v1` signature, for building multi-signature headers.
pub fn signature_hex(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; an empty key is used if it did.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
