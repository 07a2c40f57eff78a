//! Stripe's webhook signature scheme, as the official SDKs implement it.
//!
//! Stripe sends `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`.
//! Each `v1` is the lowercase hex of HMAC-SHA256 over the bytes
//! `"{t}." ++ raw_body`, keyed with the whole `whsec_…` secret string as UTF-8
//! (not base64-decoded). There is one `v1` per secret active on the endpoint
//! (two during a secret roll). The intake must verify before trusting a byte
//! of the body; generators must sign exactly as Stripe does.

mod header;
mod secrets;

use std::time::Duration;

use hmac::Mac;
use subtle::ConstantTimeEq;

pub use header::{MAX_HEADER_LEN, MAX_V1_SIGNATURES};
pub use secrets::{Secret, Secrets, SecretsError};

/// Stripe's SDKs default to five minutes; the intake should too unless it has
/// a reason (clock skew) to differ.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a header is structurally unusable; all map to the
/// `malformed_signature_header` code, a missing `t=` included, because the
/// sender's fix is the same (send a well-formed header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReason {
    /// Header bytes are not UTF-8.
    #[error("header is not valid UTF-8")]
    NotUtf8,
    /// Longer than [`MAX_HEADER_LEN`]: refused without parsing.
    #[error("header is {len} bytes, more than the {MAX_HEADER_LEN} accepted")]
    TooLong {
        /// Length of the refused header, in bytes.
        len: usize,
    },
    /// An element without `=`.
    #[error("element #{element} is not a key=value pair")]
    NotKeyValue {
        /// 1-based position among the comma-separated elements.
        element: usize,
    },
    /// No `t=` element.
    #[error("no timestamp (t=…) element")]
    MissingTimestamp,
    /// `t=` is not a non-negative decimal integer that fits in i64.
    #[error("timestamp (t=…) is not a non-negative decimal integer")]
    InvalidTimestamp,
    /// More than one `t=`: ambiguous (the SDKs disagree on which wins), so refused.
    #[error("more than one timestamp (t=…) element")]
    DuplicateTimestamp,
}

/// Whether a stale timestamp lies in the past or the future; the two point at
/// different problems (replay or delayed delivery vs. a wrong clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToleranceDirection {
    /// Signed longer ago than the tolerance: a replay, or a long-delayed retry.
    TooOld,
    /// Signed further in the future than the tolerance: one of the clocks is wrong.
    TooNew,
}

impl std::fmt::Display for ToleranceDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ToleranceDirection::TooOld => "too old (a replay, or a long-delayed delivery?)",
            ToleranceDirection::TooNew => "too far in the future (is a clock wrong?)",
        })
    }
}

/// Why a webhook was refused. Each variant has its own [`code`](Self::code),
/// so the intake can answer, log and count without parsing messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request had no (or an empty) `Stripe-Signature` header; the caller
    /// constructs this when the header is absent.
    #[error("missing Stripe-Signature header: webhooks must come from Stripe (or `stripe listen`) and be signed")]
    MissingHeader,
    /// The header could not be parsed; see [`MalformedReason`].
    #[error("malformed Stripe-Signature header: {0}")]
    MalformedHeader(MalformedReason),
    /// A `t=` but no `v1=` (e.g. only the legacy `v0`, which is never trusted).
    #[error("Stripe-Signature header has no v1 signature (v0 and unknown schemes are ignored)")]
    NoV1Signature,
    /// No `v1` matched any configured secret.
    #[error(
        "no v1 signature matches any configured secret: check the endpoint's signing secret, and that the raw request body is verified unmodified (no re-encoding, no newline changes)"
    )]
    SignatureMismatch,
    /// Authentic, but signed too long ago or too far in the future.
    #[error("signature timestamp {timestamp} is {direction}: now is {now}, tolerance is {tolerance_secs}s")]
    TimestampOutsideTolerance {
        /// Past or future.
        direction: ToleranceDirection,
        /// The header's `t`.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The tolerance applied, in whole seconds.
        tolerance_secs: u64,
    },
}

