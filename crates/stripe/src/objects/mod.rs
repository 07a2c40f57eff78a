//! Typed, tolerant views of the Stripe objects the worker reads.
//!
//! Only the fields subsync uses are modelled; unknown fields are ignored and
//! fields Stripe may omit or null are `Option` (or default), so new API
//! versions and test payloads do not break parsing. Enumerations keep unknown
//! values verbatim (`Unknown(String)`) instead of failing.
//!
//! API versions matter in two places: since 2025-03-31.basil a subscription's
//! `current_period_end` lives on its items, and an invoice's subscription on
//! `parent.subscription_details.subscription`. Helpers here read both shapes.

mod checkout;
mod customer;
mod entitlements;
mod invoice;
mod subscription;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use checkout::{CheckoutMode, CheckoutSession, CheckoutStatus, PaymentStatus};
pub use customer::Customer;
pub use entitlements::{ActiveEntitlement, ActiveEntitlementSummary};
pub use invoice::{Invoice, InvoiceLine, InvoiceParent, InvoiceStatus, Period, SubscriptionDetails};
pub use subscription::{Price, Subscription, SubscriptionItem, SubscriptionStatus};

/// Stripe metadata: string keys to string values, set by us at Checkout to
/// link Stripe objects back to our users.
pub type Metadata = BTreeMap<String, String>;

/// The metadata key our Checkout integration sets to our user's id.
pub const APP_USER_ID_KEY: &str = "app_user_id";

/// Our user's id from Stripe metadata, if set and not blank: the link from a
/// Stripe object back to the account whose entitlements it changes.
pub fn app_user_id(metadata: &Metadata) -> Option<&str> {
    metadata.get(APP_USER_ID_KEY).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Why `data.object` could not be read as the requested type.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A thin event: there is no `data.object` to read.
    #[error("event carries no data.object (thin event)")]
    NoObject,
    /// `object` names another kind, e.g. an invoice read as a subscription.
    #[error("data.object is a {found:?}, expected a {expected:?}")]
    WrongObject {
        /// What the caller asked for.
        expected: &'static str,
        /// What `object` said (truncated).
        found: String,
    },
    /// A required field is missing or a field has the wrong type.
    #[error("data.object is not a valid {expected}: {source}")]
    Invalid {
        /// What the caller asked for.
        expected: &'static str,
        /// serde's description, with the field path.
        #[source]
        source: serde_json::Error,
    },
}

impl ObjectError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ObjectError::NoObject => "no_data_object",
            ObjectError::WrongObject { .. } => "wrong_object_type",
            ObjectError::Invalid { .. } => "invalid_object",
        }
    }
}

/// A Stripe object type with its `object` discriminator, so reading the wrong
/// kind of object is an error rather than a silently wrong value.
pub trait StripeObject: DeserializeOwned {
    /// The value of the `object` field, e.g. `"subscription"`.
    const OBJECT: &'static str;

    /// Reads a JSON value (e.g. an event's `data.object`), checking `object`
    /// when present (it may be absent in hand-built test payloads).
    fn from_value(value: &Value) -> Result<Self, ObjectError> {
        if let Some(found) = value.get("object").and_then(Value::as_str)
            && found != Self::OBJECT
        {
            return Err(ObjectError::WrongObject { expected: Self::OBJECT, found: found.chars().take(64).collect() });
        }
        Self::deserialize(value).map_err(|source| ObjectError::Invalid { expected: Self::OBJECT, source })
    }

    /// Reads raw JSON bytes (e.g. an API response or a fixture).
    fn from_json(raw: &[u8]) -> Result<Self, ObjectError> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|source| ObjectError::Invalid { expected: Self::OBJECT, source })?;
        Self::from_value(&value)
    }
}

/// Objects that have an id, so an [`Expandable`] can give it either way.
pub trait HasId {
    /// The object's Stripe id.
    fn id(&self) -> &str;
}

/// A reference Stripe sends either as an id string or, when expanded, as the
/// whole object; callers mostly need the id and must accept both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expandable<T> {
    /// Not expanded: just the id.
    Id(String),
    /// Expanded: the full object.
    Object(Box<T>),
}

impl<T: HasId> Expandable<T> {
    /// The referenced id, whichever form was sent.
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(object) => object.id(),
        }
    }
}

/// Any expanded object of which only the id matters to us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's Stripe id.
    pub id: String,
}

impl HasId for ObjectRef {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Stripe's list wrapper (`{"object":"list","data":[…],"has_more":…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    /// The items included (embedded lists hold at most the first page).
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// Whether more items exist than are included.
    #[serde(default)]
    pub has_more: bool,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List { data: Vec::new(), has_more: false }
    }
}

/// Reads `null` as the default value (Stripe sends `"metadata": null` in places).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string enumeration that keeps unknown values (new Stripe states must not
/// make parsing fail; the worker decides what to do with them).
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The wire value, for logs and storage.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(other) => other,
                }
            }

            /// Parses a wire value; unknown values become `Unknown`.
            pub fn from_wire(value: &str) -> Self {
                match value {
                    $( $text => $name::$variant, )*
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok($name::from_wire(&value))
            }
        }
    };
}
pub(crate) use string_enum;

#[cfg(test)]
mod tests;
