//! # subsync-intake
//!
//! The thin front door for Stripe webhooks. For each request it verifies the
//! `Stripe-Signature` over the raw body, stores the event and its sync job in one database
//! transaction (the Stripe `event.id` is the unique key, so a duplicate delivery never becomes
//! a second job), and answers `200` only after that transaction committed. If the database
//! cannot take the event it answers `503`, so Stripe retries: never a 2xx for an event that
//! is not stored.
//!
//! Concurrent requests share commits ([`committer`]): each is still acknowledged only after
//! the commit that carries it.

pub mod body;
pub mod committer;
pub mod config;
pub mod http;
pub mod metrics;

pub use config::{
    Batching, DEFAULT_BODY_TIMEOUT, DEFAULT_COMMIT_LINGER, DEFAULT_COMMITTERS, DEFAULT_MAX_BATCH, IntakeConfig,
};
pub use http::{IntakeState, router};
