//! # subsync-eventlog
//!
//! The event log, with one owner. Every writer of Stripe events (the webhook intake today;
//! API reconciliation and operator replays too) and every reader (the worker, the CLI, the
//! admin API) goes through this crate, so the contract between them is defined once:
//!
//! - [`SYNC_QUEUE`] and [`SyncJob`]: the queue a stored event's sync runs on, and the job's
//!   payload with its two constructors ([`SyncJob::sync`] deduplicated on the event id,
//!   [`SyncJob::replay`] deliberately not);
//! - [`EventRecord`]: a verified event body turned into the row to store, with the
//!   [`Disposition`] that decides whether it gets a job;
//! - [`EventRecord::fetched_subscription`]: a subscription fetched from Stripe's API (a
//!   backfill) stored as a synthetic event, so it is ordered and deduplicated like a webhook;
//! - [`StoredEvent`]: the row as read back;
//! - [`store`]: every statement on `subsync_events` (store with its job, get, prune), one SQL
//!   dialect per module. No other crate names that table.
//!
//! Storing is atomic with the job: the event row and its sync job (unique key = event id,
//! group = subscription id) commit together, so a duplicate delivery, however late, is a
//! no-op and a stored event always has its job.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod fetched;
mod job;
mod record;
pub mod store;

pub use fetched::{FETCHED_OBJECT, FETCHED_TYPE, FetchMeta, FetchedSubscription};
pub use job::{SYNC_QUEUE, SyncJob};
pub use record::{Disposition, EventRecord, RecordError, Stored, StoredEvent, THIN_OBJECT};
pub use store::{get, prune, store_batch};
