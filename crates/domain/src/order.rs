//! The total order of subscription snapshots, shared by the state (which snapshot is
//! current) and the identity (which attribution is newest), so neither depends on the other.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::{SubscriptionStatus, UnixSeconds};
use crate::input::Snapshot;

/// Total order of snapshots: (`created`, fetched, status tie-break rank, `event_id`). Field
/// order is the comparison order (derived `Ord`). See the [`crate::state`] module docs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    /// Event `created`, or Stripe's `Date` for a fetched snapshot (unix seconds).
    pub created: UnixSeconds,
    /// `None` for a snapshot an event carried; for one fetched from Stripe's API, our clock at
    /// the fetch (unix nanoseconds). Within one second a fetched snapshot beats any event's
    /// (it is Stripe's answer to "what is it now?"), and a later fetch beats an earlier one.
    /// Absent in states stored before fetching existed, which read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<i64>,
    /// [`SubscriptionStatus::tie_break_rank`].
    pub status_rank: u8,
    /// Event id.
    pub event_id: String,
}

impl OrderKey {
    /// The key of a snapshot of `status` carried by event `event_id`, created at `created`.
    pub fn new(created: UnixSeconds, status: &SubscriptionStatus, event_id: &str) -> Self {
        Self { created, fetched_at: None, status_rank: status.tie_break_rank(), event_id: event_id.to_owned() }
    }

    /// The key of `snapshot` (fetched or carried by an event).
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            created: snapshot.event_created,
            fetched_at: snapshot.fetched_at,
            status_rank: snapshot.status.tie_break_rank(),
            event_id: snapshot.event_id.clone(),
        }
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.event_id, self.created, self.status_rank)?;
        if self.fetched_at.is_some() {
            write!(f, " (fetched from Stripe)")?;
        }
        Ok(())
    }
}
