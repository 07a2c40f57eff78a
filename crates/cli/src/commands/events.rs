//! `subsync events show|replay`: what Stripe sent, and a deliberate re-run of its sync (the
//! admin crate's `ops::replay_event`, which records it in the audit log under `--actor`).

use crate::commands::output::OutputOptions;
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;
use subsync_admin::ops;

use crate::options::{ActorArgs, Global};

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
        /// Who is acting, for the audit log.
        #[command(flatten)]
        actor: ActorArgs,
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
        EventsCommand::Replay { event_id, actor } => {
            let actor = actor.actor().map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
            let job_id = ops::replay_event(&store, &event_id, &actor).await?;
            if output.json {
                println!("{}", json!({ "event_id": event_id, "replay_job_id": job_id }));
            } else {
                println!("replay of {event_id} enqueued as job {job_id}");
            }
        }
    }
    Ok(())
}
