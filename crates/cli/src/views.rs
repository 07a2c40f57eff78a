//! Adapters that let the admin surface read what other crates store, without those crates
//! depending on the admin crate.

use subsync_admin::{BoxFuture, EventsView, ViewError};
use subsync_queue::Store;

/// Stored Stripe events, read through the intake crate.
pub struct StoredEvents(pub Store);

impl EventsView for StoredEvents {
    fn get<'a>(&'a self, event_id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>, ViewError>> {
        Box::pin(async move {
            let event = subsync_intake::events::get(&self.0, event_id).await.map_err(|e| {
                if e.is_transient() { ViewError::Unavailable(e.to_string()) } else { ViewError::Failed(e.to_string()) }
            })?;
            event
                .map(|e| serde_json::to_value(e).map_err(|e| ViewError::Failed(e.to_string())))
                .transpose()
        })
    }
}
