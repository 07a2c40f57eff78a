//! `subsync stats`: queue health at a glance (jobs per state, oldest due job, running groups,
//! throughput), computed by the admin crate's [`ops::stats`] like the dashboard's tiles.

use std::io::Write;

use chrono::Utc;
use subsync_admin::ops::{self, human_age};
use subsync_queue::{JobState, Store};

use super::output::{CliError, OutputOptions};
use super::table::{Table, write_json};

/// Runs `subsync stats`, writing to `out`.
pub async fn run(store: &Store, out: &mut impl Write, opts: OutputOptions) -> Result<(), CliError> {
    let s = ops::stats(store, Utc::now()).await?;
    if opts.json {
        return write_json(out, &s);
    }
    let mut headers = vec!["QUEUE"];
    headers.extend(JobState::ALL.iter().map(|s| s.as_str()));
    let upper: Vec<String> = headers.iter().map(|h| h.to_ascii_uppercase()).collect();
    let upper_refs: Vec<&str> = upper.iter().map(String::as_str).collect();
    let mut t = Table::new(&upper_refs);
    let mut queues: Vec<&str> = s.counts.iter().map(|c| c.queue.as_str()).collect();
    queues.dedup();
    for q in &queues {
        let mut row = vec![q.to_string()];
        for state in JobState::ALL {
            let n = s.counts.iter().find(|c| c.queue == *q && c.state == state).map_or(0, |c| c.count);
            row.push(n.to_string());
        }
        t.row(row);
    }
    let mut total_row = vec!["(all)".to_string()];
    total_row.extend(JobState::ALL.iter().map(|st| s.totals.get(st.as_str()).copied().unwrap_or(0).to_string()));
    t.row(total_row);
    t.write(out)?;
    writeln!(out)?;
    writeln!(out, "oldest due job waiting: {}", human_age(s.oldest_due_age_seconds))?;
    writeln!(out, "running groups:         {}", s.running_groups)?;
    let rates: Vec<String> = s
        .throughput
        .iter()
        .map(|t| format!("{}m {:.2}/s ({} ok, {} dead)", t.window_minutes, t.per_second, t.succeeded, t.dead))
        .collect();
    writeln!(out, "finished jobs:          {}", rates.join("  "))?;
    if !s.throughput_exact {
        writeln!(
            out,
            "note: more than {} jobs finished recently; throughput is a lower bound",
            ops::THROUGHPUT_SCAN_LIMIT
        )?;
    }
    Ok(())
}
