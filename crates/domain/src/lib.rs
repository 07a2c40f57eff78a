//! # subsync-domain
//!
//! The business rules that turn Stripe subscription facts into entitlements for a UK
//! Making Tax Digital app — and nothing else: no I/O, no database, no Stripe JSON, no clock.
//! The worker parses events into the typed inputs below, calls [`apply`], stores what it
//! decides, and re-evaluates [`SubscriptionState::entitlement`] at later instants.
//!
//! * [`tiers`]: tiers, their [`Features`], and the price → tier [`TierConfig`] (TOML).
//! * [`access`]: subscription status → tier in force, grace periods, period ends.
//! * [`state`]: the per-subscription state machine; delivery order and duplicates do not
//!   change its result (see the tie-break rule in [`state`]).
//! * [`identity`]: which app user a subscription belongs to.
//!
//! Read and export access is never removed: every tier, including `free`, must grant it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod features;
pub mod identity;
pub mod input;
pub mod order;
pub mod state;
pub mod tiers;

pub use access::{
    Access, AccessFacts, AccessPolicy, AccessReason, DAY, Entitlement, SubscriptionStatus, UnixSeconds, evaluate_access,
};
pub use identity::{Identity, IdentitySource, UserRef};
pub use state::{
    DomainError, FeatureSummary, Input, Link, OrderKey, Outcome, PastDueTracker, PaymentHealth, PaymentRecord,
    Snapshot, SnapshotRecord, StaleReason, SubscriptionState, TierChange, apply, apply_all, replay,
};
pub use tiers::{
    AgentFeatures, ConfigError, ConfigErrorKind, DEFAULT_TIERS_TOML, FeatureSource, FeatureValue, Features,
    ItsaFeatures, ObligationFeatures, PlanTier, PriceRef, SourceFeatures, SourceLimit, TierConfig, TierName,
    UnmappedPolicy, UnmappedPrice, VatFeatures,
};
