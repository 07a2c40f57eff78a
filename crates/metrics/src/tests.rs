//! The exposition our scrapers see, pinned: if a prometheus-client upgrade changes a name,
//! a `le` spelling or the format, these fail before a dashboard does.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::*;

#[test]
fn counters_keep_their_total_name_in_help_type_and_samples() {
    let r = Registry::new();
    let requests = Family::<[(&str, &str); 1], Counter>::default();
    r.register("subsync_requests", "Requests by outcome.", requests.clone()).unwrap();
    requests.get_or_create(&[("outcome", "accepted")]).inc_by(3);
    assert_eq!(
        r.render().unwrap(),
        "# HELP subsync_requests_total Requests by outcome.\n\
         # TYPE subsync_requests_total counter\n\
         subsync_requests_total{outcome=\"accepted\"} 3\n"
    );
}

#[test]
fn histograms_spell_bounds_as_before() {
    let r = Registry::new();
    let h = Histogram::new(SECONDS_BUCKETS.iter().copied());
    r.register("subsync_seconds", "Time.", h.clone()).unwrap();
    h.observe(0.002);
    h.observe(90.0);
    let text = r.render().unwrap();
    for line in [
        "# TYPE subsync_seconds histogram",
        "subsync_seconds_bucket{le=\"0.001\"} 0",
        "subsync_seconds_bucket{le=\"0.005\"} 1",
        "subsync_seconds_bucket{le=\"1\"} 1",
        "subsync_seconds_bucket{le=\"60\"} 1",
        "subsync_seconds_bucket{le=\"+Inf\"} 2",
        "subsync_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
}

#[test]
fn label_values_and_help_are_escaped() {
    let r = Registry::new();
    let g = Family::<[(&str, String); 1], Gauge>::default();
    r.register("subsync_g", "Line one\nline two \\ end.", g.clone()).unwrap();
    g.get_or_create(&[("queue", "a\"b\\c\nd".to_string())]).set(1);
    let text = r.render().unwrap();
    assert!(text.contains("# HELP subsync_g Line one\\nline two \\\\ end.\n"), "{text}");
    assert!(text.contains("subsync_g{queue=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
}

#[test]
fn a_name_registered_twice_is_refused() {
    let r = Registry::new();
    r.register("subsync_up", "Up.", Gauge::<i64>::default()).unwrap();
    assert_eq!(
        r.register("subsync_up", "Up.", Gauge::<i64>::default()),
        Err(MetricsError::Duplicate("subsync_up".into()))
    );
    assert_eq!(r.render().unwrap().matches("# TYPE subsync_up gauge").count(), 1);
}

#[test]
fn a_counter_named_with_total_is_refused() {
    let r = Registry::new();
    assert_eq!(
        r.register("subsync_jobs_total", "Jobs.", Counter::<u64>::default()),
        Err(MetricsError::CounterSuffix("subsync_jobs_total".into()))
    );
    r.register("subsync_jobs_total", "A gauge may end in _total.", Gauge::<i64>::default()).unwrap();
}

#[test]
fn help_is_exposed_as_written() {
    let r = Registry::new();
    r.register("subsync_a", "Ends with a full stop.", Gauge::<i64>::default()).unwrap();
    r.register("subsync_b", "No full stop", Gauge::<i64>::default()).unwrap();
    let text = r.render().unwrap();
    assert!(text.contains("# HELP subsync_a Ends with a full stop.\n"), "{text}");
    assert!(text.contains("# HELP subsync_b No full stop.\n"), "the client adds one: {text}");
}

#[test]
fn a_scrape_time_registry_appends_to_the_shared_one() {
    let shared = Registry::new();
    shared.register("subsync_a", "A.", Gauge::<i64>::default()).unwrap();
    let now = Registry::new();
    let up = Gauge::<i64>::default();
    up.set(1);
    now.register("subsync_up", "Up.", up).unwrap();
    let text = shared.render().unwrap() + &now.render().unwrap();
    assert_eq!(
        text,
        "# HELP subsync_a A.\n# TYPE subsync_a gauge\nsubsync_a 0\n# HELP subsync_up Up.\n# TYPE subsync_up gauge\nsubsync_up 1\n"
    );
}
