use super::*;

const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"x","created":1}"#;

fn secrets(config: &str) -> Secrets {
    Secrets::parse(config).expect("valid secrets")
}

fn secret(value: &str) -> Secret {
    Secret::parse(value).expect("valid secret")
}

fn check(secrets: &Secrets, header: &str, body: &[u8]) -> Result<VerifiedTimestamp, SignatureError> {
    verify(secrets, header, body, NOW, DEFAULT_TOLERANCE)
}

#[test]
fn known_answer_from_stripe_python() {
    // Produced by stripe-python 16.1.0 WebhookSignature.generate_signature_header.
    let header = sign(&secret("whsec_abc"), NOW, BODY);
    assert_eq!(header, "t=1700000000,v1=d20d470563baa16e16d0acb9d76464ab0b2681b981f7bccc8815785b7572df53");
}

#[test]
fn sign_then_verify_accepts() {
    let s = secrets("whsec_abc");
    let header = sign(&secret("whsec_abc"), NOW, BODY);
    assert_eq!(check(&s, &header, BODY), Ok(VerifiedTimestamp { timestamp: NOW, secret_index: 0 }));
    // &[u8] header values are accepted too (as read from an HTTP request).
    assert!(verify(&s, header.as_bytes(), BODY, NOW, DEFAULT_TOLERANCE).is_ok());
}

#[test]
fn missing_header_has_its_own_code() {
    let s = secrets("whsec_abc");
    let err = check(&s, "", BODY).expect_err("empty header");
    assert_eq!(err, SignatureError::MissingHeader);
    assert_eq!(err.code(), "missing_signature_header");
    assert_eq!(SignatureError::MissingHeader.code(), "missing_signature_header");
}

#[test]
fn malformed_header() {
    let s = secrets("whsec_abc");
    for header in ["nonsense", "t=abc,v1=00", "t=1;v1=00", "\u{0}"] {
        let err = check(&s, header, BODY).expect_err(header);
        assert_eq!(err.code(), "malformed_signature_header", "{header}: {err}");
        assert!(err.to_string().starts_with("malformed Stripe-Signature header"));
    }
    let err = verify(&s, b"t=1,v1=\xc3\x28".as_slice(), BODY, NOW, DEFAULT_TOLERANCE).expect_err("non-UTF-8");
    assert_eq!(err, SignatureError::MalformedHeader(MalformedReason::NotUtf8));
}

#[test]
fn no_timestamp_is_malformed() {
    let s = secrets("whsec_abc");
    let good = sign(&secret("whsec_abc"), NOW, BODY);
    let without_t = good.split_once(',').map(|(_, rest)| rest).unwrap_or_default();
    let err = check(&s, without_t, BODY).expect_err("no t");
    assert_eq!(err, SignatureError::MalformedHeader(MalformedReason::MissingTimestamp));
    assert_eq!(err.code(), "malformed_signature_header");
    assert!(err.to_string().contains("no timestamp"));
}

#[test]
fn v0_only_is_no_v1_even_if_v0_is_a_valid_hmac() {
    let s = secrets("whsec_abc");
    let good = sign(&secret("whsec_abc"), NOW, BODY);
    let downgraded = good.replace("v1=", "v0=");
    let err = check(&s, &downgraded, BODY).expect_err("v0 only");
    assert_eq!(err, SignatureError::NoV1Signature);
    assert_eq!(err.code(), "no_v1_signature");
    assert_eq!(check(&s, &format!("t={NOW}"), BODY), Err(SignatureError::NoV1Signature));
}

#[test]
fn mismatch_wrong_secret_wrong_body_bad_hex() {
    let s = secrets("whsec_abc");
    let other = sign(&secret("whsec_other"), NOW, BODY);
    let err = check(&s, &other, BODY).expect_err("wrong secret");
    assert_eq!(err, SignatureError::SignatureMismatch);
    assert_eq!(err.code(), "signature_mismatch");

    let good = sign(&secret("whsec_abc"), NOW, BODY);
    assert_eq!(check(&s, &good, b"{}"), Err(SignatureError::SignatureMismatch));

    // The timestamp is signed: changing it breaks the signature.
    let moved = good.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
    assert_eq!(check(&s, &moved, BODY), Err(SignatureError::SignatureMismatch));

    for bad in ["zz", "", "0", &"g".repeat(64), &good[good.len() - 64..].to_uppercase()] {
        let header = format!("t={NOW},v1={bad}");
        assert_eq!(check(&s, &header, BODY), Err(SignatureError::SignatureMismatch), "{bad}");
    }
}

