//! The listeners' Prometheus series: one family each, labelled by listener, registered once
//! per process.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use subsync_metrics::{MetricsError, Registry};

type Labels = Vec<(&'static str, &'static str)>;

/// The families, shared by every listener of the process.
#[derive(Debug, Clone)]
pub struct ListenerFamilies {
    open: Family<Labels, Gauge>,
    shed: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    timed_out: Family<Labels, Counter>,
    bodies_refused: Family<Labels, Counter>,
    body_bytes: Family<Labels, Gauge>,
}

impl ListenerFamilies {
    /// Registers the families in `registry` (once per process).
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let families = Self {
            open: Family::default(),
            shed: Family::default(),
            refused: Family::default(),
            timed_out: Family::default(),
            bodies_refused: Family::default(),
            body_bytes: Family::default(),
        };
        registry.register("subsync_listener_open_connections", "Connections open now.", families.open.clone())?;
        registry.register(
            "subsync_listener_shed_connections",
            "Connections closed to make room (reason: cap, budget, file_limit).",
            families.shed.clone(),
        )?;
        registry.register(
            "subsync_listener_refused_connections",
            "New connections closed at once: at the cap with nothing that could be shed.",
            families.refused.clone(),
        )?;
        registry.register(
            "subsync_listener_timed_out_connections",
            "Connections closed by a timeout (phase: headers, idle, body).",
            families.timed_out.clone(),
        )?;
        registry.register(
            "subsync_listener_refused_bodies",
            "Requests answered 503 because the body budget was spent.",
            families.bodies_refused.clone(),
        )?;
        registry.register(
            "subsync_listener_body_bytes_in_flight",
            "Request-body bytes reserved by requests in flight.",
            families.body_bytes.clone(),
        )?;
        Ok(families)
    }

    /// The handles of the listener named `name` (its series exist from now on).
    pub fn listener(&self, name: &'static str) -> ListenerMetrics {
        let one = |key| -> Labels { vec![("listener", name), ("reason", key)] };
        let phase = |key| -> Labels { vec![("listener", name), ("phase", key)] };
        let just = vec![("listener", name)];
        ListenerMetrics {
            open: self.open.get_or_create_owned(&just),
            shed_cap: self.shed.get_or_create_owned(&one("cap")),
            shed_budget: self.shed.get_or_create_owned(&one("budget")),
            shed_file_limit: self.shed.get_or_create_owned(&one("file_limit")),
            refused: self.refused.get_or_create_owned(&just),
            timed_out: ["headers", "idle", "body"].map(|p| (p, self.timed_out.get_or_create_owned(&phase(p)))),
            bodies_refused: self.bodies_refused.get_or_create_owned(&just),
            body_bytes: self.body_bytes.get_or_create_owned(&just),
        }
    }
}

/// One listener's series.
#[derive(Debug, Clone, Default)]
pub struct ListenerMetrics {
    /// Connections open now.
    pub open: Gauge,
    pub(crate) shed_cap: Counter,
    pub(crate) shed_budget: Counter,
    pub(crate) shed_file_limit: Counter,
    /// New connections refused at the cap.
    pub refused: Counter,
    timed_out: [(&'static str, Counter); 3],
    /// Requests refused for want of body budget.
    pub bodies_refused: Counter,
    /// Body bytes reserved now.
    pub body_bytes: Gauge,
}

impl ListenerMetrics {
    /// Counts a connection closed by its `phase`'s timeout.
    pub(crate) fn timed_out(&self, phase: &str) {
        if let Some((_, counter)) = self.timed_out.iter().find(|(p, _)| *p == phase) {
            counter.inc();
        }
    }

    /// Connections closed so far by `phase`'s timeout (`headers`, `idle`, `body`).
    pub fn timed_out_count(&self, phase: &str) -> u64 {
        self.timed_out.iter().find(|(p, _)| *p == phase).map_or(0, |(_, c)| c.get())
    }

    /// Connections shed so far, all reasons.
    pub fn shed_total(&self) -> u64 {
        self.shed_cap.get() + self.shed_budget.get() + self.shed_file_limit.get()
    }
}
