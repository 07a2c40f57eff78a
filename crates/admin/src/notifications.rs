//! The application's change notifications, for operators: the outbox (`subsync-outbox`)
//! listed and summed up for `/api/notifications`, the dashboard's Notifications page, the
//! CLI's `subsync notifications`, and `/metrics`. Failed and dead deliveries are ordinary
//! jobs on queue `notify`: the existing job actions retry them.

use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use subsync_metrics::{MetricsError, Registry};
use subsync_outbox::{ListFilter, OutboxError, OutboxRow, OutboxStats};
use subsync_queue::{QueueError, Store};

use crate::error::AdminError;

/// Rows shown when the caller names no limit.
pub const DEFAULT_LIMIT: u32 = 100;

impl From<OutboxError> for AdminError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Queue(q) => AdminError::Queue(q),
            OutboxError::Corrupt(msg) => AdminError::Queue(QueueError::Corrupt(msg)),
        }
    }
}

/// What an operator asks for: `?user=…&undelivered=1&limit=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationsQuery {
    /// Only this user's changes.
    pub user: Option<String>,
    /// Only those not delivered yet.
    pub undelivered: bool,
    /// At most this many (1..=1000; 100 by default).
    pub limit: Option<u32>,
}

impl NotificationsQuery {
    /// From query pairs; unknown names and bad values are refused, saying which.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, AdminError> {
        let mut q = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "user" if !value.is_empty() => q.user = Some(value.clone()),
                "user" => {}
                "undelivered" => {
                    q.undelivered = match value.as_str() {
                        "" | "0" | "false" => false,
                        "1" | "true" | "on" => true,
                        other => {
                            return Err(AdminError::InvalidInput(format!(
                                "undelivered must be true or false, not `{other}`"
                            )));
                        }
                    }
                }
                "limit" if !value.is_empty() => {
                    let n = value.parse::<u32>().ok().filter(|n| (1..=subsync_outbox::MAX_LIST).contains(n));
                    q.limit = Some(n.ok_or_else(|| {
                        AdminError::InvalidInput(format!("limit must be between 1 and {}", subsync_outbox::MAX_LIST))
                    })?);
                }
                "limit" => {}
                other => {
                    return Err(AdminError::InvalidInput(format!(
                        "unknown parameter `{other}` (user, undelivered, limit)"
                    )));
                }
            }
        }
        Ok(q)
    }

    fn filter(&self) -> ListFilter {
        ListFilter {
            user_id: self.user.clone(),
            undelivered_only: self.undelivered,
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
        }
    }
}

/// The outbox's totals and the rows asked for.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationsView {
    /// Totals over the whole outbox.
    pub stats: OutboxStats,
    /// How long the oldest undelivered change has waited, in seconds (0 when none).
    pub lag_seconds: f64,
    /// Newest first.
    pub notifications: Vec<OutboxRow>,
}

/// Reads the outbox for an operator.
pub async fn view(
    store: &Store,
    query: &NotificationsQuery,
    now: DateTime<Utc>,
) -> Result<NotificationsView, AdminError> {
    let stats = subsync_outbox::stats(store).await?;
    let notifications = subsync_outbox::list(store, &query.filter()).await?;
    Ok(NotificationsView { lag_seconds: lag(&stats, now), stats, notifications })
}

fn lag(stats: &OutboxStats, now: DateTime<Utc>) -> f64 {
    stats.oldest_undelivered_at.map_or(0.0, |t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0)
}

/// Registers the outbox gauges in a scrape-time registry.
pub(crate) async fn register_metrics(registry: &Registry, store: &Store) -> Result<(), AdminError> {
    let metric = |e: MetricsError| AdminError::InvalidInput(e.to_string());
    let stats = subsync_outbox::stats(store).await?;
    let gauge = |n: i64| {
        let g = Gauge::<i64>::default();
        g.set(n);
        g
    };
    registry
        .register(
            "subsync_notify_undelivered",
            "Entitlement changes not yet delivered to the application.",
            gauge(stats.undelivered),
        )
        .map_err(metric)?;
    let help = "Undelivered changes whose delivery has failed at least once (see queue notify's retrying/dead jobs).";
    registry.register("subsync_notify_failing", help, gauge(stats.failing)).map_err(metric)?;
    registry
        .register(
            "subsync_notify_delivered",
            "Entitlement changes delivered (2xx), kept until pruned.",
            gauge(stats.delivered),
        )
        .map_err(metric)?;
    let lag_gauge = Gauge::<f64, AtomicU64>::default();
    lag_gauge.set(lag(&stats, Utc::now()));
    let help = "How long the oldest undelivered change has waited, in seconds (0 when none): alert when it grows.";
    registry.register("subsync_notify_lag_seconds", help, lag_gauge).map_err(metric)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn queries_parse_and_refuse_clearly() {
        let q = NotificationsQuery::from_pairs(&pairs(&[("user", "u1"), ("undelivered", "1"), ("limit", "5")]))
            .expect("ok");
        assert_eq!(q, NotificationsQuery { user: Some("u1".into()), undelivered: true, limit: Some(5) });
        let e = NotificationsQuery::from_pairs(&pairs(&[("limit", "0")])).unwrap_err();
        assert!(e.to_string().contains("between 1 and 1000"), "{e}");
        let e = NotificationsQuery::from_pairs(&pairs(&[("nope", "1")])).unwrap_err();
        assert!(e.to_string().contains("unknown parameter `nope`"), "{e}");
        let e = NotificationsQuery::from_pairs(&pairs(&[("undelivered", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
    }
}
