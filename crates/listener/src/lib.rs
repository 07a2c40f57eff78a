//! # subsync-listener
//!
//! The accept loop of subsync's HTTP listeners (the public webhook intake and the private
//! admin server), hardened for direct exposure to the internet. `axum::serve` has no header
//! timeout and no connection cap: a few thousand connections that send half a request line
//! hold every file descriptor, and a few hundred large slow bodies hold hundreds of MB. So
//! this crate serves an axum [`Router`] over hyper's HTTP/1 connection itself, with:
//!
//! - a **header timeout** (from the connection, or from the first byte after an idle wait),
//!   an **idle keep-alive timeout**, and a **body timeout** backstop;
//! - a **cap on open connections**: at the cap, a new connection sheds the connection that has
//!   waited longest for a request, else the slowest body (see [`shed`]); a request being
//!   handled is never shed; with nothing to shed, the new connection is closed;
//! - a **global budget of request-body bytes** ([`budget`]): past it, slow bodies are shed and
//!   then the request is answered 503 with `Retry-After: 1`, which Stripe retries;
//! - accept errors (out of file descriptors) shed a connection and back off, never spin.
//!
//! Memory is then bounded whatever the number of attackers: about the budget plus the cap
//! times hyper's per-connection buffer ([`MAX_BUF`]).

pub mod budget;
pub mod config;
mod conn;
pub mod metrics;
pub mod shed;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;

pub use config::{ConfigError, ListenerConfig};
pub use metrics::{ListenerFamilies, ListenerMetrics};

use budget::BodyBudget;
use shed::Registry;

/// hyper's read buffer per connection, at most (it starts at 8 KiB and grows only for large
/// headers): room for a 64 KiB `Stripe-Signature` header, which is answered with its own
/// error code rather than a bare 431, while the cap times it stays bounded (96 MiB at the
/// default cap, reached only by clients sending such headers).
pub const MAX_BUF: usize = 96 * 1024;

/// First pause after an accept error such as "too many open files"; doubled up to
/// [`ACCEPT_BACKOFF_MAX`] while the errors continue.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Longest the accept loop pauses for shed connections to close.
const CLOSING_WAIT: Duration = Duration::from_millis(250);
/// Warnings about overload are logged at most this often per listener.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Longest shutdown waits for connections to finish before closing the rest.
const DRAIN: Duration = Duration::from_secs(20);

/// What every connection task of one listener shares.
pub(crate) struct Shared {
    pub(crate) config: ListenerConfig,
    pub(crate) router: Router,
    pub(crate) registry: Registry,
    pub(crate) budget: Arc<BodyBudget>,
    pub(crate) metrics: ListenerMetrics,
    pub(crate) http: http1::Builder,
    started: Instant,
    last_warn_ms: AtomicU64,
}

impl Shared {
    /// Logs `message` at warn level, at most once per [`WARN_EVERY`]: under a flood, one line
    /// per shed connection would be a flood of its own.
    pub(crate) fn warn_throttled(&self, message: &'static str) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due && self.last_warn_ms.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            tracing::warn!(
                listener = self.config.name,
                open = self.registry.len(),
                cap = self.config.max_connections,
                body_bytes_in_flight = self.budget.in_use(),
                shed_total = self.metrics.shed_total(),
                refused_connections = self.metrics.refused.get(),
                refused_bodies = self.metrics.bodies_refused.get(),
                "{message}"
            );
        }
    }
}

/// Serves `router` on `listener` under `config`'s limits until `shutdown` completes, then lets
/// open requests finish (bounded). `config` must have passed [`ListenerConfig::validate`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ListenerConfig,
    metrics: ListenerMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    // Our own header timeout covers hyper's (whose timer would also cut idle connections).
    http.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true).max_buf_size(MAX_BUF);
    let budget = BodyBudget::new(config.body_budget, metrics.body_bytes.clone());
    let shared = Arc::new(Shared {
        config,
        router,
        registry: Registry::default(),
        budget,
        metrics,
        http,
        started: Instant::now(),
        last_warn_ms: AtomicU64::new(0),
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            listener = shared.config.name,
            %addr,
            max_connections = shared.config.max_connections,
            body_budget = shared.config.body_budget,
            header_timeout_s = shared.config.header_timeout.as_secs(),
            idle_timeout_s = shared.config.idle_timeout.as_secs(),
            "listening"
        );
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF;
                if shared.registry.active() >= shared.config.max_connections {
                    // Let the open connections read what they were sent, so a stalled request
                    // is told apart from a fresh one before choosing which to close.
                    tokio::task::yield_now().await;
                    if shared.registry.shed_one().is_some() {
                        shared.metrics.shed_cap.inc();
                        shared.warn_throttled("connection cap reached: shedding idle and slow connections");
                    } else {
                        shared.metrics.refused.inc();
                        shared.warn_throttled("connection cap reached with every request in progress: refusing");
                        drop(stream);
                        continue;
                    }
                }
                let_closing_connections_close(&shared).await;
                let conn = shared.registry.open();
                shared.metrics.open.inc();
                let (task_shared, task_stop) = (shared.clone(), stopped.clone());
                tokio::spawn(async move {
                    conn::run(task_shared.clone(), conn.clone(), stream, task_stop).await;
                    task_shared.registry.remove(&conn);
                    task_shared.metrics.open.dec();
                });
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // Usually "too many open files": close one connection, pause, try again.
                if shared.registry.shed_one().is_some() {
                    shared.metrics.shed_file_limit.inc();
                }
                tracing::debug!(listener = shared.config.name, error = %e, "accept failed");
                shared.warn_throttled("cannot accept connections (open-file limit?): shedding and backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drain(&shared).await;
    tracing::info!(listener = shared.config.name, "listener stopped");
    Ok(())
}

/// Connections being closed (shed, their tasks not yet run) beyond the cap before the accept
/// loop pauses for them: file descriptors stay near the cap plus this.
pub fn closing_slack(max_connections: usize) -> usize {
    max_connections / 4 + 2
}

/// Pauses accepting (at most [`CLOSING_WAIT`]) while connections being closed hold more than
/// [`closing_slack`] descriptors past the cap, so their tasks get to run. The new connection
/// is served after the pause either way: were descriptors truly out, `accept` would fail and
/// shed.
async fn let_closing_connections_close(shared: &Shared) {
    let ceiling = shared.config.max_connections + closing_slack(shared.config.max_connections);
    let deadline = Instant::now() + CLOSING_WAIT;
    while shared.registry.len() >= ceiling && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Errors about one connection that already went away: accept the next one at once.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted)
}

/// Waits (at most [`DRAIN`]) for the connections to finish their requests, then closes the rest.
async fn drain(shared: &Shared) {
    let deadline = tokio::time::Instant::now() + DRAIN;
    while !shared.registry.is_empty() {
        let removed = shared.registry.removed.notified();
        tokio::pin!(removed);
        removed.as_mut().enable();
        // Re-check after registering interest: the last removal may have just happened.
        if shared.registry.is_empty() {
            break;
        }
        if tokio::time::timeout_at(deadline, removed).await.is_err() {
            tracing::warn!(
                listener = shared.config.name,
                open = shared.registry.len(),
                "closing connections still open"
            );
            shared.registry.close_all();
            break;
        }
    }
}
