//! `subsync groups running`: which subscription groups have a job running now, and which
//! worker holds each one.

use std::io::Write;

use serde_json::json;
use subsync_queue::Store;

use super::output::{CliError, OutputOptions};
use super::table::{Table, dash, time, write_json};

/// `subsync groups …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupsCommand {
    /// Groups (subscriptions) with a job running now, and which worker holds them.
    Running,
}

/// Runs a groups command, writing to `out`.
pub async fn run(store: &Store, cmd: GroupsCommand, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    match cmd {
        GroupsCommand::Running => running(store, out, opts).await,
    }
}

async fn running(store: &Store, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let groups = store.running_groups().await?;
    if opts.json {
        return write_json(out, &json!({ "groups": groups }));
    }
    if groups.is_empty() {
        writeln!(out, "no group is running a job")?;
        return Ok(());
    }
    let mut t = Table::new(&["GROUP", "QUEUE", "JOB", "WORKER", "STARTED (UTC)", "LEASE EXPIRES (UTC)"]);
    for g in &groups {
        t.row(vec![
            dash(&g.group_key),
            g.queue.clone(),
            g.job_id.to_string(),
            dash(g.lease_owner.as_deref().unwrap_or("")),
            time(g.started_at),
            time(g.lease_expires_at),
        ]);
    }
    t.write(out)?;
    Ok(())
}
