//! Cross-checks our signature scheme against Stripe's OFFICIAL SDKs (stripe-node
//! and stripe-python, pinned in `tests/official-stripe/`), in both directions:
//! their headers verify with our `verify`, and our `sign` output verifies with
//! their `constructEvent` / `construct_event`.
//!
//! Requires `bash tests/official-stripe/install.sh` to have been run. If node,
//! python3 or the pinned packages are missing these tests FAIL (never skip),
//! saying so.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use subsync_stripe::signature::{DEFAULT_TOLERANCE, Secret, Secrets, SignatureError, sign, sign_with, verify};

const INSTALL_HINT: &str = "run `bash tests/official-stripe/install.sh` from the workspace root";
const TIMESTAMP: i64 = 1_700_000_000;
const SECRET: &str = "whsec_test_Y3Jvc3MtY2hlY2sgc2VjcmV0";
const OTHER_SECRET: &str = "whsec_test_b3RoZXIgc2VjcmV0";
/// One SDK call may not take longer than this (node/python start in well under a second).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/official-stripe")
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).expect("clock after 1970")
}

/// Payloads exercising what could differ between implementations: UTF-8
/// (multi-byte, emoji), Stripe's pretty-printed multi-line bodies, CRLF, size.
fn payloads() -> Vec<String> {
    let compact = r#"{"id":"evt_1","object":"event","type":"customer.subscription.updated","created":1700000000,"data":{"object":{"id":"sub_1","object":"subscription","status":"active"}}}"#;
    let unicode = r#"{"id":"evt_ü","object":"event","type":"customer.updated","created":1,"data":{"object":{"id":"cus_1","object":"customer","name":"Zoë Brontë £9.99 💷 ✓"}}}"#;
    let pretty = "{\n  \"id\": \"evt_2\",\n  \"object\": \"event\",\n  \"type\": \"invoice.paid\",\n  \"created\": 1,\n  \"data\": {\n    \"object\": {\n      \"id\": \"in_1\"\n    }\n  }\n}\n";
    let crlf = pretty.replace('\n', "\r\n");
    let big_note = "x".repeat(300 * 1024);
    let big = format!(
        r#"{{"id":"evt_big","object":"event","type":"invoice.paid","created":1,"data":{{"object":{{"id":"in_1","note":"{big_note}"}}}}}}"#
    );
    vec![compact.into(), unicode.into(), pretty.into(), crlf, big]
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs one helper with `payload` on stdin, bounded by [`CALL_TIMEOUT`].
fn run(program: &str, args: &[&str], payload: &[u8]) -> Outcome {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{program}` ({e}); {INSTALL_HINT}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&payload); // dropped afterwards: EOF
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CALL_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for helper") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{program} {args:?}` did not finish within {CALL_TIMEOUT:?}");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if matches!(status.code(), Some(2) | Some(3)) {
        panic!("`{program} {args:?}` failed (exit {status}): {stderr}\n{INSTALL_HINT}");
    }
    Outcome { ok: status.success(), stdout: stdout.trim().to_owned(), stderr }
}