#[test]
fn too_old_and_too_new_say_which() {
    let s = secrets("whsec_abc");
    let old = sign(&secret("whsec_abc"), NOW - 301, BODY);
    let err = check(&s, &old, BODY).expect_err("too old");
    assert_eq!(err.code(), "timestamp_outside_tolerance");
    assert!(matches!(err, SignatureError::TimestampOutsideTolerance { direction: ToleranceDirection::TooOld, .. }));
    assert!(err.to_string().contains("too old"), "{err}");

    let new = sign(&secret("whsec_abc"), NOW + 301, BODY);
    let err = check(&s, &new, BODY).expect_err("too new");
    assert!(matches!(err, SignatureError::TimestampOutsideTolerance { direction: ToleranceDirection::TooNew, .. }));
    assert!(err.to_string().contains("future"), "{err}");

    // Exactly at the edge on both sides is accepted.
    for t in [NOW - 300, NOW + 300] {
        let header = sign(&secret("whsec_abc"), t, BODY);
        assert!(check(&s, &header, BODY).is_ok());
    }
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    let s = secrets("whsec_abc");
    let header = sign(&secret("whsec_abc"), i64::MAX, BODY);
    let err = verify(&s, &header, BODY, i64::MIN, DEFAULT_TOLERANCE).expect_err("far future");
    assert_eq!(err.code(), "timestamp_outside_tolerance");
    let header = sign(&secret("whsec_abc"), 0, BODY);
    assert!(verify(&s, &header, BODY, i64::MAX, Duration::MAX).is_ok());
    let err = verify(&s, &header, BODY, i64::MAX, Duration::ZERO).expect_err("old");
    assert_eq!(err.code(), "timestamp_outside_tolerance");
}

#[test]
fn secret_roll_second_v1_matches_second_secret() {
    // Stripe signs with old and new during a roll; we only know the new one.
    let both = secrets("whsec_old,whsec_new");
    let header = sign_with(&both, NOW, BODY);
    assert_eq!(header.matches(",v1=").count(), 2);

    let only_new = secrets("whsec_new");
    assert_eq!(check(&only_new, &header, BODY), Ok(VerifiedTimestamp { timestamp: NOW, secret_index: 0 }));
    // We know both, Stripe signed only with the new one: the second secret matches.
    let new_only_header = sign(&secret("whsec_new"), NOW, BODY);
    assert_eq!(check(&both, &new_only_header, BODY), Ok(VerifiedTimestamp { timestamp: NOW, secret_index: 1 }));
    // A first v1 that is garbage does not stop the second from matching.
    let sig = &new_only_header[new_only_header.len() - 64..];
    let header = format!("t={NOW},v1={},v1={sig}", "0".repeat(64));
    assert!(check(&only_new, &header, BODY).is_ok());
}

#[test]
fn secret_with_surrounding_whitespace_in_config_still_verifies() {
    let s = secrets("  whsec_abc\n");
    let header = sign(&secret("whsec_abc"), NOW, BODY);
    assert!(check(&s, &header, BODY).is_ok());
}

#[test]
fn empty_body_signs_and_verifies() {
    let s = secrets("whsec_abc");
    let header = sign(&secret("whsec_abc"), NOW, b"");
    assert!(check(&s, &header, b"").is_ok());
    assert_eq!(check(&s, &header, b" "), Err(SignatureError::SignatureMismatch));
}

#[test]
fn ten_mib_body_signs_and_verifies() {
    let body: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let s = secrets("whsec_abc");
    let header = sign(&secret("whsec_abc"), NOW, &body);
    assert!(check(&s, &header, &body).is_ok());
    let mut tampered = body;
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    assert_eq!(check(&s, &header, &tampered), Err(SignatureError::SignatureMismatch));
}

#[test]
fn non_utf8_body_verifies_but_envelope_refuses_it() {
    let body = b"{\"id\":\"evt_\xff\"}";
    let s = secrets("whsec_abc");
    let header = sign(&secret("whsec_abc"), NOW, body);
    assert!(check(&s, &header, body).is_ok(), "signature is over bytes");
    let err = crate::Envelope::parse(body).expect_err("not UTF-8");
    assert_eq!(err.code(), "invalid_utf8");

    let not_json = b"not json at all";
    let header = sign(&secret("whsec_abc"), NOW, not_json);
    assert!(check(&s, &header, not_json).is_ok());
    let err = crate::Envelope::parse(not_json).expect_err("not JSON");
    assert_eq!(err.code(), "invalid_json");
}

#[test]
fn error_codes_are_distinct() {
    let all = [
        SignatureError::MissingHeader,
        SignatureError::MalformedHeader(MalformedReason::MissingTimestamp),
        SignatureError::NoV1Signature,
        SignatureError::SignatureMismatch,
        SignatureError::TimestampOutsideTolerance {
            direction: ToleranceDirection::TooOld,
            timestamp: 0,
            now: 0,
            tolerance_secs: 0,
        },
    ];
    let mut codes: Vec<_> = all.iter().map(SignatureError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    for err in &all {
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn hostile_headers_are_refused_quickly() {
    let s = secrets("whsec_a,whsec_b,whsec_c");
    // Just under the size limit, made only of v1 candidates: bounded work.
    let mut header = format!("t={NOW}");
    while header.len() + 68 < MAX_HEADER_LEN {
        header.push_str(",v1=");
        header.push_str(&"a".repeat(64));
    }
    let start = std::time::Instant::now();
    assert_eq!(check(&s, &header, BODY), Err(SignatureError::SignatureMismatch));
    let commas = ",".repeat(MAX_HEADER_LEN - 10);
    assert_eq!(check(&s, &commas, BODY), Err(SignatureError::MalformedHeader(MalformedReason::MissingTimestamp)));
    let huge = "t=1,".repeat(1 << 20);
    assert!(matches!(check(&s, &huge, BODY), Err(SignatureError::MalformedHeader(MalformedReason::TooLong { .. }))));
    assert!(start.elapsed() < Duration::from_secs(2));
}
