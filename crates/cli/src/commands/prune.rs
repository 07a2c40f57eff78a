//! `subsync prune`: delete finished jobs, their events and delivered notifications past the
//! retention window. Event ids inside the window stay, so a late Stripe redelivery is still
//! recognised; undelivered notifications are never deleted.

use crate::commands::output::OutputOptions;
use anyhow::Result;

use crate::options::{Global, RetentionArgs};

/// Runs the prune once.
pub async fn run(global: &Global, retention: &RetentionArgs, include_dead: bool, output: &OutputOptions) -> Result<()> {
    let store = global.connect_migrated().await?;
    let days = retention.retention_days;
    let retention = chrono::Duration::from_std(retention.window())?;
    let before = chrono::Utc::now() - retention;
    let jobs = store.prune_before(before, include_dead).await?;
    let events = subsync_eventlog::prune(&store, before).await?;
    let notifications = subsync_outbox::prune(&store, before).await?;
    if output.json {
        let summary = serde_json::json!({
            "jobs_deleted": jobs, "events_deleted": events, "notifications_deleted": notifications, "before": before
        });
        println!("{summary}");
    } else {
        println!(
            "deleted {jobs} finished jobs, {events} events and {notifications} delivered notifications older than {} ({} days){}",
            before.format("%Y-%m-%d %H:%M UTC"),
            days,
            if include_dead { "" } else { "; dead jobs kept (use --include-dead)" }
        );
    }
    Ok(())
}
