//! Fixtures for tests that run the real `subsync` binary: a child-process server,
//! Stripe-signed requests, and a TCP proxy that can cut the database off. Throwaway databases
//! (`TestDb::unmigrated`: the binary migrates them) and `both_backends!` come from
//! `subsync_queue::testing` (feature `testing`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

#[allow(unused_imports)] // not every test binary that includes this module names a backend
pub use subsync_queue::Backend;
pub use subsync_queue::testing::TestDb;

/// The webhook secret test servers are started with.
pub const SECRET: &str = "whsec_test_subsync_integration";

/// The test database's PostgreSQL URL through a [`Proxy`] instead of the server.
pub trait ViaProxy {
    /// The schema's URL, connecting to `proxy` (PostgreSQL only).
    fn via_proxy(&self, proxy: &Proxy) -> String;
}

impl ViaProxy for TestDb {
    fn via_proxy(&self, proxy: &Proxy) -> String {
        self.url_via(&proxy.addr.to_string()).expect("via_proxy is for PostgreSQL databases only")
    }
}

/// The `subsync` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_subsync")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A `subsync` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub port: u16,
}

impl Server {
    /// Starts `subsync <args>` with `env` and waits for `/healthz`.
    pub async fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env("SUBSYNC_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn subsync");
        let server = Self { child, base: format!("http://127.0.0.1:{port}"), port };
        server.wait_healthy().await;
        server
    }

    /// `subsync serve` on `database_url` with the test webhook secret and the admin API on a
    /// free loopback port, guarded by `admin_token`; returns the server and the admin port.
    pub async fn serve_with_admin(database_url: &str, admin_token: &str) -> (Self, u16) {
        let admin_port = free_port();
        let server = Self::start(
            &["serve"],
            &[
                ("DATABASE_URL", database_url.to_owned()),
                ("STRIPE_WEBHOOK_SECRET", SECRET.to_string()),
                ("SUBSYNC_ADMIN_TOKEN", admin_token.to_owned()),
                ("SUBSYNC_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}")),
            ],
        )
        .await;
        (server, admin_port)
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("subsync did not become healthy on {}", self.base);
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A Stripe-shaped event envelope.
pub fn event(id: &str, event_type: &str, object: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "type": event_type,
        "data": { "object": object },
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null }
    }))
    .expect("json")
}

/// A `customer.subscription.updated` event for `sub`.
pub fn subscription_event(id: &str, sub: &str) -> Vec<u8> {
    event(
        id,
        "customer.subscription.updated",
        serde_json::json!({
            "id": sub, "object": "subscription", "customer": "cus_1", "status": "active",
            "cancel_at_period_end": false, "metadata": {},
            "items": { "object": "list", "data": [ { "id": "si_1", "object": "subscription_item",
                "current_period_end": chrono::Utc::now().timestamp() + 86400,
                "price": { "id": "price_basic", "object": "price", "lookup_key": "basic_monthly" } } ] }
        }),
    )
}

/// `t=…,v1=…` for `body` with `secret` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let secret = subsync_stripe::signature::Secret::parse(secret).expect("secret");
    subsync_stripe::signature::sign(&secret, timestamp, body)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// POSTs `body` with `signature` (if any) to the webhook endpoint.
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    signature: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut req = client.post(format!("{base}/webhooks/stripe")).header("content-type", "application/json").body(body);
    if let Some(sig) = signature {
        req = req.header("stripe-signature", sig);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// A loopback TCP proxy in front of the database that a test can cut and restore, to play
/// "the database is unreachable" without touching the shared server.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    /// Connections being pumped right now.
    live: Arc<AtomicUsize>,
}

/// Counts a pumped connection until both its sockets are dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let live = Arc::new(AtomicUsize::new(0));
        let (target, open2, gen2, live2) = (target.to_string(), open.clone(), generation.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                // Subscribe before looking at `open`: a cut either shows here as closed or
                // bumps the generation this subscription then sees.
                let mut cut = gen2.subscribe();
                if !open2.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                live2.fetch_add(1, Ordering::SeqCst);
                let pumping = Live(live2.clone());
                let target = target.clone();
                tokio::spawn(async move {
                    let _pumping = pumping;
                    let Ok(mut outbound) = TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, open, generation, live }
    }

    /// Drops every connection and refuses new ones; returns once every connection is closed,
    /// so nothing sent after it reaches the target.
    pub async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.live.load(Ordering::SeqCst) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "proxied connections did not close after a cut");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Sends a webhook over a raw socket and returns the status line's code, reading the answer
/// even when the server refuses before the body is fully sent (as it should for 413).
pub async fn raw_post(port: u16, signature: &str, body: &[u8], chunked: bool) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let length =
        if chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {}", body.len()) };
    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Stripe-Signature: {signature}\r\n{length}\r\n\r\n"
    );
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(head.as_bytes()).await;
        for chunk in body.chunks(64 * 1024) {
            let ok = if chunked {
                writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_ok()
                    && writer.write_all(chunk).await.is_ok()
                    && writer.write_all(b"\r\n").await.is_ok()
            } else {
                writer.write_all(chunk).await.is_ok()
            };
            if !ok {
                break;
            }
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n").await;
        }
    };
    let read = async {
        let mut buf = vec![0u8; 1024];
        let mut got = Vec::new();
        while !got.windows(2).any(|w| w == b"\r\n") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    };
    let (_, response) = tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) })
        .await
        .expect("raw request timed out");
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}
