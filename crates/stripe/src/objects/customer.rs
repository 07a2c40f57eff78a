//! The customer: where our user id may live when the subscription lacks it.

use serde::{Deserialize, Serialize};

use super::{HasId, Metadata, StripeObject, null_as_default};

/// A customer (also what an expanded `customer` reference holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// `cus_…`.
    pub id: String,
    /// Our metadata (e.g. `app_user_id`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Metadata,
    /// Email, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// True for a deleted customer (Stripe then sends only id, object, deleted).
    #[serde(default, deserialize_with = "null_as_default")]
    pub deleted: bool,
}

impl HasId for Customer {
    fn id(&self) -> &str {
        &self.id
    }
}

impl StripeObject for Customer {
    const OBJECT: &'static str = "customer";
}
