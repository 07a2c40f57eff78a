//! # subsync-appapi
//!
//! The application's read API: at every request, the tax application asks subsync what a user
//! may do — the whole entitlement, or one feature — and gets the answer *now*, with the lapse
//! rule applied (a grace period that ended no longer grants anything), through the worker's
//! one definition of current access ([`subsync_worker::entitlements`]).
//!
//! - `GET /v1/users/{user_id}/entitlements`: tier, features, status, reason, `access_until`,
//!   `period_end`, `lapsed`, `version`, `evaluated_at`; `ETag` and `If-None-Match` → 304. A
//!   user subsync has never seen gets the lowest tier with `"source": "default"`, not 404.
//! - `GET /v1/users/{user_id}/features/{feature}`: `{"allowed": bool, "limit": …}` for a dotted
//!   feature name (`itsa.quarterly`, `sources.max`); an unknown name is a 404 listing the valid
//!   ones.
//!
//! Read-only, authenticated with application keys ([`AppKeys`], `Authorization: Bearer`), on
//! its own private listener (`SUBSYNC_API_LISTEN`): never the public webhook port, and not the
//! admin listener either, so the application's network path never reaches operator actions,
//! and the API runs whether or not an admin token is configured. Documented in
//! `docs/integrating.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answer;
pub mod error;
pub mod keys;
mod routes;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use subsync_domain::{TierConfig, TierName};
use subsync_queue::Store;

pub use answer::{DefaultTier, EntitlementAnswer, FeatureAnswer, Limit, Source};
pub use error::ApiError;
pub use keys::{AppKeys, KeyError};

/// The environment variable naming the API's listen address.
pub const LISTEN_ENV: &str = "SUBSYNC_API_LISTEN";
/// The environment variable holding the application keys.
pub const KEYS_ENV: &str = "SUBSYNC_APP_KEYS";
/// Loopback by default: exposing the API beyond the host is a deliberate act.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8082";

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Everything the API needs; cheap to clone (one per request).
#[derive(Clone)]
pub struct AppApiState {
    store: Store,
    keys: Arc<AppKeys>,
    default: Arc<DefaultTier>,
    clock: Clock,
}

impl std::fmt::Debug for AppApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppApiState")
            .field("backend", &self.store.backend())
            .field("keys", &self.keys)
            .field("default_tier", &self.default.tier)
            .finish()
    }
}

impl AppApiState {
    /// An API reading `store`, accepting `keys`, answering unknown users with the `free` tier
    /// of `tiers` (the tier every lapse lands on).
    pub fn new(store: Store, keys: AppKeys, tiers: &TierConfig) -> Self {
        let default = DefaultTier { tier: TierName::FREE.to_owned(), features: tiers.free_features() };
        Self { store, keys: Arc::new(keys), default: Arc::new(default), clock: Arc::new(Utc::now) }
    }

    /// Answers as of `clock()` instead of the wall clock: tests, and "what will this user have
    /// on date X".
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A user's entitlement now: the stored row through the one definition, or the default.
    pub async fn answer(&self, user_id: &str) -> Result<EntitlementAnswer, ApiError> {
        let now = (self.clock)();
        Ok(match subsync_worker::entitlements::get_at(&self.store, user_id, now).await? {
            Some(row) => EntitlementAnswer::stored(row),
            None => EntitlementAnswer::default_for(user_id, &self.default),
        })
    }
}

/// The API's routes over `state`, for embedding or tests.
pub fn router(state: AppApiState) -> axum::Router {
    routes::router(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, keys = state.keys.len(), "application read API listening");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