impl SignatureError {
    /// Stable machine-readable code for responses, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader => "missing_signature_header",
            SignatureError::MalformedHeader(_) => "malformed_signature_header",
            SignatureError::NoV1Signature => "no_v1_signature",
            SignatureError::SignatureMismatch => "signature_mismatch",
            SignatureError::TimestampOutsideTolerance { .. } => "timestamp_outside_tolerance",
        }
    }
}

/// Proof that a header verified: the signed timestamp, and which secret
/// matched (so a secret roll can be finished once the old one stops matching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    /// The header's `t`, Unix seconds, now authenticated.
    pub timestamp: i64,
    /// Index into [`Secrets`] (configuration order) of the first secret that matched.
    pub secret_index: usize,
}

/// Verifies a `Stripe-Signature` header against the raw body.
///
/// Accepts when ANY `v1` matches ANY secret (constant-time comparison), then
/// checks the timestamp lies within `tolerance` of `now_unix` on either side.
/// The signature is checked before the timestamp, as the SDKs do, so
/// [`SignatureError::TimestampOutsideTolerance`] only ever reports authentic
/// but stale (or future) events. `Duration::ZERO` means "same second";
/// there is no "skip the check" value (pass `Duration::MAX` for that).
///
/// Parsing: comma-separated `key=value` elements with optional surrounding
/// whitespace, empty elements skipped; exactly one `t` (decimal digits);
/// `v0` and unknown schemes ignored; a `v1` that is not 64 lowercase hex
/// characters never matches; at most [`MAX_V1_SIGNATURES`] `v1` values are
/// compared and headers over [`MAX_HEADER_LEN`] bytes are refused. An empty
/// header is [`SignatureError::MissingHeader`], like the SDKs.
pub fn verify(
    secrets: &Secrets,
    header_value: impl AsRef<[u8]>,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<VerifiedTimestamp, SignatureError> {
    let parsed = header::parse(header_value.as_ref())?;
    if parsed.candidates.is_empty() {
        // Only malformed v1 values: nothing could match, skip hashing the body.
        return Err(SignatureError::SignatureMismatch);
    }
    let secret_index = secrets
        .iter()
        .position(|secret| {
            let expected = compute(secret, parsed.timestamp, body);
            // Compare against every candidate without early exit, so timing
            // does not reveal which candidate (if any) was close.
            parsed
                .candidates
                .iter()
                .fold(subtle::Choice::from(0u8), |acc, candidate| acc | candidate.ct_eq(&expected))
                .into()
        })
        .ok_or(SignatureError::SignatureMismatch)?;

    let age = i128::from(now_unix) - i128::from(parsed.timestamp);
    let tolerance_secs = tolerance.as_secs();
    let direction = if age > i128::from(tolerance_secs) {
        Some(ToleranceDirection::TooOld)
    } else if -age > i128::from(tolerance_secs) {
        Some(ToleranceDirection::TooNew)
    } else {
        None
    };
    if let Some(direction) = direction {
        return Err(SignatureError::TimestampOutsideTolerance {
            direction,
            timestamp: parsed.timestamp,
            now: now_unix,
            tolerance_secs,
        });
    }
    Ok(VerifiedTimestamp { timestamp: parsed.timestamp, secret_index })
}

/// Signs a body as Stripe would, returning the full header value
/// `t=<timestamp>,v1=<hex>`: for tests and load generators.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    push_v1(&mut header, secret, timestamp, body);
    header
}

/// Signs with every secret, one `v1` each in configuration order, as Stripe
/// does during a secret roll: for testing rotation end to end.
pub fn sign_with(secrets: &Secrets, timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets.iter() {
        push_v1(&mut header, secret, timestamp, body);
    }
    header
}

fn push_v1(header: &mut String, secret: &Secret, timestamp: i64, body: &[u8]) {
    header.push_str(",v1=");
    header.push_str(&hex::encode(compute(secret, timestamp, body)));
}

/// HMAC-SHA256 over `"{timestamp}." ++ body`, streamed (no copy of the body).
fn compute(secret: &Secret, timestamp: i64, body: &[u8]) -> [u8; header::SIGNATURE_LEN] {
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
