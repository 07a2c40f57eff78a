//! Hostile and broken input against the real `subsync intake` binary, on both backends.
//!
//! A corpus of bad requests (every signature failure class, oversized and numerous headers,
//! oversized bodies declared and chunked, slow bodies, deep JSON, non-UTF-8, wrong content
//! types, methods and paths, well-signed envelopes with garbage `data`, malformed HTTP) is
//! sent in a bounded loop while a second task sends valid signed events at a steady pace.
//!
//! Checked: each case gets its documented status and error code (README "The webhook
//! endpoint", and the codes of `subsync_stripe`'s `SignatureError`/`EnvelopeError`); cases
//! whose answer nothing documents are only required to be refused with a 4xx and store
//! nothing, and their observed status is printed (`--nocapture`) so it can be documented;
//! slow bodies get 408 within 10 s (+ margin) while other clients are served; the valid
//! events all got 200 on the first try and are stored; nothing else is stored; the process
//! is alive and `/healthz` answers 200 at the end.
//!
//! The stripe crate's property tests (`crates/stripe/tests/{signature,envelope}_props.rs`)
//! already cover "the header and envelope parsers never panic on arbitrary input"; this
//! file does not repeat them, it checks the running server.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, SECRET, Server, TestDb, now, sign, subscription_event};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;
use subsync_queue::both_backends;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    hostile_corpus_is_refused_while_valid_traffic_is_served,
    a_poison_event_does_not_fail_the_valid_events_committed_with_it
);

/// Rounds of the whole corpus: at least the minimum, then more while the slow-body clients
/// stall (so hostile, slow and valid traffic overlap), never more than the maximum.
const MIN_ROUNDS: usize = 3;
const MAX_ROUNDS: usize = 15;
/// The intake's body timeout (crates/intake/src/http.rs, README: 408 after 10 s).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a case must get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Documented: this status and, if given, this `error` code.
    Status(u16, Option<&'static str>),
    /// Documented: a verified envelope is stored (200), whatever its `data.object` holds.
    Stored,
    /// Not documented: must be refused (4xx, or the connection closed without an answer)
    /// and store nothing. The observed answer is printed for the report.
    Refused,
    /// Not documented, and a 503 is conceivable (the database refuses the value): anything
    /// but a 2xx without storing, a 2xx without storing, or a 5xx other than 503.
    NotLost,
}

enum Request {
    /// An ordinary HTTP request through reqwest.
    Http { method: Method, path: String, headers: Vec<(HeaderName, HeaderValue)>, body: Vec<u8> },
    /// Raw bytes on a socket (malformed HTTP, or sizes reqwest would refuse to send).
    Raw(Vec<u8>),
    /// `common::raw_post`: a body of `len` spaces, declared or chunked.
    Huge { chunked: bool, len: usize },
}

struct Case {
    name: &'static str,
    expect: Expect,
    /// The event id this case would store if it were (wrongly) accepted, when it has one.
    event_id: Option<String>,
    request: Request,
}

fn json_header() -> (HeaderName, HeaderValue) {
    (reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
}

fn sig_header(value: &[u8]) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static("stripe-signature"), HeaderValue::from_bytes(value).expect("header value"))
}

/// A POST to the webhook with JSON content type and the given signature header (if any).
fn post_case(name: &'static str, expect: Expect, id: Option<String>, signature: Option<&[u8]>, body: Vec<u8>) -> Case {
    let mut headers = vec![json_header()];
    if let Some(sig) = signature {
        headers.push(sig_header(sig));
    }
    Case {
        name,
        expect,
        event_id: id,
        request: Request::Http { method: Method::POST, path: "/webhooks/stripe".into(), headers, body },
    }
}

/// A validly signed POST of `body`.
fn signed(name: &'static str, expect: Expect, id: Option<String>, body: Vec<u8>) -> Case {
    let sig = sign(SECRET, now(), &body);
    post_case(name, expect, id, Some(sig.as_bytes()), body)
}

/// An envelope as JSON bytes with `id`, `type` and `data` as given.
fn envelope(id: &str, event_type: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "api_version": "2025-03-31.basil", "created": now(),
        "livemode": false, "type": event_type, "data": data, "pending_webhooks": 1
    }))
    .expect("json")
}

