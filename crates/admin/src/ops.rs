//! The operator actions themselves, shared by the API, the dashboard and the CLI so all three
//! behave the same: how an id is resolved, what "retry" refuses, how bulk work is chunked, how
//! stats are computed. The actions that change jobs (`actions.rs`) take the [`Actor`] and
//! write their own audit entry, so no face of subsync can forget it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use subsync_queue::{JobFilter, JobId, JobRecord, JobState, Page, StateCount, Store};

use crate::error::{AdminError, no_such_job};

mod actions;

pub use crate::audit::Actor;
pub use actions::{Action, act_on_job, act_on_one, apply_bulk, replay_event, resolve_for_action};

/// Ids are retried or cancelled this many at a time, so a bulk action over 100 000 dead jobs
/// shows progress and never holds one huge write transaction (SQLite has a single writer).
pub const BULK_CHUNK: usize = 500;

/// Finds a job by UUID or by unique key (the Stripe event id), optionally within one queue.
/// An event id present in several queues is ambiguous and says which queues.
pub async fn resolve_job(store: &Store, id_or_key: &str, queue: Option<&str>) -> Result<JobRecord, AdminError> {
    let id_or_key = id_or_key.trim();
    if id_or_key.is_empty() {
        return Err(AdminError::InvalidInput("a job id or event id is required".into()));
    }
    if let Ok(id) = JobId::parse_str(id_or_key)
        && let Some(job) = store.get(id).await?
        && queue.is_none_or(|q| q == job.queue)
    {
        return Ok(job);
    }
    let filter =
        JobFilter { unique_key: Some(id_or_key.to_string()), queue: queue.map(String::from), ..JobFilter::default() };
    let mut found = store.list(&filter, Page { limit: 10, offset: 0 }).await?;
    match found.len() {
        0 => Err(no_such_job(id_or_key)),
        1 => Ok(found.remove(0)),
        _ => {
            let queues: Vec<&str> = found.iter().map(|j| j.queue.as_str()).collect();
            Err(AdminError::Conflict(format!(
                "event id `{id_or_key}` matches jobs in several queues ({}); name the queue or use the job id",
                queues.join(", ")
            )))
        }
    }
}

/// Every job id matching `filter`, newest first: the snapshot a bulk action works through,
/// so what is changed is what the operator was shown and confirmed.
pub async fn matching_ids(store: &Store, filter: &JobFilter) -> Result<Vec<JobId>, AdminError> {
    let mut ids = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = store.list(filter, Page { limit: Page::MAX_LIMIT, offset }).await?;
        let n = page.len();
        ids.extend(page.into_iter().map(|j| j.id));
        if n < Page::MAX_LIMIT as usize {
            break;
        }
        offset += n as u64;
    }
    Ok(ids)
}

/// Finished jobs over one recent window.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Window length in minutes.
    pub window_minutes: u32,
    /// Jobs that succeeded in the window.
    pub succeeded: u64,
    /// Jobs that went dead in the window.
    pub dead: u64,
    /// (succeeded + dead) per second.
    pub per_second: f64,
}

/// The numbers an operator looks at first.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Jobs per queue and state.
    pub counts: Vec<StateCount>,
    /// Jobs per state over every queue (every state present, zeros included).
    pub totals: BTreeMap<String, u64>,
    /// How long the oldest due job has waited, in seconds (0 when nothing is due).
    pub oldest_due_age_seconds: f64,
    /// Groups (subscriptions) with a job running now.
    pub running_groups: usize,
    /// Finished jobs per second over the last 1, 5 and 15 minutes.
    pub throughput: Vec<Throughput>,
    /// False when more than [`THROUGHPUT_SCAN_LIMIT`] recently created jobs finished, so the
    /// throughput figures are a lower bound.
    pub throughput_exact: bool,
}

/// The queue has no filter on `finished_at`, so throughput is computed from the finished
/// jobs *created* in the last [`THROUGHPUT_HORIZON_HOURS`] hours, newest first, reading at
/// most this many rows.
pub const THROUGHPUT_SCAN_LIMIT: usize = 10_000;

/// See [`THROUGHPUT_SCAN_LIMIT`]: long enough for the default retry schedule (about 2.5
/// hours from first to twelfth attempt); jobs retried by hand long after they were created
/// are not counted.
pub const THROUGHPUT_HORIZON_HOURS: i64 = 24;

const WINDOWS: [u32; 3] = [1, 5, 15];

/// Computes [`Stats`] from the store.
pub async fn stats(store: &Store, now: DateTime<Utc>) -> Result<Stats, AdminError> {
    let counts = store.counts().await?;
    let mut totals: BTreeMap<String, u64> = JobState::ALL.iter().map(|s| (s.to_string(), 0)).collect();
    for c in &counts {
        *totals.entry(c.state.to_string()).or_default() += c.count;
    }
    let oldest = store.oldest_due_age(None).await?;
    let running_groups = store.running_groups().await?.len();
    let (throughput, throughput_exact) = throughput(store, now).await?;
    Ok(Stats {
        counts,
        totals,
        oldest_due_age_seconds: oldest.as_secs_f64(),
        running_groups,
        throughput,
        throughput_exact,
    })
}

async fn throughput(store: &Store, now: DateTime<Utc>) -> Result<(Vec<Throughput>, bool), AdminError> {
    let filter = JobFilter {
        states: vec![JobState::Succeeded, JobState::Dead],
        created_after: Some(now - Duration::hours(THROUGHPUT_HORIZON_HOURS)),
        ..JobFilter::default()
    };
    let mut finished: Vec<(DateTime<Utc>, JobState)> = Vec::new();
    let mut offset = 0u64;
    let mut exact = true;
    loop {
        let page = store.list(&filter, Page { limit: Page::MAX_LIMIT, offset }).await?;
        let n = page.len();
        finished.extend(page.into_iter().filter_map(|j| j.finished_at.map(|at| (at, j.state))));
        offset += n as u64;
        if n < Page::MAX_LIMIT as usize {
            break;
        }
        if offset as usize >= THROUGHPUT_SCAN_LIMIT {
            exact = false;
            break;
        }
    }
    let windows = WINDOWS
        .iter()
        .map(|&minutes| {
            let since = now - Duration::minutes(i64::from(minutes));
            let in_window = finished.iter().filter(|(at, _)| *at >= since && *at <= now);
            let (mut succeeded, mut dead) = (0u64, 0u64);
            for (_, state) in in_window {
                match state {
                    JobState::Succeeded => succeeded += 1,
                    _ => dead += 1,
                }
            }
            Throughput {
                window_minutes: minutes,
                succeeded,
                dead,
                per_second: (succeeded + dead) as f64 / (f64::from(minutes) * 60.0),
            }
        })
        .collect();
    Ok((windows, exact))
}

/// "3m 12s" style ages for tables and tiles.
pub fn human_age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::human_age;

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(0.2), "0s");
        assert_eq!(human_age(75.0), "1m 15s");
        assert_eq!(human_age(7260.0), "2h 1m");
        assert_eq!(human_age(90_000.0), "1d 1h");
        assert_eq!(human_age(-5.0), "0s");
    }
}
