//! For tests (feature `testing`): the application's receiver, verifying with the official
//! Standard Webhooks library (`tests/standard-webhooks/receiver.py`, run by `python3`;
//! `tests/standard-webhooks/install.sh` installs the library).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The script, in the repository.
pub const RECEIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/standard-webhooks/receiver.py");

/// A test secret in the `whsec_` form.
pub const SECRET: &str = "whsec_c3Vic3luYy10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5";

/// How the receiver behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Share of verified requests answered 500.
    pub fail_rate: f64,
    /// Share answered 307 (a redirect subsync must not follow).
    pub redirect_rate: f64,
    /// From the n-th verified request (1-based; 0 never) …
    pub down_from: u32,
    /// … answer 503 to everything for this long.
    pub down_for: Duration,
    /// Hold the first verified request this long before answering.
    pub stall_first: Duration,
    /// Seed of the random choices.
    pub seed: u64,
}

/// One request the receiver got.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Received {
    /// `webhook-id`.
    pub id: Option<String>,
    /// The body's user, when verified.
    pub user_id: Option<String>,
    /// The body's version, when verified.
    pub version: Option<i64>,
    /// The answer (a number), or `"stalling"` when a stalled request arrived.
    pub status: serde_json::Value,
    /// Whether the official library accepted it.
    pub verified: bool,
    /// Why it did not.
    pub error: Option<String>,
    /// When it arrived, or for a stalled one when it was answered (unix seconds).
    pub t: f64,
    /// The stalled first request (logged when it arrives, as `"stalling"`, and when answered).
    #[serde(default)]
    pub stalled: bool,
}

impl Received {
    /// Answered with a 2xx.
    pub fn accepted(&self) -> bool {
        self.status.as_u64().is_some_and(|s| (200..300).contains(&s))
    }
}

/// A running receiver; killed on drop.
#[derive(Debug)]
pub struct Receiver {
    child: Child,
    /// `http://127.0.0.1:<port>/hooks`.
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts the receiver with `secret`; panics (never skips) when python3 or the library is
    /// missing.
    pub fn start(secret: &str, behaviour: &Behaviour) -> Self {
        let mut child = Command::new("python3")
            .arg(RECEIVER)
            .arg("serve")
            .args(["--secret", secret])
            .args(["--fail-rate", &behaviour.fail_rate.to_string()])
            .args(["--redirect-rate", &behaviour.redirect_rate.to_string()])
            .args(["--down-from", &behaviour.down_from.to_string()])
            .args(["--down-for", &behaviour.down_for.as_secs_f64().to_string()])
            .args(["--stall-first", &behaviour.stall_first.as_secs_f64().to_string()])
            .args(["--seed", &behaviour.seed.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/standard-webhooks/receiver.py (run tests/standard-webhooks/install.sh)");
        let stdout = child.stdout.take().expect("receiver stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = first
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("receiver did not start (is standardwebhooks installed?): {first:?}"))
            .to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                match serde_json::from_str::<Received>(&line) {
                    Ok(r) => sink.lock().unwrap_or_else(|p| p.into_inner()).push(r),
                    Err(e) => eprintln!("receiver printed something else ({e}): {line}"),
                }
            }
        });
        Self { child, url: format!("http://127.0.0.1:{port}/hooks"), log }
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `done(received)` holds, or `within` passes; returns whether it held.
    pub fn wait_for(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.received()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks the official library about signed messages `(id, timestamp, signature, body)`:
/// `ok` or `refused: …` for each.
pub fn official_verdicts(secret: &str, messages: &[(String, i64, String, String)]) -> Vec<String> {
    let mut child = Command::new("python3")
        .arg(RECEIVER)
        .args(["verify", "--secret", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3 receiver.py verify");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for (id, timestamp, signature, body) in messages {
            let line = serde_json::json!({"id": id, "timestamp": timestamp, "signature": signature, "body": body});
            writeln!(stdin, "{line}").expect("write to the verifier");
        }
    }
    let out = child.wait_with_output().expect("verifier output");
    assert!(out.status.success(), "the verifier failed");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}
