//! The adapter that lets the admin surface read entitlements (the worker crate's), without
//! either crate depending on the other.

use subsync_admin::{BoxFuture, EntitlementsView, ViewError};
use subsync_queue::Store;

/// Current entitlements, read through the worker crate.
pub struct Entitlements(pub Store);

fn view_error(e: impl std::fmt::Display) -> ViewError {
    ViewError::Failed(e.to_string())
}

impl EntitlementsView for Entitlements {
    fn list(&self, limit: u32, offset: u64) -> BoxFuture<'_, Result<Vec<serde_json::Value>, ViewError>> {
        Box::pin(async move {
            let rows = subsync_worker::entitlements::list(&self.0, limit, offset).await.map_err(view_error)?;
            rows.into_iter().map(|r| serde_json::to_value(r).map_err(view_error)).collect()
        })
    }

    fn get<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>, ViewError>> {
        Box::pin(async move {
            let row = subsync_worker::entitlements::get(&self.0, user_id).await.map_err(view_error)?;
            row.map(|r| serde_json::to_value(r).map_err(view_error)).transpose()
        })
    }

    fn unmapped_prices(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'_, Result<Vec<serde_json::Value>, ViewError>> {
        Box::pin(async move {
            let rows = subsync_worker::entitlements::unmapped_prices(&self.0, since).await.map_err(view_error)?;
            rows.into_iter().map(|r| serde_json::to_value(r).map_err(view_error)).collect()
        })
    }

    fn support<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<serde_json::Value>, ViewError>> {
        Box::pin(async move {
            let view = subsync_worker::support(&self.0, key, chrono::Utc::now()).await.map_err(view_error)?;
            view.map(|v| serde_json::to_value(v).map_err(view_error)).transpose()
        })
    }
}
