//! Property tests for the signature scheme: the header parser must survive
//! anything an attacker sends, and sign → verify must hold for any input.

use std::time::Duration;

use proptest::prelude::*;
use subsync_stripe::signature::{DEFAULT_TOLERANCE, Secret, Secrets, SignatureError, sign, sign_with, verify};

fn secrets() -> Secrets {
    Secrets::parse("whsec_one,whsec_two").expect("valid")
}

/// Header-shaped strings: plausible elements glued together, to reach deep
/// into the parser more often than uniformly random bytes would.
fn header_like() -> impl Strategy<Value = String> {
    let element = prop_oneof![
        "t=[0-9]{0,21}",
        "t= ?-?[0-9a-z]{0,5}",
        "v1=[0-9a-fA-F]{0,70}",
        "v0=[0-9a-f]{0,64}",
        "[a-z0-9]{0,3}=?[^,]{0,8}",
        " ?",
        "=+",
    ];
    prop::collection::vec(element, 0..12).prop_map(|parts| parts.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_bytes(header in prop::collection::vec(any::<u8>(), 0..512),
                                        body in prop::collection::vec(any::<u8>(), 0..64),
                                        now in any::<i64>()) {
        let _ = verify(&secrets(), &header, &body, now, DEFAULT_TOLERANCE);
    }

    #[test]
    fn never_panics_on_arbitrary_strings(header in any::<String>(), now in any::<i64>()) {
        let _ = verify(&secrets(), header.as_str(), b"{}", now, DEFAULT_TOLERANCE);
    }

    #[test]
    fn never_panics_and_never_accepts_header_like_garbage(header in header_like(), now in any::<i64>(),
                                                          tolerance in any::<u64>()) {
        let result = verify(&secrets(), header.as_str(), b"{}", now, Duration::from_secs(tolerance));
        // A random string cannot carry a valid HMAC.
        prop_assert!(result.is_err());
        if let Err(err) = result {
            prop_assert!(!err.code().is_empty());
            prop_assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn sign_then_verify_roundtrips(body in prop::collection::vec(any::<u8>(), 0..2048),
                                   secret in "[^\\s,]{1,48}",
                                   timestamp in 0i64..=4_102_444_800,
                                   skew in -300i64..=300) {
        let secret_text = format!("whsec_{secret}");
        let signing = Secret::parse(&secret_text).expect("valid secret");
        let accepted = Secrets::parse(&format!("  {secret_text}\t")).expect("valid secrets");
        let header = sign(&signing, timestamp, &body);
        let verified = verify(&accepted, &header, &body, timestamp + skew, DEFAULT_TOLERANCE);
        prop_assert_eq!(verified.map(|v| (v.timestamp, v.secret_index)), Ok((timestamp, 0)));
    }

    #[test]
    fn any_single_byte_tamper_fails(body in prop::collection::vec(any::<u8>(), 1..512),
                                    index in any::<prop::sample::Index>(),
                                    flip in 1u8..=255) {
        let secret = Secret::parse("whsec_tamper").expect("valid");
        let header = sign(&secret, 1_700_000_000, &body);
        let mut tampered = body.clone();
        let i = index.index(tampered.len());
        tampered[i] ^= flip;
        let result = verify(&Secrets::from(secret), &header, &tampered, 1_700_000_000, DEFAULT_TOLERANCE);
        prop_assert_eq!(result, Err(SignatureError::SignatureMismatch));
    }

    #[test]
    fn roll_header_verifies_with_each_secret_alone(body in prop::collection::vec(any::<u8>(), 0..256),
                                                    count in 1usize..5,
                                                    pick in any::<prop::sample::Index>()) {
        let names: Vec<String> = (0..count).map(|i| format!("whsec_secret{i}")).collect();
        let all = Secrets::parse(&names.join(",")).expect("valid");
        let header = sign_with(&all, 42, &body);
        let chosen = &names[pick.index(count)];
        let one = Secrets::parse(chosen).expect("valid");
        prop_assert!(verify(&one, &header, &body, 42, DEFAULT_TOLERANCE).is_ok());
        prop_assert_eq!(header.matches("v1=").count(), count);
    }
}