/// Hard-to-compress text (hex of random UUIDs), so database-side compression cannot make a
/// long value small.
fn random_text(len: usize) -> String {
    let mut s = String::with_capacity(len + 32);
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

fn corpus(round: usize) -> Vec<Case> {
    use Expect::{NotLost, Refused, Stored};
    let st = |code: u16, error: &'static str| Expect::Status(code, Some(error));
    let id = |name: &str| format!("evt_hostile_{name}_{round}");
    let t = now();
    let good_body = subscription_event(&id("good"), "sub_hostile");
    let good = sign(SECRET, t, &good_body);
    let v1 = good.split("v1=").nth(1).expect("v1").to_string();
    let gid = Some(id("good"));
    let mut cases = vec![
        // Every signature failure class (README table, SignatureError codes).
        post_case("no signature header", st(400, "missing_signature_header"), gid.clone(), None, good_body.clone()),
        post_case("empty signature header", st(400, "missing_signature_header"), gid.clone(), Some(b""), good_body.clone()),
        post_case("garbage header", st(400, "malformed_signature_header"), gid.clone(), Some(b"garbage"), good_body.clone()),
        post_case("v1 without t", st(400, "malformed_signature_header"), gid.clone(), Some(format!("v1={v1}").as_bytes()), good_body.clone()),
        post_case("t not a number", st(400, "malformed_signature_header"), gid.clone(), Some(format!("t=abc,v1={v1}").as_bytes()), good_body.clone()),
        post_case("t twice", st(400, "malformed_signature_header"), gid.clone(), Some(format!("t={t},t={t},v1={v1}").as_bytes()), good_body.clone()),
        post_case("non-UTF-8 header", st(400, "malformed_signature_header"), gid.clone(), Some(b"t=1,v1=\xff\xfe"), good_body.clone()),
        post_case(
            "64 KiB signature header",
            st(400, "malformed_signature_header"),
            gid.clone(),
            Some(format!("{good},{}", "v0=00,".repeat(64 * 1024 / 6)).as_bytes()),
            good_body.clone(),
        ),
        post_case("v0 only", st(400, "no_v1_signature"), gid.clone(), Some(format!("t={t},v0={v1}").as_bytes()), good_body.clone()),
        post_case("other secret", st(400, "signature_mismatch"), gid.clone(), Some(sign("whsec_attacker", t, &good_body).as_bytes()), good_body.clone()),
        post_case("tampered body", st(400, "signature_mismatch"), Some(id("tampered")), Some(good.as_bytes()), subscription_event(&id("tampered"), "sub_evil")),
        post_case("t not the signed one", st(400, "signature_mismatch"), gid.clone(), Some(format!("t={},v1={v1}", t + 1).as_bytes()), good_body.clone()),
        post_case("too old", st(400, "timestamp_outside_tolerance"), gid.clone(), Some(sign(SECRET, t - 301, &good_body).as_bytes()), good_body.clone()),
        post_case("from the future", st(400, "timestamp_outside_tolerance"), gid.clone(), Some(sign(SECRET, t + 3600, &good_body).as_bytes()), good_body.clone()),
        // Only the first 64 v1 entries are tried (crates/stripe header.rs); README says "any
        // v1": a valid one after 64 bogus ones is refused. Not documented: printed.
        post_case(
            "valid v1 after 100 bogus v1",
            Refused,
            gid.clone(),
            Some(format!("t={t},{}v1={v1}", format!("v1={},", "0".repeat(64)).repeat(100)).as_bytes()),
            good_body.clone(),
        ),
        // Two Stripe-Signature headers: which one counts is not documented.
        Case {
            name: "two signature headers, first bad",
            expect: Refused,
            event_id: gid.clone(),
            request: Request::Http {
                method: Method::POST,
                path: "/webhooks/stripe".into(),
                headers: vec![json_header(), sig_header(b"garbage"), sig_header(good.as_bytes())],
                body: good_body.clone(),
            },
        },
        // Many headers (hyper's limit is 100): not documented.
        Case {
            name: "200 extra headers",
            expect: Refused,
            event_id: gid.clone(),
            request: Request::Http {
                method: Method::POST,
                path: "/webhooks/stripe".into(),
                headers: [json_header(), sig_header(good.as_bytes())]
                    .into_iter()
                    .chain((0..200).map(|i| {
                        (HeaderName::try_from(format!("x-junk-{i}")).expect("name"), HeaderValue::from_static("junk"))
                    }))
                    .collect(),
                body: good_body.clone(),
            },
        },
        // Bodies over the 1 MiB limit: declared (refused before reading) and chunked.
        Case { name: "10 MiB declared", expect: Expect::Status(413, None), event_id: None, request: Request::Huge { chunked: false, len: 10 << 20 } },
        Case { name: "10 MiB chunked", expect: Expect::Status(413, None), event_id: None, request: Request::Huge { chunked: true, len: 10 << 20 } },
        signed("1 MiB + 1 byte", st(413, "payload_too_large"), None, vec![b' '; (1 << 20) + 1]),
        // Signed bodies that are not events.
        signed("deep nesting", st(400, "invalid_json"), None, ["[".repeat(100_000), "]".repeat(100_000)].concat().into_bytes()),
        signed(
            "deep nesting in data.object",
            st(400, "invalid_json"),
            Some(id("deep")),
            {
                let inner = ["[".repeat(50_000), "]".repeat(50_000)].concat();
                let body = String::from_utf8(envelope(&id("deep"), "customer.subscription.updated", json!({"object": {"x": "HOLE"}}))).expect("utf-8");
                body.replace("\"HOLE\"", &inner).into_bytes()
            },
        ),
        signed("non-UTF-8", st(400, "invalid_utf8"), None, b"{\"id\":\"evt_\xc3\x28\",\"type\":\"x\"}".to_vec()),
        signed("empty body", st(400, "invalid_json"), None, Vec::new()),
        signed("top-level array", st(400, "not_an_object"), None, b"[{\"id\":\"evt_x\"}]".to_vec()),
        signed("data.object is a string", st(400, "missing_data_object"), Some(id("objstr")), envelope(&id("objstr"), "customer.subscription.updated", json!({"object": "sub_1"}))),
        signed("data.object is an array", st(400, "missing_data_object"), Some(id("objarr")), envelope(&id("objarr"), "customer.subscription.updated", json!({"object": [1, 2]}))),
        signed("data is null", st(400, "missing_data_object"), Some(id("datanull")), envelope(&id("datanull"), "invoice.paid", serde_json::Value::Null)),
        signed(
            "object is a charge",
            st(400, "unexpected_object"),
            Some(id("charge")),
            serde_json::to_vec(&json!({"id": id("charge"), "object": "charge", "type": "invoice.paid", "created": t, "data": {"object": {}}})).expect("json"),
        ),
        signed(
            "created is a string",
            st(400, "invalid_field"),
            Some(id("created")),
            serde_json::to_vec(&json!({"id": id("created"), "object": "event", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}})).expect("json"),
        ),
        signed("no type", st(400, "missing_type"), Some(id("notype")), serde_json::to_vec(&json!({"id": id("notype"), "created": t, "data": {"object": {}}})).expect("json")),
        signed("empty id", st(400, "missing_id"), None, envelope("", "invoice.paid", json!({"object": {}}))),
        signed("300-byte id", st(400, "invalid_event_id"), Some(format!("evt_{}", "x".repeat(296))), envelope(&format!("evt_{}", "x".repeat(296)), "invoice.paid", json!({"object": {}}))),
        // A verified envelope whose object is nonsense is stored: judging it is the worker's job.
        signed(
            "garbage inside data.object",
            Stored,
            Some(id("garbage")),
            envelope(&id("garbage"), "customer.subscription.updated", json!({"object": {"id": 12, "status": [], "items": "none"}})),
        ),
        // Values a database may refuse: a NUL character in the id (PostgreSQL TEXT cannot
        // hold U+0000), and a 64 KiB subscription id (PostgreSQL B-tree rows are limited to
        // ~2.7 KB). Nothing documents the answer.
        signed("NUL in event id", NotLost, Some(format!("{}\u{0}x", id("nul"))), envelope(&format!("{}\u{0}x", id("nul")), "invoice.paid", json!({"object": {}}))),
        {
            let sub = format!("sub_{}", random_text(64 * 1024));
            let body = envelope(&id("longsub"), "customer.subscription.updated", json!({"object": {"id": sub, "object": "subscription"}}));
            signed("64 KiB subscription id", NotLost, Some(id("longsub")), body)
        },
        // Content types, methods, paths.
        {
            let mut c = signed("text/plain", st(415, "unsupported_media_type"), gid.clone(), good_body.clone());
            if let Request::Http { headers, .. } = &mut c.request {
                headers[0].1 = HeaderValue::from_static("text/plain");
            }
            c
        },
        {
            let mut c = signed("form content type", st(415, "unsupported_media_type"), gid.clone(), good_body.clone());
            if let Request::Http { headers, .. } = &mut c.request {
                headers[0].1 = HeaderValue::from_static("application/x-www-form-urlencoded");
            }
            c
        },
    ];
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        cases.push(Case {
            name: "wrong method",
            expect: Expect::Status(405, None),
            event_id: gid.clone(),
            request: Request::Http {
                method,
                path: "/webhooks/stripe".into(),
                headers: vec![json_header(), sig_header(good.as_bytes())],
                body: good_body.clone(),
            },
        });
    }
    for path in ["/webhooks/other", "/webhooks/stripe/", "/WEBHOOKS/STRIPE", "/"] {
        cases.push(Case {
            name: "wrong path",
            expect: Expect::Status(404, None),
            event_id: gid.clone(),
            request: Request::Http {
                method: Method::POST,
                path: path.into(),
                headers: vec![json_header(), sig_header(good.as_bytes())],
                body: good_body.clone(),
            },
        });
    }
    let long_path = format!("/webhooks/{}", "a".repeat(16 * 1024));
    cases.push(Case {
        name: "16 KiB path",
        expect: Refused,
        event_id: gid.clone(),
        request: Request::Http {
            method: Method::POST,
            path: long_path,
            headers: vec![json_header(), sig_header(good.as_bytes())],
            body: good_body.clone(),
        },
    });
    // Malformed HTTP on a raw socket.
    let head = |extra: &str| {
        format!(
            "POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nStripe-Signature: {good}\r\n{extra}\r\n"
        )
    };
    cases.extend([
        // Dot segments: reqwest would normalize them away, so raw. Routes match literally.
        Case {
            name: "dot-segment path",
            expect: Expect::Status(404, None),
            event_id: gid.clone(),
            request: Request::Raw(
                [
                    head(&format!("Content-Length: {}\r\n", good_body.len()))
                        .replace("POST /webhooks/stripe ", "POST /webhooks/x/../stripe ")
                        .into_bytes(),
                    good_body.clone(),
                ]
                .concat(),
            ),
        },
        Case {
            name: "garbage request line",
            expect: Refused,
            event_id: None,
            request: Request::Raw(b"\x16\x03\x01 HELLO\r\n\r\n".to_vec()),
        },
        Case {
            name: "512 KiB of headers",
            expect: Refused,
            event_id: gid.clone(),
            request: Request::Raw(
                format!(
                    "{}\r\nX-Big: {}\r\n\r\n",
                    head("Content-Length: 2\r\n").trim_end_matches("\r\n"),
                    "b".repeat(512 * 1024)
                )
                .into_bytes(),
            ),
        },
        Case {
            name: "bad chunk size",
            expect: Refused,
            event_id: gid.clone(),
            request: Request::Raw(
                [head("Transfer-Encoding: chunked\r\n").into_bytes(), b"zz\r\nhello\r\n0\r\n\r\n".to_vec()].concat(),
            ),
        },
        Case {
            name: "Content-Length and chunked (smuggling)",
            expect: Refused,
            event_id: gid.clone(),
            request: Request::Raw(
                [
                    head(&format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", good_body.len()))
                        .into_bytes(),
                    good_body.clone(),
                ]
                .concat(),
            ),
        },
        Case {
            name: "two Content-Length",
            expect: Refused,
            event_id: gid.clone(),
            request: Request::Raw(
                [
                    head(&format!("Content-Length: {}\r\nContent-Length: 5\r\n", good_body.len())).into_bytes(),
                    good_body.clone(),
                ]
                .concat(),
            ),
        },
    ]);
    cases
}

