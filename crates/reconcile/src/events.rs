//! Catch-up of missed events: list `/v1/events` since the high-water mark and store each as
//! the intake would.
//!
//! The window starts at the `reconcile` duty's checkpoint minus [`OVERLAP`] (events become
//! visible in the listing a little after their `created` second; listing them twice costs
//! nothing but an `already_stored`), or, on a first run, [`DEFAULT_WINDOW`] ago; an explicit
//! [`Since`] overrides both. Stripe keeps events for 30 days, so a window reaching further is
//! cut there and the report says so. The new high-water mark is Stripe's `Date` at the first
//! page: everything created before it was listable then. It is stored only when every page
//! was read and stored; a run that fails midway leaves it, and the next run repeats the
//! window.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use subsync_duties::store as duties;
use subsync_eventlog::{Disposition, EventRecord};
use subsync_queue::Store;
use subsync_stripe::EventKind;
use subsync_stripe_api::{EventsFilter, StripeApi};

use crate::ReconcileError;

/// The duty whose checkpoint is the high-water mark (unix seconds).
pub const RECONCILE_DUTY: &str = "reconcile";

/// First run without `--since`: Stripe retries webhooks for three days, so that is what can
/// have been missed without anyone noticing.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3 * 86_400);

/// Stripe keeps events for 30 days; nothing older can be listed.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// How far before the high-water mark each run starts again.
pub const OVERLAP: Duration = Duration::from_secs(300);

/// Where a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now (`--since 10d`).
    Ago(Duration),
    /// At this instant (`--since 2026-11-20T00:00:00Z`).
    At(DateTime<Utc>),
}

/// How to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Start here instead of the high-water mark.
    pub since: Option<Since>,
    /// List and count, store nothing, leave the high-water mark.
    pub dry_run: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Events Stripe listed in the window.
    pub listed: u64,
    /// Events not stored before and stored now with a job (in a dry run: would be).
    pub new: u64,
    /// Events already in the log (received by webhook or an earlier run): nothing created.
    pub already_stored: u64,
    /// Events stored for the record without a job (nothing for the worker to do), or refused
    /// as malformed (logged with the reason).
    pub ignored: u64,
    /// Pages read.
    pub pages: u64,
    /// The window's start (unix seconds).
    pub from: i64,
    /// Whether the window was cut at Stripe's 30-day retention.
    pub cut_at_retention: bool,
    /// The high-water mark after this run (unix seconds); unchanged in a dry run.
    pub high_water_mark: Option<i64>,
    /// Nothing was stored.
    pub dry_run: bool,
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The window's start: explicit, else checkpoint minus overlap, else the default window;
/// never before Stripe's retention.
fn window_start(since: Option<Since>, checkpoint: Option<i64>, now: i64) -> Result<(i64, bool), ReconcileError> {
    let from = match (since, checkpoint) {
        (Some(Since::Ago(d)), _) => now.saturating_sub(seconds(d)),
        (Some(Since::At(t)), _) => t.timestamp(),
        (None, Some(mark)) => mark.saturating_sub(seconds(OVERLAP)),
        (None, None) => now - seconds(DEFAULT_WINDOW),
    };
    if from > now {
        return Err(ReconcileError::InvalidWindow(format!(
            "the window starts in the future ({}); give a time in the past",
            DateTime::<Utc>::from_timestamp(from, 0).map_or_else(|| from.to_string(), |t| t.to_rfc3339())
        )));
    }
    let oldest = now - seconds(MAX_WINDOW);
    Ok(if from < oldest { (oldest, true) } else { (from, false) })
}

