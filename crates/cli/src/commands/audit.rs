//! `subsync audit list`: who did what to which jobs, newest first, read from the audit log
//! the admin crate's operations write (the same listing as `GET /api/audit` and the
//! dashboard's audit page, with the same filter words).
//!
//! ```text
//! subsync audit list --since 24h
//! subsync audit list --actor alice --limit 200 --json
//! ```

use std::io::Write;

use chrono::Utc;
use serde_json::json;
use subsync_admin::audit::{self, AuditQuery};
use subsync_queue::Store;

use super::output::{CliError, OutputOptions};
use super::table::{Table, clean, dash, time, truncate, write_json};

/// `subsync audit …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Operator actions (retry, cancel, bulk, replay, dashboard sign-in/out), newest first.
    List(ListArgs),
}

/// `audit list` arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Recorded at or after: an age (15m, 2h, 7d) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION|TIMESTAMP")]
    pub since: Option<String>,
    /// Only this actor (exact name).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Entries to show (1-1000).
    #[arg(long, value_name = "N", default_value_t = audit::DEFAULT_LIST_LIMIT)]
    pub limit: u32,
}

/// Runs an audit command, writing to `out`.
pub async fn run(store: &Store, cmd: AuditCommand, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    match cmd {
        AuditCommand::List(args) => list(store, args, out, opts).await,
    }
}

async fn list(store: &Store, args: ListArgs, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let query = AuditQuery { since: args.since, actor: args.actor, limit: Some(args.limit.to_string()) };
    let filter = query.filter(Utc::now())?;
    let entries = audit::list(store, &filter).await?;
    if opts.json {
        return write_json(out, &json!({ "entries": entries, "limit": filter.limit }));
    }
    if entries.is_empty() {
        writeln!(out, "no audit entries match")?;
        return Ok(());
    }
    let mut t = Table::new(&["AT (UTC)", "ACTOR", "VIA", "ACTION", "TARGET", "JOBS", "RESULT", "DETAIL"]);
    for e in &entries {
        let result = match &e.error {
            None => "ok".to_string(),
            Some(error) => format!("error: {}", truncate(error, 60)),
        };
        t.row(vec![
            time(Some(e.at)),
            clean(&e.actor, false),
            e.via.clone(),
            e.action.clone(),
            dash(&truncate(&e.target, 60)),
            e.jobs.to_string(),
            result,
            dash(&truncate(e.detail.as_deref().unwrap_or(""), 60)),
        ]);
    }
    t.write(out)?;
    if entries.len() as u64 == u64::from(filter.limit) {
        writeln!(out, "showing the newest {}; use --limit or --since for more", filter.limit)?;
    }
    Ok(())
}
