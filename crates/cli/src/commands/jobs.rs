//! `subsync jobs list|show|retry|cancel`: inspect and fix jobs. The rules (how an id is
//! resolved, what retry refuses, bulk chunking, the filter words) are the admin crate's
//! [`ops`] and [`query`], shared with the API and the dashboard; this module is the command
//! line and the terminal output.
//!
//! ```text
//! subsync jobs list --state dead --since 2h
//! subsync jobs show evt_1MqLx2…
//! subsync jobs retry 0193…  evt_1MqLx2…
//! subsync jobs retry --state dead --group sub_123 --yes --actor alice
//! ```
//!
//! `retry` and `cancel` are recorded in the audit log (by the admin crate's operations) under
//! `--actor` (`SUBSYNC_ACTOR`, default `$USER@hostname`).

use std::io::{BufRead, Write};

use chrono::Utc;
use serde_json::json;
use subsync_admin::AdminError;
use subsync_admin::ops::{self, Action};
use subsync_admin::query::{JobQuery, ListQuery};
use subsync_queue::{JobRecord, JobState, Store};

use super::output::{CliError, OutputOptions};
use super::table::{Table, clean, dash, time, truncate, write_json};
use crate::options::ActorArgs;

/// `subsync jobs …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List(ListArgs),
    /// Everything about one job, by job id or Stripe event id.
    Show(ShowArgs),
    /// Run jobs again: by id, or every job matching a filter (asks first unless --yes).
    Retry(ActionArgs),
    /// Stop pending or dead jobs from running: by id, or by filter (asks first unless --yes).
    Cancel(ActionArgs),
}

