//! # subsync-metrics
//!
//! A tiny Prometheus registry: counters, gauges and fixed-bucket histograms, rendered in the
//! text exposition format 0.0.4 that every Prometheus-compatible scraper reads.
//!
//! Why our own: subsync needs a dozen series (intake outcomes, duplicates, latency; worker
//! enqueued/started/succeeded/failed/dead and job duration; queue depth at scrape time). The
//! `prometheus` and `metrics` crates bring macros, global state and a dependency tree for
//! that; this crate is std only, lock-free on the hot path (atomics), and its output format
//! is pinned by unit tests.
//!
//! ```
//! use subsync_metrics::{Registry, SECONDS_BUCKETS};
//! let registry = Registry::new();
//! let accepted = registry
//!     .counter("subsync_intake_requests_total", "Webhook requests by outcome.", &[("outcome", "accepted")])
//!     .expect("valid metric");
//! accepted.inc();
//! let latency = registry
//!     .histogram("subsync_intake_seconds", "Webhook handling time.", &[], SECONDS_BUCKETS)
//!     .expect("valid metric");
//! latency.observe(0.012);
//! let text = registry.render();
//! assert!(text.contains("subsync_intake_requests_total{outcome=\"accepted\"} 1\n"));
//! ```
//!
//! Series are registered once (at start-up) and then updated through the returned `Arc`
//! handles, so updates never touch the registry's lock. Registering the same name and labels
//! again returns the existing handle, so two components may share a series safely.

#![forbid(unsafe_code)]

mod format;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use format::{escape_help, escape_label_value, format_value};

/// Buckets (seconds) for request and job durations: 1 ms to 60 s, the range between a
/// duplicate webhook answered from the index and a job that waits on a slow upstream.
pub const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Why a metric could not be registered. Always a programming mistake (a bad name, the same
/// name used for two kinds): callers register at start-up and fail fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsError {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidName(String),
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`, is reserved (`__…`, `le` on a
    /// histogram), or appears twice.
    InvalidLabel(String),
    /// The name is already registered with another kind, help text, label names or buckets.
    Conflict(String),
    /// Histogram buckets must be finite, strictly increasing and non-empty.
    InvalidBuckets(String),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::InvalidName(n) => write!(f, "invalid metric name `{n}`"),
            MetricsError::InvalidLabel(m) => write!(f, "invalid label: {m}"),
            MetricsError::Conflict(m) => write!(f, "metric conflict: {m}"),
            MetricsError::InvalidBuckets(m) => write!(f, "invalid histogram buckets: {m}"),
        }
    }
}

impl std::error::Error for MetricsError {}

/// A monotonically increasing count (requests, jobs finished). Resets only with the process;
/// Prometheus' `rate()` handles that.
#[derive(Debug, Default)]
pub struct Counter {
    value: AtomicU64,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value, for tests and logs.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (jobs in flight, queue depth). Stored as `f64` bits in an
/// atomic so updates need no lock.
#[derive(Debug, Default)]
pub struct Gauge {
    bits: AtomicU64,
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` (may be negative).
    pub fn add(&self, delta: f64) {
        add_f64(&self.bits, delta);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A distribution over fixed buckets (durations in seconds). Buckets are fixed at
/// registration so every process exports the same `le` values and they aggregate.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; the last slot counts values above every bound.
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation. NaN is ignored: it would poison the sum forever.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let slot = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(self.bounds.len());
        if let Some(counter) = self.counts.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        add_f64(&self.sum_bits, value);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of all observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Ordering::Relaxed))
    }
}

fn add_f64(bits: &AtomicU64, delta: f64) {
    // A compare-and-swap loop: there is no atomic float add in std.
    let mut current = bits.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + delta).to_bits();
        match bits.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug)]
enum Series {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    buckets: Vec<f64>,
    series: Vec<(Labels, Series)>,
}

