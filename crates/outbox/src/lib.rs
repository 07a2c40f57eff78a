//! # subsync-outbox
//!
//! The outbox of entitlement changes, with one owner (`subsync_outbox`). The worker calls
//! [`append`] inside the transaction that changes a user's entitlement, so a change and its
//! notification commit together or not at all ("exactly once into the outbox"); the row
//! holds the notification's exact bytes and gets a delivery job on [`NOTIFY_QUEUE`], grouped
//! by user, so one user's notifications go out one at a time while users go in parallel.
//! The deliverer (`subsync-notify`) reads and marks rows through this crate; operators read
//! them through it too ([`list`], [`stats`]).
//!
//! On PostgreSQL, [`announce`] also `NOTIFY`s [`PG_CHANNEL`] at commit for applications that
//! listen instead of receiving webhooks.
//!
//! This crate has no HTTP client: the worker depends on it, and the worker fetches and
//! notifies only through others.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod change;
mod error;
mod store;

pub use change::{ChangeCause, DeliveryJob, EntitlementState, NOTIFICATION_TYPE, NewChange, Notification};
pub use error::OutboxError;
pub use store::{
    Appended, ListFilter, MAX_LIST, OutboxRow, OutboxStats, PendingChange, announce, append, get, list, mark_delivered,
    mark_delivered_in, mark_failed, prune, stats, undelivered,
};

/// The queue that carries delivery jobs (payload [`DeliveryJob`], group = user id).
pub const NOTIFY_QUEUE: &str = "notify";

/// The PostgreSQL channel [`announce`] notifies: payload `{"user_id", "version", "change_id"}`.
pub const PG_CHANNEL: &str = "subsync_entitlement_changes";