/// Version pinned in a file, found by the line's prefix (keeps the pins in one place).
fn pinned(file: &str, before: &str, after: &str) -> String {
    let text = std::fs::read_to_string(dir().join(file))
        .unwrap_or_else(|e| panic!("cannot read tests/official-stripe/{file}: {e}"));
    text.lines()
        .find_map(|line| {
            let rest = line.split_once(before)?.1;
            Some(rest.split(after).next()?.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no stripe pin in tests/official-stripe/{file}"))
}

/// Fails (never skips) unless `program`'s SDK is installed at the pinned version.
fn preflight(program: &str) {
    static NODE: OnceLock<Result<(), String>> = OnceLock::new();
    static PYTHON: OnceLock<Result<(), String>> = OnceLock::new();
    let (cell, script, file, before, after) = match program {
        "node" => (&NODE, "sign.js", "package.json", "\"stripe\": \"", "\""),
        _ => (&PYTHON, "sign.py", "requirements.txt", "stripe==", "#"),
    };
    let result = cell.get_or_init(|| {
        let pin = pinned(file, before, after);
        let found = Command::new(program)
            .arg(script)
            .arg("version")
            .current_dir(dir())
            .output()
            .map_err(|e| format!("`{program}` is not available ({e}); {INSTALL_HINT}"))?;
        let version = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        if !found.status.success() || version != pin {
            return Err(format!(
                "{program} {script}: stripe {pin} is not installed (got {version:?}, stderr: {}); {INSTALL_HINT}",
                String::from_utf8_lossy(&found.stderr).trim()
            ));
        }
        Ok(())
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

fn secrets(config: &str) -> Secrets {
    Secrets::parse(config).expect("valid secrets")
}

fn secret(value: &str) -> Secret {
    Secret::parse(value).expect("valid secret")
}

fn official_sign(program: &str, script: &str, payload: &str) -> String {
    let ts = TIMESTAMP.to_string();
    let out = run(program, &[script, "sign", SECRET, &ts], payload.as_bytes());
    assert!(out.ok, "{script} sign failed: {}", out.stderr);
    out.stdout
}

fn check_their_headers(program: &str, script: &str) {
    preflight(program);
    let ours = secrets(SECRET);
    for payload in payloads() {
        let header = official_sign(program, script, &payload);
        // Same bytes as ours, not just "also valid".
        assert_eq!(header, sign(&secret(SECRET), TIMESTAMP, payload.as_bytes()), "{script}");
        let verified = verify(&ours, &header, payload.as_bytes(), TIMESTAMP, DEFAULT_TOLERANCE);
        assert_eq!(verified.map(|v| v.timestamp), Ok(TIMESTAMP), "{script}: {payload:.80}");

        let mut tampered = payload.clone().into_bytes();
        tampered[10] ^= 0x01;
        assert_eq!(
            verify(&ours, &header, &tampered, TIMESTAMP, DEFAULT_TOLERANCE),
            Err(SignatureError::SignatureMismatch),
            "{script}: tampered body must fail"
        );
        assert_eq!(
            verify(&secrets(OTHER_SECRET), &header, payload.as_bytes(), TIMESTAMP, DEFAULT_TOLERANCE),
            Err(SignatureError::SignatureMismatch),
            "{script}: other secret must fail"
        );
        // During a roll we accept it with the matching secret listed second.
        let roll = secrets(&format!("{OTHER_SECRET},{SECRET}"));
        let verified = verify(&roll, &header, payload.as_bytes(), TIMESTAMP, DEFAULT_TOLERANCE);
        assert_eq!(verified.map(|v| v.secret_index), Ok(1), "{script}");
    }
}

#[test]
fn node_sdk_headers_verify_with_ours() {
    check_their_headers("node", "sign.js");
}

#[test]
fn python_sdk_headers_verify_with_ours() {
    check_their_headers("python3", "sign.py");
}

/// Asks an SDK to verify; `now` is passed to node, python uses its own clock.
fn official_verify(program: &str, script: &str, secret: &str, header: &str, now: i64, body: &[u8]) -> Outcome {
    let now = now.to_string();
    let args: Vec<&str> = if script == "sign.js" {
        vec![script, "verify", secret, header, &now]
    } else {
        vec![script, "verify", secret, header]
    };
    run(program, &args, body)
}

fn check_our_headers(program: &str, script: &str) {
    preflight(program);
    // stripe-python checks against the real clock, so sign "now".
    let ts = now();
    for payload in payloads() {
        let body = payload.as_bytes();
        let header = sign(&secret(SECRET), ts, body);
        let out = official_verify(program, script, SECRET, &header, ts, body);
        assert!(out.ok, "{script} rejected our header: {} {}", out.stdout, out.stderr);
        assert!(out.stdout.starts_with("ok evt_"), "{}", out.stdout);

        let mut tampered = body.to_vec();
        tampered[10] ^= 0x01;
        let out = official_verify(program, script, SECRET, &header, ts, &tampered);
        assert!(!out.ok, "{script} accepted a tampered body: {}", out.stdout);
        assert!(out.stdout.contains("No signatures found matching"), "{}", out.stdout);
    }

    // Secret roll: our two-v1 header verifies with either secret alone.
    let body = payloads().swap_remove(0);
    let header = sign_with(&secrets(&format!("{OTHER_SECRET},{SECRET}")), ts, body.as_bytes());
    for one in [SECRET, OTHER_SECRET] {
        let out = official_verify(program, script, one, &header, ts, body.as_bytes());
        assert!(out.ok, "{script} rejected our roll header: {}", out.stdout);
    }

    // A stale header that we call too old, they call outside the tolerance zone.
    let old = ts - 301;
    let header = sign(&secret(SECRET), old, body.as_bytes());
    let ours = verify(&secrets(SECRET), &header, body.as_bytes(), ts, DEFAULT_TOLERANCE).expect_err("too old");
    assert_eq!(ours.code(), "timestamp_outside_tolerance");
    let out = official_verify(program, script, SECRET, &header, ts, body.as_bytes());
    assert!(!out.ok && out.stdout.contains("Timestamp outside the tolerance zone"), "{}", out.stdout);

    // A v0-only (downgraded) header is refused by both.
    let downgraded = sign(&secret(SECRET), ts, body.as_bytes()).replace("v1=", "v0=");
    let ours = verify(&secrets(SECRET), &downgraded, body.as_bytes(), ts, DEFAULT_TOLERANCE);
    assert_eq!(ours, Err(SignatureError::NoV1Signature));
    let out = official_verify(program, script, SECRET, &downgraded, ts, body.as_bytes());
    assert!(!out.ok && out.stdout.contains("No signatures found with expected scheme"), "{}", out.stdout);
}

#[test]
fn our_headers_verify_with_node_sdk() {
    check_our_headers("node", "sign.js");
}

#[test]
fn our_headers_verify_with_python_sdk() {
    check_our_headers("python3", "sign.py");
}
