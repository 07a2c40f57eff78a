//! The Stripe API client for subsync (issue #13: never trust webhooks alone).
//!
//! Reads only: pages through `/v1/events` and `/v1/subscriptions`, fetches one object.
//! Every request sends the pinned [`STRIPE_VERSION`], goes through a shared client-side
//! rate limit, and is retried with backoff on 429, 409, 5xx, connection errors and
//! timeouts, honouring Stripe's `Stripe-Should-Retry` and `Retry-After`. Objects keep
//! Stripe's exact bytes ([`serde_json::value::RawValue`]) so what is stored is what
//! Stripe sent, like a webhook body. The key ([`ApiKey`]) is never logged or shown.
//!
//! Feature `testing`: [`fake::FakeStripe`], a local Stripe API for tests, whose fidelity
//! `tests/official_sdk.rs` checks with Stripe's official Python and Node SDKs.

mod client;
mod config;
mod date;
mod error;
mod events;
mod key;
mod pager;
mod ratelimit;
mod retry;

#[cfg(feature = "testing")]
pub mod fake;

pub use client::{Fetched, StripeApi};
pub use config::{ApiConfig, DEFAULT_BASE, MAX_BACKOFF};
pub use error::ApiError;
pub use events::{EventsFilter, MAX_EVENT_TYPES};
pub use key::ApiKey;
pub use pager::{Page, Pager};

/// The `Stripe-Version` sent on every request. Why pinned: Stripe shapes objects by API
/// version (2025-03-31.basil moved `current_period_*` onto subscription items, for
/// example); without the header an account's default version decides, and it changes
/// when someone upgrades the account in the Dashboard. Pinned, fetched objects have
/// one known shape, whatever the account's default. Events are the exception: Stripe
/// renders an event's `data.object` with the version it was created with (the
/// account's at the time), the same as its webhook.
pub const STRIPE_VERSION: &str = "2025-03-31.basil";
