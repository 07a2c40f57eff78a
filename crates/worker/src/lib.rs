//! # subsync-worker
//!
//! The subscription sync: turns the Stripe events stored in the event log (`subsync-eventlog`)
//! and queued (queue [`subsync_eventlog::SYNC_QUEUE`], payload [`subsync_eventlog::SyncJob`]) into durable per-subscription
//! state, a per-user entitlement ("what may this user do") and an audit trail.
//!
//! - [`sync`]: the job handler. One transaction per event: read the subscription state,
//!   [`subsync_domain::apply`], write the state, recompute the user's entitlement, append
//!   history on a tier change, record the event's outcome and complete the job — so a crash
//!   or a re-run can never apply an event twice.
//! - [`runtime`]: the apalis worker over [`subsync_queue::QueueBackend`], with concurrency,
//!   per-job timeout, a tracing span per job and graceful shutdown ([`runtime::run`]).
//! - [`entitlements`]: the reads for every reader — CLI, admin, the application's read API
//!   (list, get, history, outcomes). `entitlements::effective` is the one definition of
//!   *current* access from the stored `access_until`; the SQL view
//!   `subsync_effective_entitlements` mirrors it for applications sharing the database.
//!
//! - [`support`]: one user's whole story for support (entitlement, subscriptions, history,
//!   events and their outcomes), found by user, customer or subscription id.
//!
//! SQL lives in `store/{sqlite,postgres}.rs`, one dialect each, like the queue's drivers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod entitlements;
pub mod error;
pub mod fetch;
pub mod runtime;
mod store;
pub mod support;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use entitlements::{EntitlementRow, EventOutcomeRow, HistoryRow};
pub use error::WorkerError;
pub use fetch::{FetchError, FetchedObject, RefetchMode, SubscriptionFetcher};
pub use runtime::{WorkerConfig, run};
pub use support::{SupportView, support};
pub use sync::{GroupCommit, LapseJob, SyncContext, SyncObserver, handle};
