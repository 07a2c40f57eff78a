//! # subsync-metrics
//!
//! The one place that defines the process's Prometheus registry: a thin, shareable wrapper
//! around the Prometheus project's own Rust client, [`prometheus_client`], which owns the
//! metric types (counters, gauges, histograms, label families) and the text exposition.
//!
//! What the wrapper adds: registration through `&self` (the intake, the worker's job
//! observer and the admin server register into one `Arc<Registry>`), refusal of a name
//! registered twice (the client would expose it twice, which breaks the scrape), HELP texts
//! exposed exactly as written (the client ends every HELP with a full stop of its own), and
//! rendering in the Prometheus text format 0.0.4 that every Prometheus-compatible scraper
//! reads. Values computed at scrape time (the admin server's queue depth) go in a fresh
//! `Registry` rendered after the shared one.
//!
//! ```
//! use prometheus_client::metrics::counter::Counter;
//! use prometheus_client::metrics::family::Family;
//! use prometheus_client::metrics::histogram::Histogram;
//! use subsync_metrics::{Registry, SECONDS_BUCKETS};
//!
//! let registry = Registry::new();
//! let requests = Family::<[(&str, &str); 1], Counter>::default();
//! // prometheus-client adds `_total` to counters: this is `subsync_intake_requests_total`.
//! registry.register("subsync_intake_requests", "Webhook requests by outcome.", requests.clone())?;
//! requests.get_or_create(&[("outcome", "accepted")]).inc();
//! let latency = Histogram::new(SECONDS_BUCKETS.iter().copied());
//! registry.register("subsync_intake_seconds", "Webhook handling time.", latency.clone())?;
//! latency.observe(0.012);
//! let text = registry.render()?;
//! assert!(text.contains("subsync_intake_requests_total{outcome=\"accepted\"} 1\n"));
//! assert!(text.contains("subsync_intake_seconds_count 1\n"));
//! # Ok::<(), subsync_metrics::MetricsError>(())
//! ```
//!
//! Series are registered once (at start-up) and then updated through the metric handles
//! (cheap clones sharing one value), so updates never touch the registry's lock. A label
//! family shows no HELP or TYPE until its first series exists.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Metric;

/// The `Content-Type` of what [`Registry::render`] produces: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Buckets (seconds) for request and job durations: 1 ms to 60 s, the range between a
/// duplicate webhook answered from the index and a job that waits on a slow upstream.
pub const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Why a metric could not be registered or rendered. Registration errors are programming
/// mistakes: callers register at start-up and fail fast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The name is already registered: exposing a family twice breaks the whole scrape.
    #[error("metric `{0}` is already registered")]
    Duplicate(String),
    /// A counter named with `_total`: prometheus-client appends the suffix itself, so it
    /// would be exposed as `…_total_total`.
    #[error("counter `{0}` must be registered without `_total` (it is added on exposition)")]
    CounterSuffix(String),
    /// The text encoder failed (a metric's encoding returned an error).
    #[error("cannot encode the metrics")]
    Encode,
}

/// The set of metrics a process exports. Share one per process behind an `Arc`; the intake
/// and the admin server render it at `/metrics`.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    registry: prometheus_client::registry::Registry,
    names: HashSet<String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `metric` (a counter, gauge, histogram or a label family of one) as `name`.
    /// Counters are named without `_total`: the exposition appends it. `help` is exposed as
    /// written when it ends with a full stop (the client appends one to any that does not).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) -> Result<(), MetricsError> {
        if metric.metric_type() == MetricType::Counter && name.ends_with("_total") {
            return Err(MetricsError::CounterSuffix(name.to_string()));
        }
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !inner.names.insert(name.to_string()) {
            return Err(MetricsError::Duplicate(name.to_string()));
        }
        // prometheus-client appends "." to every HELP text: give it ours without the last one.
        inner.registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
        Ok(())
    }

    /// Every registered series in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, MetricsError> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        prometheus_text::encode(&mut out, &inner.registry).map_err(|_| MetricsError::Encode)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
