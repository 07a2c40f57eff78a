use std::sync::Arc;

use super::*;

#[test]
fn counter_renders_help_type_and_labels() {
    let r = Registry::new();
    let ok = r.counter("subsync_requests_total", "Requests by outcome.", &[("outcome", "accepted")]).unwrap();
    let dup = r.counter("subsync_requests_total", "Requests by outcome.", &[("outcome", "duplicate")]).unwrap();
    ok.inc();
    ok.inc_by(2);
    dup.inc();
    assert_eq!(
        r.render(),
        "# HELP subsync_requests_total Requests by outcome.\n\
         # TYPE subsync_requests_total counter\n\
         subsync_requests_total{outcome=\"accepted\"} 3\n\
         subsync_requests_total{outcome=\"duplicate\"} 1\n"
    );
}

#[test]
fn registering_twice_returns_the_same_series() {
    let r = Registry::new();
    let a = r.counter("jobs_total", "Jobs.", &[("state", "dead")]).unwrap();
    let b = r.counter("jobs_total", "Jobs.", &[("state", "dead")]).unwrap();
    a.inc();
    b.inc();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.get(), 2);
    assert_eq!(r.render().matches("# TYPE jobs_total").count(), 1);
}

#[test]
fn gauge_without_labels_and_special_values() {
    let r = Registry::new();
    let g = r.gauge("in_flight", "Jobs running now.", &[]).unwrap();
    g.inc();
    g.inc();
    g.dec();
    g.add(0.5);
    assert_eq!(r.render(), "# HELP in_flight Jobs running now.\n# TYPE in_flight gauge\nin_flight 1.5\n");
    g.set(f64::INFINITY);
    assert!(r.render().ends_with("in_flight +Inf\n"));
    g.set(f64::NEG_INFINITY);
    assert!(r.render().ends_with("in_flight -Inf\n"));
    g.set(f64::NAN);
    assert!(r.render().ends_with("in_flight NaN\n"));
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
    let r = Registry::new();
    let h = r.histogram("job_seconds", "Job duration.", &[("queue", "stripe")], &[0.1, 1.0]).unwrap();
    h.observe(0.05);
    h.observe(0.1); // on the bound: `le` is inclusive
    h.observe(0.5);
    h.observe(7.0);
    h.observe(f64::NAN); // ignored
    assert_eq!(
        r.render(),
        "# HELP job_seconds Job duration.\n\
         # TYPE job_seconds histogram\n\
         job_seconds_bucket{queue=\"stripe\",le=\"0.1\"} 2\n\
         job_seconds_bucket{queue=\"stripe\",le=\"1\"} 3\n\
         job_seconds_bucket{queue=\"stripe\",le=\"+Inf\"} 4\n\
         job_seconds_sum{queue=\"stripe\"} 7.65\n\
         job_seconds_count{queue=\"stripe\"} 4\n"
    );
    assert_eq!(h.count(), 4);
}

#[test]
fn histogram_observes_durations() {
    let r = Registry::new();
    let h = r.histogram("d", "D.", &[], SECONDS_BUCKETS).unwrap();
    h.observe_duration(std::time::Duration::from_millis(3));
    let text = r.render();
    assert!(text.contains("d_bucket{le=\"0.001\"} 0\n"), "{text}");
    assert!(text.contains("d_bucket{le=\"0.005\"} 1\n"), "{text}");
    assert!(text.contains("d_count 1\n"), "{text}");
}

#[test]
fn label_values_and_help_are_escaped() {
    let r = Registry::new();
    r.counter("weird_total", "Back\\slash and\nnewline \"quoted\".", &[("v", "a\"b\\c\nd")]).unwrap().inc();
    let text = r.render();
    assert!(text.contains("# HELP weird_total Back\\\\slash and\\nnewline \"quoted\".\n"), "{text}");
    assert!(text.contains("weird_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
    // Exactly three lines: nothing leaked a raw newline.
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn invalid_names_labels_and_conflicts_are_refused() {
    let r = Registry::new();
    assert!(matches!(r.counter("1bad", "x", &[]), Err(MetricsError::InvalidName(_))));
    assert!(matches!(r.counter("has-dash", "x", &[]), Err(MetricsError::InvalidName(_))));
    assert!(matches!(r.counter("", "x", &[]), Err(MetricsError::InvalidName(_))));
    assert!(r.counter("ns:ok_total", "x", &[]).is_ok());
    assert!(matches!(r.counter("a", "x", &[("__x", "1")]), Err(MetricsError::InvalidLabel(_))));
    assert!(matches!(r.counter("a", "x", &[("x-y", "1")]), Err(MetricsError::InvalidLabel(_))));
    assert!(matches!(r.counter("a", "x", &[("k", "1"), ("k", "2")]), Err(MetricsError::InvalidLabel(_))));
    assert!(matches!(r.histogram("h", "x", &[("le", "1")], &[1.0]), Err(MetricsError::InvalidLabel(_))));
    r.counter("c", "x", &[("a", "1")]).unwrap();
    assert!(matches!(r.gauge("c", "x", &[("a", "1")]), Err(MetricsError::Conflict(_))));
    assert!(matches!(r.counter("c", "x", &[("b", "1")]), Err(MetricsError::Conflict(_))));
    assert!(matches!(r.counter("c", "other help", &[("a", "2")]), Err(MetricsError::Conflict(_))));
    r.histogram("h", "x", &[], &[1.0, 2.0]).unwrap();
    assert!(matches!(r.histogram("h", "x", &[], &[1.0]), Err(MetricsError::Conflict(_))));
    assert!(matches!(r.histogram("h2", "x", &[], &[]), Err(MetricsError::InvalidBuckets(_))));
    assert!(matches!(r.histogram("h2", "x", &[], &[2.0, 1.0]), Err(MetricsError::InvalidBuckets(_))));
    assert!(matches!(r.histogram("h2", "x", &[], &[1.0, f64::INFINITY]), Err(MetricsError::InvalidBuckets(_))));
    // A refused registration leaves no half-made family behind in the output.
    assert!(!r.render().contains("h2"));
}

#[test]
fn gauge_family_renders_scrape_time_values() {
    let mut f = GaugeFamily::new("subsync_queue_jobs", "Jobs by queue and state.").unwrap();
    f.sample(&[("queue", "stripe"), ("state", "dead")], 3.0).unwrap();
    f.sample(&[("queue", "stripe"), ("state", "pending")], 0.0).unwrap();
    assert!(f.sample(&[("queue", "stripe")], 1.0).is_err());
    let mut out = String::new();
    f.render_into(&mut out);
    assert_eq!(
        out,
        "# HELP subsync_queue_jobs Jobs by queue and state.\n\
         # TYPE subsync_queue_jobs gauge\n\
         subsync_queue_jobs{queue=\"stripe\",state=\"dead\"} 3\n\
         subsync_queue_jobs{queue=\"stripe\",state=\"pending\"} 0\n"
    );
    assert!(GaugeFamily::new("bad name", "x").is_err());
}

#[test]
fn updates_from_many_threads_are_not_lost() {
    let r = Arc::new(Registry::new());
    let c = r.counter("n_total", "N.", &[]).unwrap();
    let g = r.gauge("g", "G.", &[]).unwrap();
    let h = r.histogram("h", "H.", &[], &[0.5]).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (c, g, h) = (c.clone(), g.clone(), h.clone());
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    c.inc();
                    g.add(1.0);
                    h.observe(1.0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(c.get(), 40_000);
    assert_eq!(g.get(), 40_000.0);
    assert_eq!(h.count(), 40_000);
    assert_eq!(h.sum(), 40_000.0);
}
