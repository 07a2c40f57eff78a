//! The scheduled duties in `/metrics`, read at scrape time from `subsync_duties`: runs,
//! failures, when each last succeeded and where reconcile got to, so an alert can fire when
//! catch-up with Stripe stops working.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use subsync_duties::DutyStatus;
use subsync_metrics::{MetricsError, Registry};

type ByDuty<T> = Family<[(&'static str, String); 1], T>;

/// Registers the duty families in `registry` (a scrape-time registry).
pub(crate) fn register(registry: &Registry, duties: &[DutyStatus]) -> Result<(), MetricsError> {
    let runs = ByDuty::<Counter>::default();
    let failures = ByDuty::<Counter>::default();
    let success = ByDuty::<Gauge<f64, AtomicU64>>::default();
    let checkpoint = ByDuty::<Gauge>::default();
    let running = ByDuty::<Gauge>::default();
    for d in duties {
        let label = [("duty", d.name.clone())];
        runs.get_or_create(&label).inc_by(u64::try_from(d.runs).unwrap_or(0));
        failures.get_or_create(&label).inc_by(u64::try_from(d.failures).unwrap_or(0));
        running.get_or_create(&label).set(i64::from(d.leader.is_some()));
        if let Some(t) = d.last_success_at {
            success.get_or_create(&label).set(t.timestamp_millis() as f64 / 1000.0);
        }
        if let Some(mark) = d.checkpoint {
            checkpoint.get_or_create(&label).set(mark);
        }
    }
    // Counters: the `_total` suffix is added by the exposition format.
    registry.register("subsync_duty_runs", "Runs of each scheduled duty recorded (all processes).", runs)?;
    registry.register("subsync_duty_failures", "Failed runs of each scheduled duty recorded.", failures)?;
    let help = "When each duty last succeeded (unix seconds); alert when reconcile's is older than two intervals.";
    registry.register("subsync_duty_last_success_timestamp_seconds", help, success)?;
    let help = "Where each duty got to (reconcile: its high-water mark, unix seconds).";
    registry.register("subsync_duty_checkpoint_seconds", help, checkpoint)?;
    registry.register("subsync_duty_running", "1 while a process holds the duty's lease.", running)?;
    Ok(())
}