/// The set of metrics a process exports. Share one per process behind an `Arc`; the admin
/// server renders it at `/metrics`.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<Vec<Family>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name` with these label values, created on first use.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Arc<Counter>, MetricsError> {
        let series =
            self.register(name, help, Kind::Counter, labels, &[], || Series::Counter(Arc::new(Counter::default())))?;
        match series {
            SeriesRef::Counter(c) => Ok(c),
            _ => Err(conflict_kind(name)),
        }
    }

    /// The gauge `name` with these label values, created on first use.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Arc<Gauge>, MetricsError> {
        let series =
            self.register(name, help, Kind::Gauge, labels, &[], || Series::Gauge(Arc::new(Gauge::default())))?;
        match series {
            SeriesRef::Gauge(g) => Ok(g),
            _ => Err(conflict_kind(name)),
        }
    }

    /// The histogram `name` with these label values and bucket upper bounds, created on first
    /// use. Every series of one name must use the same buckets.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Result<Arc<Histogram>, MetricsError> {
        validate_buckets(buckets)?;
        if labels.iter().any(|(k, _)| *k == "le") {
            return Err(MetricsError::InvalidLabel("`le` is reserved for histogram buckets".into()));
        }
        let series = self.register(name, help, Kind::Histogram, labels, buckets, || {
            Series::Histogram(Arc::new(Histogram::new(buckets)))
        })?;
        match series {
            SeriesRef::Histogram(h) => Ok(h),
            _ => Err(conflict_kind(name)),
        }
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        buckets: &[f64],
        make: impl FnOnce() -> Series,
    ) -> Result<SeriesRef, MetricsError> {
        validate_name(name)?;
        validate_labels(labels)?;
        let label_names: Vec<String> = labels.iter().map(|(k, _)| (*k).to_string()).collect();
        let values: Labels = labels.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        let mut families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let family = match families.iter_mut().position(|f| f.name == name) {
            Some(i) => &mut families[i],
            None => {
                families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    label_names: label_names.clone(),
                    buckets: buckets.to_vec(),
                    series: Vec::new(),
                });
                let last = families.len() - 1;
                &mut families[last]
            }
        };
        if family.kind != kind {
            return Err(MetricsError::Conflict(format!(
                "`{name}` is already a {}, not a {}",
                family.kind.as_str(),
                kind.as_str()
            )));
        }
        if family.label_names != label_names {
            return Err(MetricsError::Conflict(format!(
                "`{name}` is registered with labels {:?}, not {:?}",
                family.label_names, label_names
            )));
        }
        if family.help != help {
            return Err(MetricsError::Conflict(format!("`{name}` is registered with another help text")));
        }
        if family.buckets != buckets {
            return Err(MetricsError::Conflict(format!("`{name}` is registered with other buckets")));
        }
        if let Some((_, existing)) = family.series.iter().find(|(l, _)| *l == values) {
            return Ok(SeriesRef::from(existing));
        }
        let series = make();
        let handle = SeriesRef::from(&series);
        family.series.push((values, series));
        Ok(handle)
    }

    /// Every registered series in the Prometheus text format 0.0.4, families in registration
    /// order, each with its `# HELP` and `# TYPE` lines.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        for family in families.iter() {
            format::header(&mut out, &family.name, &family.help, family.kind.as_str());
            for (labels, series) in &family.series {
                match series {
                    Series::Counter(c) => format::sample(&mut out, &family.name, labels, None, &c.get().to_string()),
                    Series::Gauge(g) => format::sample(&mut out, &family.name, labels, None, &format_value(g.get())),
                    Series::Histogram(h) => render_histogram(&mut out, &family.name, labels, h),
                }
            }
        }
        out
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &Labels, h: &Histogram) {
    let bucket_name = format!("{name}_bucket");
    let mut cumulative = 0u64;
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        cumulative += count.load(Ordering::Relaxed);
        format::sample(out, &bucket_name, labels, Some(&format_value(*bound)), &cumulative.to_string());
    }
    if let Some(overflow) = h.counts.last() {
        cumulative += overflow.load(Ordering::Relaxed);
    }
    // `+Inf` and `_count` come from the same snapshot, so they always agree.
    format::sample(out, &bucket_name, labels, Some("+Inf"), &cumulative.to_string());
    format::sample(out, &format!("{name}_sum"), labels, None, &format_value(h.sum()));
    format::sample(out, &format!("{name}_count"), labels, None, &cumulative.to_string());
}