/// Lists the handled events in the window and stores each as the intake would (see the
/// module docs). Safe at any time, from any machine, concurrently with webhooks and other
/// runs: the event id decides what is new, and the high-water mark only moves forward.
pub async fn reconcile(
    store: &Store,
    api: &StripeApi,
    options: ReconcileOptions,
) -> Result<ReconcileReport, ReconcileError> {
    let checkpoint = duties::get(store, RECONCILE_DUTY).await?.and_then(|d| d.checkpoint);
    let now = Utc::now().timestamp();
    let (from, cut_at_retention) = window_start(options.since, checkpoint, now)?;
    if cut_at_retention {
        tracing::warn!(from, "the window reaches past Stripe's 30-day event retention: cut there");
    }
    let filter = EventsFilter {
        types: EventKind::handled_event_types().map(str::to_owned).collect(),
        created_gte: Some(from),
        created_lt: None,
    };
    let mut report = ReconcileReport { from, cut_at_retention, dry_run: options.dry_run, ..Default::default() };
    let mut pager = api.pages("/v1/events", filter.query()?);
    let mut mark = None;
    while let Some(page) = pager.next().await? {
        report.pages += 1;
        mark.get_or_insert(page.date);
        let mut records = Vec::with_capacity(page.data.len());
        for raw in &page.data {
            report.listed += 1;
            match EventRecord::from_body(raw.get().as_bytes()) {
                Ok(record) => records.push(record),
                Err(e) => {
                    report.ignored += 1;
                    tracing::warn!(code = e.code(), error = %e, "Stripe listed an event subsync cannot store");
                }
            }
        }
        store_page(store, &records, options.dry_run, &mut report).await?;
        tracing::debug!(page = report.pages, listed = report.listed, new = report.new, "events page stored");
    }
    if let Some(mark) = mark.filter(|_| !options.dry_run) {
        duties::advance_checkpoint(store, RECONCILE_DUTY, mark).await?;
    }
    report.high_water_mark =
        if options.dry_run { checkpoint } else { duties::get(store, RECONCILE_DUTY).await?.and_then(|d| d.checkpoint) };
    Ok(report)
}

async fn store_page(
    store: &Store,
    records: &[EventRecord],
    dry_run: bool,
    report: &mut ReconcileReport,
) -> Result<(), ReconcileError> {
    if dry_run {
        for record in records {
            let known = subsync_eventlog::get(store, &record.event_id).await?.is_some();
            count(report, known, record.disposition);
        }
        return Ok(());
    }
    let refs: Vec<&EventRecord> = records.iter().collect();
    let stored = subsync_eventlog::store_batch(store, &refs).await?;
    for (record, stored) in records.iter().zip(&stored) {
        count(report, stored.duplicate, record.disposition);
        if !stored.duplicate && record.disposition == Disposition::Handled {
            tracing::info!(event_id = %record.event_id, event_type = %record.event_type, "missed event stored");
        }
    }
    Ok(())
}

fn count(report: &mut ReconcileReport, known: bool, disposition: Disposition) {
    match (known, disposition) {
        (true, _) => report.already_stored += 1,
        (false, Disposition::Handled) => report.new += 1,
        (false, _) => report.ignored += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_window_starts_at_the_mark_minus_overlap_or_three_days_back() {
        assert_eq!(window_start(None, None, NOW).unwrap(), (NOW - 3 * 86_400, false));
        assert_eq!(window_start(None, Some(NOW - 1000), NOW).unwrap(), (NOW - 1300, false));
        let ten_days = Some(Since::Ago(Duration::from_secs(10 * 86_400)));
        assert_eq!(window_start(ten_days, Some(NOW - 10), NOW).unwrap(), (NOW - 10 * 86_400, false));
    }

    #[test]
    fn the_window_is_cut_at_retention_and_never_starts_in_the_future() {
        let long = Some(Since::Ago(Duration::from_secs(45 * 86_400)));
        assert_eq!(window_start(long, None, NOW).unwrap(), (NOW - 30 * 86_400, true));
        let future = DateTime::<Utc>::from_timestamp(NOW + 60, 0).unwrap();
        assert!(matches!(window_start(Some(Since::At(future)), None, NOW), Err(ReconcileError::InvalidWindow(_))));
    }
}
