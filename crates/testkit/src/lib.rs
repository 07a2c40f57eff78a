//! # subsync-testkit
//!
//! Realistic Stripe webhook traffic for subsync, shared by tests, benchmarks, load
//! generators and `subsync demo`, so they all exercise the same shapes and races.
//!
//! * [`generate_lifecycles`]: seeded subscription lifecycles as full Stripe event envelopes
//!   (exact JSON bytes), on the new (`2025-03-31.basil`) and an old (`2024-06-20`) API.
//! * [`delivery_plan`]: the order a misbehaving-but-legal Stripe would deliver them in:
//!   shuffled, duplicated, with concurrent checkout/subscription races.
//! * [`expected_entitlements`]: the oracle — the final entitlement per user, computed by
//!   applying the events in true order through `subsync_domain::apply`.
//! * [`sign_header`]: the `Stripe-Signature` header, implemented independently.
//! * [`demo_events`]: a tiny fixed scenario for demos.
//!
//! Depends only on `subsync-domain`, never on the Stripe parsing crate, so it can serve as
//! an independent reference for it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod catalog;
pub mod delivery;
pub mod demo;
pub mod event;
pub mod generator;
pub mod oracle;
pub mod sign;

pub use catalog::{
    ADDON_TIERS_TOML, CatalogPrice, Interval, STRIPE_FEATURE_KEYS, STRIPE_FEATURES_TOML, addon_price, catalog, price,
};
pub use delivery::{Delivery, DeliveryOptions, delivery_plan};
pub use demo::{DEMO_BASE, DEMO_NOW, DEMO_WEBHOOK_SECRET, demo_events, demo_lifecycles, demo_plan};
pub use event::{ApiVersion, EventFact, GeneratedEvent, ItemFact};
pub use generator::{GeneratorOptions, Lifecycle, generate_lifecycles};
pub use oracle::{ExpectedEntitlement, expected_entitlements, final_feature_summaries, final_states};
pub use sign::{sign_header, signature_hex};
