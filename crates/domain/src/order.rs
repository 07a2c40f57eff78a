//! The total order of subscription snapshots, shared by the state (which snapshot is
//! current) and the identity (which attribution is newest), so neither depends on the other.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::{SubscriptionStatus, UnixSeconds};

/// Total order of snapshots: (`created`, status tie-break rank, `event_id`). Field order is
/// the comparison order (derived `Ord`). See the [`crate::state`] module docs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    /// Event `created` (unix seconds).
    pub created: UnixSeconds,
    /// [`SubscriptionStatus::tie_break_rank`].
    pub status_rank: u8,
    /// Event id.
    pub event_id: String,
}

impl OrderKey {
    /// The key of a snapshot of `status` carried by event `event_id`, created at `created`.
    pub fn new(created: UnixSeconds, status: &SubscriptionStatus, event_id: &str) -> Self {
        Self { created, status_rank: status.tie_break_rank(), event_id: event_id.to_owned() }
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.event_id, self.created, self.status_rank)
    }
}