/// Filter flags shared by `list`, `retry` and `cancel`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only jobs in this state (pending, running, succeeded, dead, cancelled); repeatable.
    #[arg(long = "state", value_name = "STATE")]
    pub state: Vec<String>,
    /// Only this queue.
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Only this group (Stripe subscription id).
    #[arg(long, value_name = "SUB_ID")]
    pub group: Option<String>,
    /// Only this unique key (Stripe event id).
    #[arg(long, value_name = "EVT_ID")]
    pub key: Option<String>,
    /// Enqueued at or after: RFC 3339 or an age (15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Enqueued before: RFC 3339 or an age.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl FilterArgs {
    fn query(&self) -> JobQuery {
        JobQuery {
            state: self.state.clone(),
            queue: self.queue.clone(),
            group: self.group.clone(),
            key: self.key.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

/// `jobs list` arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// What to list.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Rows to show (1–1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Rows to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

/// `jobs show` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// Job id (UUID) or Stripe event id.
    #[arg(value_name = "ID_OR_EVENT_ID")]
    pub id: String,
    /// The queue, when one event id has jobs in several queues.
    #[arg(long)]
    pub queue: Option<String>,
}

/// `jobs retry` / `jobs cancel` arguments: ids, or a filter for a bulk action.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ActionArgs {
    /// Job ids or Stripe event ids.
    #[arg(value_name = "ID_OR_EVENT_ID", conflicts_with_all = ["state", "queue", "group", "key", "since", "until"])]
    pub ids: Vec<String>,
    /// Bulk: every job matching these flags (needs --state).
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Who is acting, for the audit log.
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// Runs a jobs command: results to `out`; confirmation questions and progress to `err`;
/// answers from `input`.
pub async fn run(
    store: &Store,
    cmd: JobsCommand,
    out: &mut impl Write,
    err: &mut impl Write,
    input: &mut impl BufRead,
    opts: OutputOptions,
) -> Result<(), CliError> {
    match cmd {
        JobsCommand::List(args) => list(store, args, out, opts).await,
        JobsCommand::Show(args) => show(store, args, out, opts).await,
        JobsCommand::Retry(args) => act(store, Action::Retry, args, out, err, input, opts).await,
        JobsCommand::Cancel(args) => act(store, Action::Cancel, args, out, err, input, opts).await,
    }
}

async fn list(store: &Store, args: ListArgs, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let list = ListQuery {
        query: args.filter.query(),
        limit: Some(args.limit.to_string()),
        offset: Some(args.offset.to_string()),
    };
    let filter = list.query.filter(Utc::now())?;
    let page = list.page()?;
    let jobs = store.list(&filter, page).await?;
    let total = store.count(&filter).await?;
    if opts.json {
        return write_json(out, &json!({ "jobs": jobs, "total": total, "limit": page.limit, "offset": page.offset }));
    }
    if jobs.is_empty() {
        writeln!(out, "no jobs match ({}); {total} in total", list.query.describe())?;
        return Ok(());
    }
    let mut t = Table::new(&["ID", "STATE", "QUEUE", "GROUP", "EVENT ID", "ATTEMPTS", "CREATED (UTC)", "LAST ERROR"]);
    for j in &jobs {
        t.row(vec![
            j.id.to_string(),
            j.state.to_string(),
            j.queue.clone(),
            dash(&j.group_key),
            dash(j.unique_key.as_deref().unwrap_or("")),
            format!("{}/{}", j.attempts, j.max_attempts),
            time(Some(j.created_at)),
            truncate(j.last_error.as_deref().unwrap_or(""), 60),
        ]);
    }
    t.write(out)?;
    let shown_to = page.offset + jobs.len() as u64;
    write!(out, "showing {}-{} of {}", page.offset + 1, shown_to, total)?;
    if shown_to < total {
        write!(out, " (next page: --offset {shown_to})")?;
    }
    writeln!(out)?;
    Ok(())
}

fn write_job(out: &mut impl Write, j: &JobRecord) -> std::io::Result<()> {
    let rows: [(&str, String); 12] = [
        ("id", j.id.to_string()),
        ("state", j.state.to_string()),
        ("queue", j.queue.clone()),
        ("event id", dash(j.unique_key.as_deref().unwrap_or(""))),
        ("group", dash(&j.group_key)),
        ("attempts", format!("{} of {}", j.attempts, j.max_attempts)),
        ("next run at", time(Some(j.run_at))),
        ("created", time(Some(j.created_at))),
        ("started", time(j.started_at)),
        ("finished", time(j.finished_at)),
        ("lease holder", dash(j.lease_owner.as_deref().unwrap_or(""))),
        ("lease expires", time(j.lease_expires_at)),
    ];
    for (k, v) in &rows {
        writeln!(out, "{:<14}{}", format!("{k}:"), clean(v, false))?;
    }
    match &j.last_error {
        Some(e) => {
            writeln!(out, "last error:")?;
            for line in clean(e, true).lines() {
                writeln!(out, "  {line}")?;
            }
        }
        None => writeln!(out, "last error:   -")?,
    }
    writeln!(out, "payload:")?;
    let payload = serde_json::to_string_pretty(&j.payload).unwrap_or_default();
    for line in clean(&payload, true).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

async fn show(store: &Store, args: ShowArgs, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let job = ops::resolve_job(store, &args.id, args.queue.as_deref()).await?;
    if opts.json {
        write_json(out, &job)?;
    } else {
        write_job(out, &job)?;
    }
    Ok(())
}

async fn act(
    store: &Store,
    action: Action,
    args: ActionArgs,
    out: &mut impl Write,
    err: &mut impl Write,
    input: &mut impl BufRead,
    opts: OutputOptions,
) -> Result<(), CliError> {
    let past = match action {
        Action::Retry => "retried",
        Action::Cancel => "cancelled",
    };
    let actor = args.actor.actor().map_err(|e| CliError::Usage(format!("--actor: {e}")))?;
    if !args.ids.is_empty() {
        return act_on_ids(store, action, &args.ids, &actor, out, opts, past).await;
    }
    let query = args.filter.query();
    if query.state.is_empty() {
        return Err(CliError::Usage(format!(
            "name the jobs to {0}: give job ids / event ids, or a filter with --state (e.g. `jobs {0} --state dead --since 2h`)",
            action.verb()
        )));
    }
    let filter = query.filter(Utc::now())?;
    let ids = ops::matching_ids(store, &filter).await?;
    if ids.is_empty() {
        // Recorded like the API's and the dashboard's: asked for, nothing matched.
        ops::apply_bulk(store, action, &ids, &query.describe(), &actor, |_, _, _| {}).await?;
        if opts.json {
            writeln!(out, "{}", json!({ past: 0, "matched": 0 }))?;
        } else {
            writeln!(out, "no jobs match {}; nothing to {}", query.describe(), action.verb())?;
        }
        return Ok(());
    }
    if !opts.yes {
        write!(err, "{} {} job(s) matching {}? [y/N] ", action.verb(), ids.len(), query.describe())?;
        err.flush()?;
        let mut answer = String::new();
        input.read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(CliError::NotConfirmed(format!(
                "nothing was {past} (answer `y`, or pass --yes to skip the question)"
            )));
        }
    }
    let mut progress_err = None;
    let changed = ops::apply_bulk(store, action, &ids, &query.describe(), &actor, |done, total, changed| {
        if let Err(e) = writeln!(err, "{past} {changed} … {done}/{total} processed") {
            progress_err.get_or_insert(e);
        }
    })
    .await?;
    if opts.json {
        writeln!(out, "{}", json!({ past: changed, "matched": ids.len() }))?;
    } else {
        writeln!(out, "{past} {changed} of {} matching job(s)", ids.len())?;
    }
    Ok(())
}

async fn act_on_ids(
    store: &Store,
    action: Action,
    ids: &[String],
    actor: &ops::Actor,
    out: &mut impl Write,
    opts: OutputOptions,
    past: &str,
) -> Result<(), CliError> {
    // Resolve everything first: one unknown id changes nothing (and is recorded as failed).
    let jobs = ops::resolve_for_action(store, action, ids, actor).await?;
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    for job in &jobs {
        // Each job is its own audit entry; a skipped one is recorded with the reason.
        if ops::act_on_job(store, action, job, actor).await? {
            done.push(job);
        } else {
            skipped.push(job);
        }
    }
    if opts.json {
        let skipped_json: Vec<_> = skipped.iter().map(|j| json!({ "id": j.id, "state": j.state })).collect();
        let done_ids: Vec<_> = done.iter().map(|j| j.id).collect();
        writeln!(out, "{}", json!({ past: done.len(), "ids": done_ids, "skipped": skipped_json }))?;
    } else {
        for j in &done {
            writeln!(
                out,
                "{past} {} ({} was {})",
                j.id,
                clean(j.unique_key.as_deref().unwrap_or("-"), false),
                j.state
            )?;
        }
        for j in &skipped {
            writeln!(out, "skipped {}: it is {}, {}", j.id, j.state, not_applicable(action, j.state))?;
        }
    }
    if done.is_empty() {
        return Err(AdminError::Conflict(format!(
            "nothing was {past}: {}",
            skipped.iter().map(|j| format!("{} is {}", j.id, j.state)).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    Ok(())
}

fn not_applicable(action: Action, state: JobState) -> &'static str {
    match (action, state) {
        (Action::Retry, JobState::Pending) => "already due to run",
        (Action::Retry, _) => "only dead, cancelled or backing-off jobs can be retried",
        (Action::Cancel, JobState::Running) => "a running job belongs to its worker until it finishes",
        (Action::Cancel, _) => "only pending or dead jobs can be cancelled",
    }
}