/// A cloned handle, so the registry's lock is released before the caller uses it.
enum SeriesRef {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
}

impl From<&Series> for SeriesRef {
    fn from(series: &Series) -> Self {
        match series {
            Series::Counter(c) => SeriesRef::Counter(c.clone()),
            Series::Gauge(g) => SeriesRef::Gauge(g.clone()),
            Series::Histogram(h) => SeriesRef::Histogram(h.clone()),
        }
    }
}

fn conflict_kind(name: &str) -> MetricsError {
    MetricsError::Conflict(format!("`{name}` is registered with another kind"))
}

/// Values computed at scrape time rather than updated as things happen (queue depth per
/// state, age of the oldest due job): read from the database when `/metrics` is asked, so
/// they are never stale and need no background task.
#[derive(Debug, Clone)]
pub struct GaugeFamily {
    name: String,
    help: String,
    label_names: Option<Vec<String>>,
    samples: Vec<(Labels, f64)>,
}

impl GaugeFamily {
    /// An empty family; fails on an invalid name.
    pub fn new(name: &str, help: &str) -> Result<Self, MetricsError> {
        validate_name(name)?;
        Ok(Self { name: name.to_string(), help: help.to_string(), label_names: None, samples: Vec::new() })
    }

    /// Adds one sample. Every sample must carry the same label names.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> Result<(), MetricsError> {
        validate_labels(labels)?;
        let names: Vec<String> = labels.iter().map(|(k, _)| (*k).to_string()).collect();
        match &self.label_names {
            Some(existing) if *existing != names => {
                return Err(MetricsError::Conflict(format!(
                    "`{}` samples must all use labels {existing:?}",
                    self.name
                )));
            }
            Some(_) => {}
            None => self.label_names = Some(names),
        }
        let values = labels.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        self.samples.push((values, value));
        Ok(())
    }

    /// Appends the family (HELP, TYPE, samples) to `out`.
    pub fn render_into(&self, out: &mut String) {
        format::header(out, &self.name, &self.help, "gauge");
        for (labels, value) in &self.samples {
            format::sample(out, &self.name, labels, None, &format_value(*value));
        }
    }
}

fn validate_name(name: &str) -> Result<(), MetricsError> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(MetricsError::InvalidName(name.to_string())) }
}

fn validate_labels(labels: &[(&str, &str)]) -> Result<(), MetricsError> {
    for (i, (name, _)) in labels.iter().enumerate() {
        let mut chars = name.chars();
        let ok = match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            _ => false,
        };
        if !ok {
            return Err(MetricsError::InvalidLabel(format!("`{name}` is not a valid label name")));
        }
        if name.starts_with("__") {
            return Err(MetricsError::InvalidLabel(format!("`{name}`: names starting with `__` are reserved")));
        }
        if labels[..i].iter().any(|(other, _)| other == name) {
            return Err(MetricsError::InvalidLabel(format!("`{name}` appears twice")));
        }
    }
    Ok(())
}

fn validate_buckets(buckets: &[f64]) -> Result<(), MetricsError> {
    if buckets.is_empty() {
        return Err(MetricsError::InvalidBuckets("no buckets".into()));
    }
    if buckets.iter().any(|b| !b.is_finite()) {
        return Err(MetricsError::InvalidBuckets("bounds must be finite (+Inf is implicit)".into()));
    }
    if buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(MetricsError::InvalidBuckets("bounds must be strictly increasing".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
