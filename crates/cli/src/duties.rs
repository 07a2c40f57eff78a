//! The scheduled duties `serve` and `worker` run (`subsync-duties`): reconcile with Stripe's
//! API, and prune past retention. Every process runs the schedule; one at a time runs each
//! duty, so adding workers never multiplies API calls or deletes.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Arg, Args};
use subsync_duties::{Duty, DutyTask};
use subsync_queue::Store;
use subsync_reconcile::ReconcileOptions;
use subsync_stripe_api::StripeApi;

use crate::options::{flag_name, invalid};

/// The duty that deletes finished jobs and their events past retention.
pub const PRUNE_DUTY: &str = "prune";

/// How often the duties run.
#[derive(Debug, Clone, Args)]
pub struct DutyArgs {
    /// How often to catch up missed events from Stripe's API (e.g. 30m, 1h; 0 = never).
    /// Default: every hour when STRIPE_API_KEY is set.
    #[arg(long, env = "SUBSYNC_RECONCILE_EVERY", value_parser = Interval)]
    pub reconcile_every: Option<Duration>,
    /// How often to delete finished jobs and events past the retention window (0 = never;
    /// then run `subsync prune` yourself).
    #[arg(long, env = "SUBSYNC_PRUNE_EVERY", default_value = "1d", value_parser = Interval)]
    pub prune_every: Duration,
}

/// An interval flag: `90s`, `15m`, `1h`, `1d`, or `0` for never.
#[derive(Debug, Clone, Copy)]
pub struct Interval;

impl TypedValueParser for Interval {
    type Value = Duration;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&Arg>, value: &OsStr) -> Result<Duration, clap::Error> {
        let text = value.to_string_lossy();
        parse_interval(&text).ok_or_else(|| {
            invalid(
                cmd,
                format!("{} `{text}` is not an interval: use e.g. 90s, 15m, 1h, 1d, or 0 for never", flag_name(arg)),
            )
        })
    }
}

/// `90s`, `15m`, `1h`, `1d`, `0`.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }?;
    Some(Duration::from_secs(secs))
}

/// This process's name in the duty table: host, pid and a random tag (a restarted process is
/// a new holder).
pub fn holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", host.unwrap_or_else(|| "localhost".into()), std::process::id(), &tag[..8])
}

/// The duties this process schedules, given its store, retention and Stripe client.
pub fn duties(args: &DutyArgs, store: &Store, retention: Duration, api: Option<StripeApi>) -> Vec<Duty> {
    let mut out = Vec::new();
    let reconcile_every = match (&api, args.reconcile_every) {
        (Some(_), None) => Duration::from_secs(3600),
        (_, Some(every)) => every,
        (None, None) => Duration::ZERO,
    };
    match api {
        Some(api) if !reconcile_every.is_zero() => {
            let store = store.clone();
            let task: DutyTask = Arc::new(move |_run| {
                let (store, api) = (store.clone(), api.clone());
                Box::pin(async move {
                    let report = subsync_reconcile::reconcile(&store, &api, ReconcileOptions::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::to_value(report).map_err(|e| e.to_string())
                })
            });
            out.push(Duty::new(subsync_reconcile::RECONCILE_DUTY, reconcile_every, task));
            tracing::info!(every = ?reconcile_every, "reconcile with Stripe's API scheduled");
        }
        None if !reconcile_every.is_zero() => {
            tracing::warn!("--reconcile-every is set but STRIPE_API_KEY is not: reconcile is off");
        }
        _ => {}
    }
    if !args.prune_every.is_zero() {
        let store = store.clone();
        let task: DutyTask = Arc::new(move |_run| {
            let store = store.clone();
            Box::pin(async move {
                let retention = chrono::Duration::from_std(retention).map_err(|e| e.to_string())?;
                let before = chrono::Utc::now() - retention;
                let jobs = store.prune_before(before, false).await.map_err(|e| e.to_string())?;
                let events = subsync_eventlog::prune(&store, before).await.map_err(|e| e.to_string())?;
                let notifications = subsync_outbox::prune(&store, before).await.map_err(|e| e.to_string())?;
                Ok(serde_json::json!({
                    "jobs_deleted": jobs, "events_deleted": events, "notifications_deleted": notifications, "before": before
                }))
            })
        });
        out.push(Duty::new(PRUNE_DUTY, args.prune_every, task));
    }
    out
}

/// Runs `duties` until `stop` says so; the handles end after shutdown.
pub fn spawn(
    store: &Store,
    duties: Vec<Duty>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let holder = holder();
    duties
        .into_iter()
        .map(|duty| {
            let (store, holder) = (store.clone(), holder.clone());
            let stop = crate::shutdown::wait(stop.clone());
            tokio::spawn(subsync_duties::run_every(store, duty, holder, stop))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_in_every_unit_and_zero_means_never() {
        assert_eq!(parse_interval("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_interval("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_interval("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_interval(" 2d "), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_interval("0"), Some(Duration::ZERO));
        for bad in ["", "h", "1", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }
}
