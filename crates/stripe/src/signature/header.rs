//! Parser for the `Stripe-Signature` header value.
//!
//! The header is attacker-controlled, so the parser is linear in its length,
//! refuses values longer than [`MAX_HEADER_LEN`], and keeps at most
//! [`MAX_V1_SIGNATURES`] `v1` candidates (further ones are ignored, not errors:
//! Stripe sends one per active secret, so two or three in practice).

use super::{MalformedReason, SignatureError};

/// Longest header value we look at. Stripe's are ~150 bytes per secret; 16 KiB
/// leaves room for any plausible roll while bounding work per request.
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// How many `v1` values are compared at most; later ones are ignored.
pub const MAX_V1_SIGNATURES: usize = 64;

/// HMAC-SHA256 output length.
pub(crate) const SIGNATURE_LEN: usize = 32;

/// What verification needs from a header.
#[derive(Debug)]
pub(crate) struct ParsedHeader {
    pub(crate) timestamp: i64,
    /// Well-formed `v1` values, decoded. Values that are not 64 lowercase hex
    /// characters are dropped here: they could never match.
    pub(crate) candidates: Vec<[u8; SIGNATURE_LEN]>,
}

/// Parses a header value. Rules (documented on [`super::verify`]):
/// comma-separated `key=value` elements, optional whitespace around elements,
/// keys and values; empty elements skipped; exactly one `t`; schemes other than
/// `v1` (such as `v0`) ignored.
pub(crate) fn parse(raw: &[u8]) -> Result<ParsedHeader, SignatureError> {
    if raw.trim_ascii().is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    if raw.len() > MAX_HEADER_LEN {
        return Err(SignatureError::MalformedHeader(MalformedReason::TooLong { len: raw.len() }));
    }
    let text = std::str::from_utf8(raw).map_err(|_| SignatureError::MalformedHeader(MalformedReason::NotUtf8))?;

    let mut timestamp = None;
    let mut v1_seen = 0usize;
    let mut candidates = Vec::new();
    for (index, element) in text.split(',').enumerate() {
        let element = element.trim_ascii();
        if element.is_empty() {
            continue;
        }
        let Some((key, value)) = element.split_once('=') else {
            return Err(SignatureError::MalformedHeader(MalformedReason::NotKeyValue { element: index + 1 }));
        };
        match key.trim_ascii() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::MalformedHeader(MalformedReason::DuplicateTimestamp));
                }
                timestamp = Some(parse_timestamp(value.trim_ascii())?);
            }
            "v1" => {
                v1_seen += 1;
                if v1_seen <= MAX_V1_SIGNATURES
                    && let Some(sig) = decode_signature(value.trim_ascii())
                {
                    candidates.push(sig);
                }
            }
            _ => {} // v0 (insecure legacy scheme) and unknown schemes: never trusted.
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::MalformedHeader(MalformedReason::MissingTimestamp));
    };
    if v1_seen == 0 {
        return Err(SignatureError::NoV1Signature);
    }
    Ok(ParsedHeader { timestamp, candidates })
}

/// Unix seconds, decimal digits only (no sign, no garbage after: Stripe never
/// sends any, and leniency here only helps forgers probe the parser).
fn parse_timestamp(value: &str) -> Result<i64, SignatureError> {
    let invalid = || SignatureError::MalformedHeader(MalformedReason::InvalidTimestamp);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse::<i64>().map_err(|_| invalid())
}

/// Lowercase hex only, like the SDKs' string comparison (uppercase never matches there either).
fn decode_signature(value: &str) -> Option<[u8; SIGNATURE_LEN]> {
    if value.len() != SIGNATURE_LEN * 2 || !value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; SIGNATURE_LEN];
    hex::decode_to_slice(value, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd";

    fn malformed(raw: &str) -> MalformedReason {
        match parse(raw.as_bytes()) {
            Err(SignatureError::MalformedHeader(reason)) => reason,
            other => panic!("expected malformed for {raw:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_stripe_header_with_v0_and_two_v1() {
        let raw = format!(
            "t=1492774577,v1={SIG},v1={},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
            "0".repeat(64)
        );
        let parsed = parse(raw.as_bytes()).expect("valid header");
        assert_eq!(parsed.timestamp, 1492774577);
        assert_eq!(parsed.candidates.len(), 2);
    }

    #[test]
    fn tolerates_whitespace_and_empty_elements() {
        let raw = format!(" t = 12 , , v1 = {SIG} ,");
        let parsed = parse(raw.as_bytes()).expect("valid header");
        assert_eq!(parsed.timestamp, 12);
        assert_eq!(parsed.candidates.len(), 1);
    }

    #[test]
    fn empty_header_is_missing() {
        assert_eq!(parse(b"").err(), Some(SignatureError::MissingHeader));
        assert_eq!(parse(b"  ").err(), Some(SignatureError::MissingHeader));
    }

    #[test]
    fn malformed_variants() {
        assert_eq!(malformed("garbage"), MalformedReason::NotKeyValue { element: 1 });
        assert_eq!(malformed(&format!("t=1,v1={SIG},oops")), MalformedReason::NotKeyValue { element: 3 });
        assert_eq!(malformed(&format!("v1={SIG}")), MalformedReason::MissingTimestamp);
        assert_eq!(malformed("t=abc,v1=00"), MalformedReason::InvalidTimestamp);
        assert_eq!(malformed("t=-5,v1=00"), MalformedReason::InvalidTimestamp);
        assert_eq!(malformed("t=,v1=00"), MalformedReason::InvalidTimestamp);
        assert_eq!(malformed("t=12x,v1=00"), MalformedReason::InvalidTimestamp);
        assert_eq!(malformed("t=99999999999999999999999,v1=00"), MalformedReason::InvalidTimestamp);
        assert_eq!(malformed("t=1,t=2,v1=00"), MalformedReason::DuplicateTimestamp);
        match parse(b"t=1,v1=\xff\xfe") {
            Err(SignatureError::MalformedHeader(MalformedReason::NotUtf8)) => {}
            other => panic!("expected NotUtf8, got {other:?}"),
        }
        let long = format!("t=1,v1={}", "a".repeat(MAX_HEADER_LEN));
        assert!(matches!(malformed(&long), MalformedReason::TooLong { .. }));
    }

    #[test]
    fn only_v0_or_unknown_schemes_is_no_v1() {
        assert_eq!(parse(format!("t=1,v0={SIG}").as_bytes()).err(), Some(SignatureError::NoV1Signature));
        assert_eq!(parse(format!("t=1,v2={SIG},V1={SIG}").as_bytes()).err(), Some(SignatureError::NoV1Signature));
    }

    #[test]
    fn bad_hex_is_kept_out_of_candidates_not_an_error() {
        for bad in ["zz", "", &SIG.to_uppercase(), &SIG[..63], &format!("{SIG}0")] {
            let parsed = parse(format!("t=1,v1={bad}").as_bytes()).expect("parses");
            assert!(parsed.candidates.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn caps_number_of_candidates() {
        let mut raw = String::from("t=1");
        for _ in 0..(MAX_V1_SIGNATURES + 10) {
            raw.push_str(",v1=");
            raw.push_str(SIG);
        }
        let parsed = parse(raw.as_bytes()).expect("parses");
        assert_eq!(parsed.candidates.len(), MAX_V1_SIGNATURES);
    }
}
