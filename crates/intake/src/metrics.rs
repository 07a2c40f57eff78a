//! The intake's Prometheus series, registered once at start-up.

use std::sync::Arc;

use subsync_metrics::{Counter, Histogram, MetricsError, Registry, SECONDS_BUCKETS};

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
    outcomes: Vec<(&'static str, Arc<Counter>)>,
    /// Time to verify, store and answer one webhook.
    pub latency: Arc<Histogram>,
    /// Webhooks per commit (how well group commit works).
    pub batch_size: Arc<Histogram>,
}

impl IntakeMetrics {
    /// Registers the series in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let outcomes = OUTCOMES
            .iter()
            .map(|outcome| {
                registry
                    .counter("subsync_intake_requests_total", "Webhook requests by outcome.", &[("outcome", outcome)])
                    .map(|c| (*outcome, c))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            outcomes,
            latency: registry.histogram(
                "subsync_intake_request_seconds",
                "Time to verify, store and answer one webhook.",
                &[],
                SECONDS_BUCKETS,
            )?,
            batch_size: registry.histogram(
                "subsync_intake_commit_batch_size",
                "Webhooks stored per database commit.",
                &[],
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
            )?,
        })
    }

    /// Counts one request with `outcome` (one of [`OUTCOMES`]).
    pub fn count(&self, outcome: &str) {
        if let Some((_, counter)) = self.outcomes.iter().find(|(o, _)| *o == outcome) {
            counter.inc();
        }
    }
}
