//! `subsync events show|replay`: what Stripe sent, and a deliberate re-run of its sync.

use crate::commands::output::OutputOptions;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use subsync_eventlog::{Disposition, SyncJob};

use crate::options::Global;

/// Event commands.
#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Show a stored event (payload and its job).
    Show {
        /// The Stripe event id (`evt_…`).
        event_id: String,
    },
    /// Run an event's sync again, as a new job recorded as a replay. It is kept apart from
    /// the unique-key deduplication, so it runs even though the event was seen before.
    Replay {
        /// The Stripe event id (`evt_…`).
        event_id: String,
    },
}

/// Runs an events command.
pub async fn run(global: &Global, cmd: EventsCommand, output: &OutputOptions) -> Result<()> {
    let store = global.connect_migrated().await?;
    match cmd {
        EventsCommand::Show { event_id } => {
            let Some(event) = subsync_eventlog::get(&store, &event_id).await? else {
                bail!("no stored event with id `{event_id}`");
            };
            if output.json {
                println!("{}", serde_json::to_string_pretty(&event)?);
            } else {
                println!("event        {}", event.event_id);
                println!("type         {}", event.event_type);
                println!("created      {}", event.created.map(|c| c.to_string()).unwrap_or_else(|| "-".into()));
                println!("livemode     {}", event.livemode);
                println!("api version  {}", event.api_version.as_deref().unwrap_or("-"));
                println!("group        {}", if event.group_key.is_empty() { "-" } else { &event.group_key });
                println!("disposition  {}", event.disposition);
                println!("job          {}", event.job_id.map(|id| id.to_string()).unwrap_or_else(|| "-".into()));
                println!("payload\n{}", serde_json::to_string_pretty(&serde_json::to_value(&event)?["payload"])?);
            }
        }
        EventsCommand::Replay { event_id } => {
            let Some(event) = subsync_eventlog::get(&store, &event_id).await? else {
                bail!("no stored event with id `{event_id}`");
            };
            if event.disposition != Disposition::Handled {
                bail!("event `{event_id}` is {}: there is no sync to replay", event.disposition);
            }
            let job = SyncJob::replay(&event.event_id, &event.group_key);
            let outcome = store.enqueue_one(job).await.context("enqueueing the replay")?;
            if output.json {
                println!("{}", json!({ "event_id": event_id, "replay_job_id": outcome.job_id() }));
            } else {
                println!("replay of {event_id} enqueued as job {}", outcome.job_id());
            }
        }
    }
    Ok(())
}
