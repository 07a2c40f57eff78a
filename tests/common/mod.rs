//! Fixtures for tests that run the real `subsync` binary: throwaway databases on both
//! backends, a child-process server, Stripe-signed requests, and a TCP proxy that can cut
//! the database off.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// Runs each named `async fn(Backend)` scenario twice, as `sqlite::name` and `postgres::name`,
/// each bounded to two minutes: one scenario body, both backends.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(std::time::Duration::from_secs(120), super::$name(super::Backend::Sqlite))
                        .await
                        .expect("test timed out");
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(std::time::Duration::from_secs(120), super::$name(super::Backend::Postgres))
                        .await
                        .expect("test timed out");
                }
            )*
        }
    };
}

/// Environment variable naming the PostgreSQL server the suite runs against.
pub const PG_ENV: &str = "SUBSYNC_TEST_POSTGRES_URL";
/// The webhook secret test servers are started with.
pub const SECRET: &str = "whsec_test_subsync_integration";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A throwaway database: a temp SQLite file, or a fresh schema on the test PostgreSQL.
pub struct TestDb {
    pub backend: Backend,
    /// URL for the binary (PostgreSQL: scoped to the schema).
    pub url: String,
    /// PostgreSQL schema and admin URL, SQLite path.
    schema: Option<(String, String)>,
    path: Option<std::path::PathBuf>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("subsync-it-{}.db", uuid::Uuid::new_v4()));
                Self { backend, url: format!("sqlite:{}", path.display()), schema: None, path: Some(path) }
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let schema = format!("it_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin).await.expect("connect to PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .expect("schema");
                pool.close().await;
                let url = scoped(&admin, &schema);
                Self { backend, url, schema: Some((admin, schema)), path: None }
            }
        }
    }

    /// A PostgreSQL URL for this schema that goes through `proxy` instead of the server.
    pub fn via_proxy(&self, proxy: &Proxy) -> String {
        let (admin, schema) = self.schema.as_ref().expect("postgres only");
        let rewired = admin.replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1).replacen(
            "localhost:5432",
            &proxy.addr.to_string(),
            1,
        );
        scoped(&rewired, schema)
    }

    /// Counts rows of `table` (optionally with a WHERE clause).
    pub async fn count(&self, table: &str, condition: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table} {condition}");
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.expect("count");
                pool.close().await;
                n
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("pg");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.expect("count");
                pool.close().await;
                n
            }
        }
    }

    /// Runs one statement.
    pub async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.expect("exec");
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("pg");
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.expect("exec");
                pool.close().await;
            }
        }
    }

    /// One text column of one row.
    pub async fn text(&self, sql: &str) -> Option<String> {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("sqlite");
                let v = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_optional(&pool)
                    .await
                    .expect("query");
                pool.close().await;
                v
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("pg");
                let v = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_optional(&pool)
                    .await
                    .expect("query");
                pool.close().await;
                v
            }
        }
    }

    pub async fn close(self) {
        if let Some((admin, schema)) = &self.schema
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&pool).await;
        }
        if let Some(path) = &self.path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

pub fn pg_admin_url() -> String {
    std::env::var(PG_ENV).unwrap_or_else(|_| {
        panic!("{PG_ENV} is not set: these tests need PostgreSQL. Run `bash scripts/test.sh`, which sets it.")
    })
}

fn scoped(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
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
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let (target, open2, gen2) = (target.to_string(), open.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !open2.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let target = target.clone();
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, open, generation }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
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