/// Sends a case; returns (status, `error` code). Status 0: closed without an answer.
async fn send(client: &reqwest::Client, server: &Server, case: &Case) -> (u16, Option<String>) {
    match &case.request {
        Request::Http { method, path, headers, body } => {
            let mut req = client.request(method.clone(), format!("{}{path}", server.base)).body(body.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let json: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
                    (status, json["error"].as_str().map(String::from))
                }
                Err(_) => (0, None),
            }
        }
        Request::Raw(bytes) => (raw_exchange(server.port, bytes, None).await.0, None),
        Request::Huge { chunked, len } => {
            let body = vec![b' '; *len];
            (common::raw_post(server.port, &sign(SECRET, now(), &body), &body, *chunked).await, None)
        }
    }
}

/// Writes `bytes` (then stalls for `stall` if given, keeping the socket open) and reads the
/// status code of the answer; 0 when the server closed without answering. Bounded: 30 s.
async fn raw_exchange(port: u16, bytes: &[u8], stall: Option<Duration>) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(bytes).await;
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
    };
    let read = async {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(2).any(|w| w == b"\r\n") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        (got, started.elapsed())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            r = read => r,
            // The writer side finishing first (stall over, no answer yet) must not end the
            // exchange: keep reading.
            () = async { write.await; std::future::pending::<()>().await } => unreachable!(),
        }
    })
    .await
    .expect("raw exchange timed out (30 s)");
    let code = String::from_utf8_lossy(&outcome.0).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, outcome.1)
}

