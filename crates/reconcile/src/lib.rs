//! # subsync-reconcile
//!
//! Webhooks alone are not enough: Stripe retries for three days and never resends events
//! created while an endpoint was disabled, and a new install knows nothing of the
//! subscriptions that already exist. This crate reads Stripe's API and writes what it finds
//! into the event log (`subsync-eventlog`) exactly as the intake would, so deduplication (the
//! event id as the unique key) and ordering (the subscription as the group) stay in one place:
//!
//! - [`reconcile`](events::reconcile) lists `/v1/events` of the handled types since the last
//!   high-water mark (the `reconcile` duty's checkpoint in `subsync-duties`) and stores each;
//!   an event already received creates nothing, a missed one becomes a job;
//! - [`backfill`](backfill::backfill) lists every subscription and stores each as a fetched
//!   snapshot (`EventRecord::fetched_subscription`), ordered by Stripe's `Date` against
//!   webhooks; re-running it with nothing changed creates nothing.
//!
//! It owns no table: events go through the event log, the high-water mark through the duty.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backfill;
mod error;
pub mod events;

pub use backfill::{BackfillReport, backfill};
pub use error::ReconcileError;
pub use events::{RECONCILE_DUTY, ReconcileOptions, ReconcileReport, Since, reconcile};
