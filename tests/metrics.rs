//! Every `/metrics` page of a running `subsync serve` (the intake's and the admin server's)
//! parsed by a real Prometheus parser: the official Python client's
//! `text_string_to_metric_families`, through `tests/prometheus/check.py`, which also fails on
//! what that lax parser lets through (an untyped or HELP-less family, a duplicate family or
//! series, a histogram whose buckets disagree with its count). Needs
//! `bash tests/prometheus/install.sh` (scripts/test.sh runs it); without it the test fails.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Backend, SECRET, Server, TestDb, now, post, sign, subscription_event};
use serde_json::Value;
use subsync_queue::both_backends;

both_backends!(intake_and_admin_metrics_parse_as_prometheus_text);

const ADMIN_TOKEN: &str = "metrics-test-admin-token-0123";
const INSTALL_HINT: &str = "run `bash tests/prometheus/install.sh` from the workspace root";

/// Families both pages show (one registry per process): name, Prometheus type, HELP. The
/// parser names a counter family without its `_total`, as OpenMetrics does.
const SHARED: &[(&str, &str, &str)] = &[
    ("subsync_intake_requests", "counter", "Webhook requests by outcome."),
    ("subsync_intake_request_seconds", "histogram", "Time to verify, store and answer one webhook."),
    ("subsync_intake_commit_batch_size", "histogram", "Webhooks stored per database commit."),
    ("subsync_jobs_started", "counter", "Job runs started, by queue."),
    (
        "subsync_jobs_finished",
        "counter",
        "Job runs ended, by queue and outcome (succeeded, retrying = failed and will retry, dead, lease_lost, released).",
    ),
    ("subsync_job_duration_seconds", "histogram", "Job run time, by queue."),
    // Shown from the first operator action on (the test makes one).
    ("subsync_operator_jobs", "counter", "Jobs retried or cancelled by an operator, by action."),
];

/// Families only the admin page shows: read from the queue database at scrape time.
const ADMIN_ONLY: &[(&str, &str, &str)] = &[
    ("subsync_queue_jobs", "gauge", "Jobs in the queue database by queue and state."),
    (
        "subsync_queue_oldest_due_age_seconds",
        "gauge",
        "How long the oldest due pending job has waited, per queue (0 when none is due).",
    ),
    ("subsync_queue_running_groups", "gauge", "Groups (subscriptions) with a job running now."),
    ("subsync_queue_store_up", "gauge", "1 when the admin server could read the queue database at this scrape."),
    (
        "subsync_unmapped_prices_seen",
        "gauge",
        "Prices seen in the last 30 days that the tier file does not map, by worst effect (ignored beside a mapped plan, free, dead).",
    ),
];

/// Parses `text` with the official parser (through `check.py`); panics with the reason if it
/// is not a well-formed exposition.
fn parse(text: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/prometheus/check.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; {INSTALL_HINT}"));
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write exposition");
    let out = child.wait_with_output().expect("check.py output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("No module named 'prometheus_client'"), "{stderr}\n{INSTALL_HINT}");
    assert!(out.status.success(), "the exposition does not parse:\n{stderr}\n--- exposition ---\n{text}");
    serde_json::from_slice(&out.stdout).expect("check.py prints JSON")
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family `{name}` in {families:#?}"))
}

/// The value of the sample `name{labels}` in `families`.
fn sample(families: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().into_iter().flatten())
        .find(|s| {
            s["name"] == name
                && s["labels"].as_object().is_some_and(|l| {
                    l.len() == labels.len() && labels.iter().all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(v))
                })
        })
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {families:#?}"))
}

async fn scrape(client: &reqwest::Client, url: String, token: Option<&str>) -> (String, String) {
    let mut req = client.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("scrape");
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (content_type, res.text().await.expect("text"))
}

async fn intake_and_admin_metrics_parse_as_prometheus_text(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let (server, admin_port) = Server::serve_with_admin(&db.url, ADMIN_TOKEN).await;
    let client = reqwest::Client::new();
    let body = subscription_event("evt_prom", "sub_prom");
    assert_eq!(post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body.clone()).await.0, 200);
    assert_eq!(post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await.0, 200);
    assert_eq!(post(&client, &server.base, None, b"{}".to_vec()).await.0, 400);

    let retry = client
        .post(format!("http://127.0.0.1:{admin_port}/api/jobs/retry"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"state":"dead","confirm":true}"#)
        .send()
        .await
        .expect("bulk retry");
    assert_eq!(retry.status().as_u16(), 200);

    let admin_url = format!("http://127.0.0.1:{admin_port}/metrics");
    let mut admin = Vec::new();
    for _ in 0..200 {
        let (content_type, text) = scrape(&client, admin_url.clone(), Some(ADMIN_TOKEN)).await;
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        admin = parse(&text);
        let done = [("queue", "stripe"), ("outcome", "succeeded")];
        // The job's counter and its row: the observer may hear of the end before the row reads so.
        if admin.iter().any(|f| f["name"] == "subsync_jobs_finished")
            && sample(&admin, "subsync_jobs_finished_total", &done) == 1.0
            && sample(&admin, "subsync_queue_jobs", &[("queue", "stripe"), ("state", "succeeded")]) == 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (content_type, text) = scrape(&client, format!("{}/metrics", server.base), None).await;
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let intake = parse(&text);

    for (families, expected) in [(&intake, SHARED.to_vec()), (&admin, [SHARED, ADMIN_ONLY].concat())] {
        for (name, kind, help) in expected {
            assert_eq!(family(families, name)["type"], kind, "{name}");
            assert_eq!(family(families, name)["help"], help, "{name}");
        }
        for (outcome, n) in [("accepted", 1.0), ("duplicate", 1.0), ("rejected_signature", 1.0)] {
            assert_eq!(sample(families, "subsync_intake_requests_total", &[("outcome", outcome)]), n, "{outcome}");
        }
        assert_eq!(sample(families, "subsync_intake_request_seconds_count", &[]), 3.0);
        assert_eq!(sample(families, "subsync_intake_request_seconds_bucket", &[("le", "+Inf")]), 3.0);
        assert_eq!(sample(families, "subsync_jobs_started_total", &[("queue", "stripe")]), 1.0);
        assert_eq!(sample(families, "subsync_job_duration_seconds_count", &[("queue", "stripe")]), 1.0);
        assert_eq!(sample(families, "subsync_operator_jobs_total", &[("action", "retry")]), 0.0);
    }
    assert_eq!(sample(&admin, "subsync_queue_jobs", &[("queue", "stripe"), ("state", "succeeded")]), 1.0);
    assert_eq!(sample(&admin, "subsync_queue_running_groups", &[]), 0.0);
    assert_eq!(sample(&admin, "subsync_queue_store_up", &[]), 1.0);
    server.stop().await;
    db.close().await;
}
