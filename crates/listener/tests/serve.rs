//! The listener over real loopback sockets: timeouts close silent and idle connections, the
//! cap sheds a stalled connection for a real request, and a spent body budget answers 503
//! with `Retry-After` until the slow body holding it is old enough to be shed.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use subsync_listener::{ListenerConfig, ListenerFamilies, ListenerMetrics, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/echo", post(|body: Bytes| async move { body.len().to_string() }))
}

async fn start(config: ListenerConfig) -> (u16, ListenerMetrics) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let registry = subsync_metrics::Registry::new();
    let metrics = ListenerFamilies::register(&registry).expect("register").listener("test");
    config.validate().expect("valid");
    tokio::spawn(serve(listener, app(), config, metrics.clone(), std::future::pending()));
    (port, metrics)
}

fn config() -> ListenerConfig {
    let mut config = ListenerConfig::new("test", 1024);
    config.header_timeout = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(1);
    config.body_timeout = Duration::from_secs(30);
    config
}

/// Reads until the server closes the connection (or `within` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&all).into_owned()),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Reads one response (headers and a short body) without waiting for the close.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("answer").expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_at_their_timeouts() {
    let (port, metrics) = start(config()).await;
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    silent.write_all(b"GET /ok HT").await.expect("write");
    assert!(read_until_closed(&mut silent, Duration::from_secs(5)).await.is_some(), "closed at the header timeout");

    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    idle.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let waited = Instant::now();
    assert!(read_until_closed(&mut idle, Duration::from_secs(5)).await.is_some(), "closed at the idle timeout");
    assert!(waited.elapsed() >= Duration::from_millis(900), "not before the idle timeout");
    let text = metrics_text(&metrics);
    assert!(text.contains("headers=1") && text.contains("idle=1"), "{text}");
}

#[tokio::test]
async fn at_the_cap_a_stalled_connection_makes_room_for_a_request() {
    let mut config = config();
    config.header_timeout = Duration::from_secs(30);
    config.max_connections = 2;
    let (port, metrics) = start(config).await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        s.write_all(b"GET /ok HT").await.expect("write");
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/ok")).await.expect("served at the cap");
    assert_eq!(answer.status(), 200);
    let mut closed = 0;
    for s in &mut stalled {
        closed += usize::from(read_until_closed(s, Duration::from_millis(500)).await.is_some());
    }
    assert_eq!(closed, 1, "one stalled connection was shed for the request");
    assert_eq!(metrics.shed_total(), 1);
}

#[tokio::test]
async fn a_spent_body_budget_answers_503_until_the_slow_body_can_be_shed() {
    let mut config = config();
    config.body_budget = 2048;
    let (port, metrics) = start(config).await;
    // Two bodies declare 1000 bytes each, send 990 and stall: 2000 of the 2048 are reserved.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let head = "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n";
    slow.write_all(head.as_bytes()).await.expect("write");
    slow.write_all(&[b'x'; 990]).await.expect("write");
    let mut other = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    other.write_all(head.as_bytes()).await.expect("write");
    other.write_all(&[b'x'; 990]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metrics.body_bytes.get(), 2000, "two bodies reserved their declared length");

    let client = reqwest::Client::new();
    let refused =
        client.post(format!("http://127.0.0.1:{port}/echo")).body(vec![b'y'; 100]).send().await.expect("answer");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let json: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(json["error"], "overloaded");
    assert_eq!(metrics.bodies_refused.get(), 1);

    // Once the stalled bodies are older than a second, a new body sheds one of them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let served =
        client.post(format!("http://127.0.0.1:{port}/echo")).body(vec![b'y'; 100]).send().await.expect("answer");
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.expect("text"), "100");
    assert!(metrics.shed_total() >= 1);
}

fn metrics_text(metrics: &ListenerMetrics) -> String {
    format!("headers={} idle={}", metrics.timed_out_count("headers"), metrics.timed_out_count("idle"))
}
