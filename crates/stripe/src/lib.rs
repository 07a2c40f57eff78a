//! The Stripe wire protocol as subsync needs it, and nothing else.
//!
//! Three programs speak Stripe's protocol: the HTTP intake (which must decide,
//! fast and without a database, whether a webhook is authentic and which
//! subscription it concerns), the worker (which reads Stripe objects out of
//! stored events) and the test/load generators (which must produce webhooks
//! that Stripe's own SDKs would accept). Keeping the protocol here, free of
//! I/O, lets all three share one tested implementation.
//!
//! - [`signature`]: the `Stripe-Signature` scheme (verify with secret
//!   rotation, sign for tests), byte-for-byte compatible with Stripe's SDKs.
//! - [`envelope`]: the event envelope, its routing key ([`GroupKey`]) and
//!   whether the worker handles it ([`EventKind`]).
//! - [`objects`]: tolerant typed views of the Stripe objects the worker reads.
//!
//! Every error type has a `code()` returning a stable machine-readable
//! `&'static str`, so callers can store and count failures without parsing
//! human messages.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envelope;
pub mod objects;
pub mod signature;

pub use envelope::{Envelope, EnvelopeError, EventKind, GroupKey, RelatedObject};
pub use objects::{
    ActiveEntitlementSummary, CheckoutSession, Customer, Expandable, HasId, Invoice, Metadata, ObjectError,
    StripeObject, Subscription, SubscriptionStatus, app_user_id,
};
pub use signature::{
    DEFAULT_TOLERANCE, Secret, Secrets, SecretsError, SignatureError, VerifiedTimestamp, sign, sign_with, verify,
};