async fn stored_event_ids(db: &TestDb) -> HashSet<String> {
    let sql = "SELECT event_id FROM subsync_events";
    let ids: Vec<String> = match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("sqlite");
            let v = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("ids");
            pool.close().await;
            v
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("pg");
            let v = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("ids");
            pool.close().await;
            v
        }
    };
    ids.into_iter().collect()
}

async fn hostile_corpus_is_refused_while_valid_traffic_is_served(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = Server::start(
        &["intake"],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("STRIPE_WEBHOOK_SECRET", SECRET.to_string()),
            ("SUBSYNC_DB_TIMEOUT", "2".to_string()),
        ],
    )
    .await;

    // Valid traffic all along: one signed event every 50 ms until the corpus is done
    // (bounded: 1200 events). Each must get 200 on its first try, promptly.
    let stop = Arc::new(AtomicBool::new(false));
    let valid_ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let valid = {
        let (stop, valid_ids, base) = (stop.clone(), valid_ids.clone(), server.base.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
            let mut slowest = Duration::ZERO;
            for i in 0..1200 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("evt_valid_{i}");
                let body = subscription_event(&id, &format!("sub_valid_{}", i % 7));
                let started = Instant::now();
                let (status, json) = common::post(&client, &base, Some(&sign(SECRET, now(), &body)), body).await;
                slowest = slowest.max(started.elapsed());
                assert_eq!(
                    (status, &json["duplicate"]),
                    (200, &json!(false)),
                    "valid event {id} during the attack: {json}"
                );
                valid_ids.lock().expect("lock").push(id);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            slowest
        })
    };

    // Slow bodies (slowloris): a few clients declare a body, send 16 bytes and stall. Each
    // must get 408 after the 10 s body timeout (+ 4 s margin for a loaded machine).
    let slow: Vec<_> = (0..4)
        .map(|i| {
            let port = server.port;
            tokio::spawn(async move {
                let body = subscription_event(&format!("evt_slow_{i}"), "sub_slow");
                let head = format!(
                    "POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                     Stripe-Signature: {}\r\nContent-Length: {}\r\n\r\n",
                    sign(SECRET, now(), &body),
                    body.len()
                );
                let bytes = [head.as_bytes(), &body[..16]].concat();
                raw_exchange(port, &bytes, Some(Duration::from_secs(25))).await
            })
        })
        .collect();

    // A fresh connection per hostile request: after an early answer (413, 431) the server
    // closes the connection, and a pooled client would race that close on its next request.
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(20)).pool_max_idle_per_host(0).build().expect("client");
    let mut failures = Vec::new();
    let mut observed: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut stored_expected = HashSet::new();
    let mut maybe_stored = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut sent = 0;
    for round in 0..MAX_ROUNDS {
        let slow_done = slow.iter().all(|h| h.is_finished());
        if Instant::now() > deadline || (round >= MIN_ROUNDS && slow_done) {
            break;
        }
        for case in corpus(round) {
            let (status, code) = send(&client, &server, &case).await;
            sent += 1;
            *observed.entry(case.name.to_string()).or_default().entry(status).or_default() += 1;
            let ok = match case.expect {
                Expect::Status(want, want_code) => {
                    status == want && (want_code.is_none() || code.as_deref() == want_code)
                }
                Expect::Stored => {
                    stored_expected.extend(case.event_id.clone());
                    status == 200
                }
                Expect::Refused => status == 0 || (400..500).contains(&status),
                Expect::NotLost => {
                    if (200..300).contains(&status) {
                        maybe_stored.extend(case.event_id.clone());
                    }
                    status == 0 || status < 500 || status == 503
                }
            };
            if !ok {
                failures
                    .push(format!("{} (round {round}): got {status} {code:?}, expected {:?}", case.name, case.expect));
            }
        }
    }
    // Wait for the slow clients' answers while the valid sender still runs, so "others are
    // served meanwhile" covers the whole stall.
    for handle in slow {
        let (status, took) = handle.await.expect("slow client");
        println!("{b:?}: slow body answered {status} after {:.1}s", took.as_secs_f64());
        if status != 408
            || took < BODY_TIMEOUT - Duration::from_millis(500)
            || took > BODY_TIMEOUT + Duration::from_secs(4)
        {
            failures.push(format!("slow body: got {status} after {took:?}, expected 408 after ~{BODY_TIMEOUT:?}"));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let slowest = valid.await.expect("valid sender");
    let valid_ids = valid_ids.lock().expect("lock").clone();

    for (name, statuses) in &observed {
        println!("{b:?}: {name:<40} {statuses:?}");
    }
    println!(
        "{b:?}: {sent} hostile requests, {} valid events all 200 (slowest {:.0} ms)",
        valid_ids.len(),
        slowest.as_secs_f64() * 1e3
    );
    assert!(failures.is_empty(), "{b:?}: {} cases got the wrong answer:\n{}", failures.len(), failures.join("\n"));
    assert!(valid_ids.len() >= 100, "the valid sender made too few requests ({}) to mean anything", valid_ids.len());

    // Stored: exactly the valid events, the documented-stored hostile ones, and the
    // undocumented ones that got a 2xx.
    let stored = stored_event_ids(&db).await;
    let expected: HashSet<String> = valid_ids.iter().cloned().chain(stored_expected).collect();
    let missing: Vec<&String> = expected.difference(&stored).collect();
    let extra: Vec<&String> = stored.difference(&expected).filter(|id| !maybe_stored.contains(*id)).collect();
    assert!(missing.is_empty(), "{b:?}: answered 200 but not stored: {missing:?}");
    assert!(
        extra.is_empty(),
        "{b:?}: stored although refused: {:?}",
        extra.iter().map(|s| s.chars().take(80).collect::<String>()).collect::<Vec<_>>()
    );

    // Still alive and healthy.
    let mut server = server;
    assert!(server.child.try_wait().expect("try_wait").is_none(), "the intake process died");
    let health = client.get(format!("{}/healthz", server.base)).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let ready = client.get(format!("{}/readyz", server.base)).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    server.stop().await;
    db.close().await;
}

/// The intake commits concurrent webhooks together (group commit). A signed event the
/// database cannot store (NUL in its id, a 64 KiB subscription id) must fail only itself:
/// the valid events that happen to share its batch are documented to get 200.
async fn a_poison_event_does_not_fail_the_valid_events_committed_with_it(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let server = Server::start(
        &["intake"],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("STRIPE_WEBHOOK_SECRET", SECRET.to_string()),
            ("SUBSYNC_DB_TIMEOUT", "2".to_string()),
        ],
    )
    .await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let mut collateral = Vec::new();
    let mut poison_answers = BTreeMap::<u16, usize>::new();
    for round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        let nul = format!("evt_poison_{round}\u{0}");
        let long_sub = format!("sub_{}", random_text(64 * 1024));
        let poisons = [
            envelope(&nul, "invoice.paid", json!({"object": {}})),
            envelope(
                &format!("evt_poison_long_{round}"),
                "customer.subscription.updated",
                json!({"object": {"id": long_sub, "object": "subscription"}}),
            ),
        ];
        for body in poisons {
            let (client, base) = (client.clone(), server.base.clone());
            tasks.spawn(
                async move { (None, common::post(&client, &base, Some(&sign(SECRET, now(), &body)), body).await) },
            );
        }
        for i in 0..40 {
            let (client, base) = (client.clone(), server.base.clone());
            let id = format!("evt_batchmate_{round}_{i}");
            tasks.spawn(async move {
                let body = subscription_event(&id, &format!("sub_batchmate_{i}"));
                (Some(id), common::post(&client, &base, Some(&sign(SECRET, now(), &body)), body).await)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (id, (status, json)) = joined.expect("task");
            match id {
                Some(id) if status != 200 => collateral.push(format!("{id}: {status} {json}")),
                Some(_) => {}
                None => *poison_answers.entry(status).or_default() += 1,
            }
        }
    }
    println!("{b:?}: poison events answered {poison_answers:?}; valid batch-mates refused: {}", collateral.len());
    assert!(
        collateral.is_empty(),
        "{b:?}: {} valid events were refused because a poison event shared their commit:\n{}",
        collateral.len(),
        collateral.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    let mut server = server;
    assert!(server.child.try_wait().expect("try_wait").is_none(), "the intake process died");
    server.stop().await;
    db.close().await;
}
