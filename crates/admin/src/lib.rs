//! # subsync-admin
//!
//! What an operator on call needs at 2 a.m.: see what is stuck and why, fix it, and replay
//! safely. Three faces over one set of operations ([`ops`]):
//!
//! - a JSON API for scripts (`/api/...`, documented in `docs/admin-api.md`),
//! - a server-rendered dashboard for people (no JavaScript, no build step),
//! - the `subsync` binary's operator commands (`jobs`, `groups`, `stats`), which live in
//!   the binary crate and call [`ops`] and [`query`],
//!
//! plus Prometheus `/metrics`. Every operation that changes jobs takes the [`audit::Actor`]
//! and records itself in the append-only audit log ([`audit`], table `subsync_audit`), so
//! none of the three faces can forget to. Unlike River UI, nothing is served without the
//! admin token, and the server is meant for its own private address (`SUBSYNC_ADMIN_LISTEN`, default
//! `127.0.0.1:8081`), never the public webhook listener.
//!
//! ```no_run
//! # async fn demo(store: subsync_queue::Store) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use subsync_admin::{AdminState, AdminToken};
//! let token = AdminToken::new(std::env::var("SUBSYNC_ADMIN_TOKEN")?)?;
//! let state = AdminState::new(store, token, Arc::new(subsync_metrics::Registry::new()));
//! let listener = tokio::net::TcpListener::bind(subsync_admin::DEFAULT_LISTEN).await?;
//! subsync_admin::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod api;
pub mod audit;
pub mod auth;
mod duty_metrics;
pub mod error;
pub mod html;
pub mod notifications;
pub mod ops;
mod pages;
pub mod query;
pub mod views;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use subsync_metrics::Registry;
use subsync_queue::Store;

pub use auth::{AdminToken, TokenError};
pub use error::AdminError;
pub use views::{BoxFuture, EntitlementsView, ViewError};

/// The environment variable naming the admin listen address.
pub const LISTEN_ENV: &str = "SUBSYNC_ADMIN_LISTEN";
/// The environment variable holding the admin token.
pub const TOKEN_ENV: &str = "SUBSYNC_ADMIN_TOKEN";
/// Loopback only by default: exposing the admin server is a deliberate act.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// Everything the admin server needs; cheap to clone (one per request).
#[derive(Clone)]
pub struct AdminState {
    pub(crate) store: Store,
    pub(crate) token: AdminToken,
    pub(crate) metrics: Arc<Registry>,
    /// `subsync_operator_jobs_total{action}`, registered in `metrics`.
    operator_jobs: Family<[(&'static str, &'static str); 1], Counter>,
    pub(crate) entitlements: Option<Arc<dyn EntitlementsView>>,
    pub(crate) secure_cookies: bool,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("backend", &self.store.backend())
            .field("token", &self.token)
            .field("entitlements", &self.entitlements.is_some())
            .field("secure_cookies", &self.secure_cookies)
            .finish()
    }
}

impl AdminState {
    /// The store to operate on, the token that guards it, and the process's metrics registry
    /// (rendered at `/metrics` together with queue depth read at scrape time).
    pub fn new(store: Store, token: AdminToken, metrics: Arc<Registry>) -> Self {
        let operator_jobs = Family::default();
        // Exposed as `subsync_operator_jobs_total`: the client appends `_total`.
        let help = "Jobs retried or cancelled by an operator, by action.";
        if let Err(e) = metrics.register("subsync_operator_jobs", help, operator_jobs.clone()) {
            tracing::warn!(error = %e, "operator actions will not be counted");
        }
        Self { store, token, metrics, operator_jobs, entitlements: None, secure_cookies: false }
    }

    /// Enables `/api/entitlements` and the entitlement lookup page.
    pub fn with_entitlements(mut self, view: Arc<dyn EntitlementsView>) -> Self {
        self.entitlements = Some(view);
        self
    }

    /// Marks the session cookie `Secure`. Turn on when the admin server is reached over
    /// HTTPS (through a TLS proxy); off by default because the default is plain HTTP on
    /// loopback.
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }
}

/// The admin application: API, dashboard, `/metrics` and `/healthz`, behind the token check.
/// Bind it on its own private address, never next to the public webhook routes.
pub fn router(state: AdminState) -> Router {
    api::routes()
        .merge(pages::routes())
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_auth))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin server listening");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Headers on every response: no caching of operator data, no framing (clickjacking on
/// the retry buttons), no sniffing, no referrer leaking job ids to other sites, and a CSP that allows no
/// script at all, so an escaping slip still cannot run attacker code.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on
    // form posts, which the cross-site check must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl AdminState {
    /// Counts jobs changed by an operator (retried or cancelled) through the API or the
    /// dashboard, as `subsync_operator_jobs_total{action}`.
    pub(crate) fn record_action(&self, action: ops::Action, changed: u64) {
        self.operator_jobs.get_or_create(&[("action", action.verb())]).inc_by(changed);
    }
}
