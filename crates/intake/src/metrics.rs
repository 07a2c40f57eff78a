//! The intake's Prometheus series, registered once at start-up.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use subsync_metrics::{MetricsError, Registry, SECONDS_BUCKETS};

/// Outcome labels of `subsync_intake_requests_total`.
pub const OUTCOMES: &[&str] = &[
    "accepted",
    "duplicate",
    "rejected_signature",
    "rejected_payload",
    "too_large",
    "unsupported_media_type",
    "unavailable",
];

/// Handles to the intake's series.
#[derive(Debug, Clone)]
pub struct IntakeMetrics {
    outcomes: Vec<(&'static str, Counter)>,
    /// Time to verify, store and answer one webhook.
    pub latency: Histogram,
    /// Webhooks per commit (how well group commit works).
    pub batch_size: Histogram,
}

impl IntakeMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let requests = Family::<[(&'static str, &'static str); 1], Counter>::default();
        // Exposed as `subsync_intake_requests_total`: the client appends `_total`.
        registry.register("subsync_intake_requests", "Webhook requests by outcome.", requests.clone())?;
        let outcomes =
            OUTCOMES.iter().map(|outcome| (*outcome, requests.get_or_create_owned(&[("outcome", outcome)]))).collect();
        let latency = Histogram::new(SECONDS_BUCKETS.iter().copied());
        registry.register(
            "subsync_intake_request_seconds",
            "Time to verify, store and answer one webhook.",
            latency.clone(),
        )?;
        let batch_size = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
        registry.register(
            "subsync_intake_commit_batch_size",
            "Webhooks stored per database commit.",
            batch_size.clone(),
        )?;
        Ok(Self { outcomes, latency, batch_size })
    }

    /// Counts one request with `outcome` (one of [`OUTCOMES`]).
    pub fn count(&self, outcome: &str) {
        if let Some((_, counter)) = self.outcomes.iter().find(|(o, _)| *o == outcome) {
            counter.inc();
        }
    }
}
