//! Change notifications to the application: the flags (`--notify-url`, `--notify-secret`, …),
//! and the deliverer that `serve` and `worker` run beside the sync worker when a URL is set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use subsync_metrics::{MetricsError, Registry, SECONDS_BUCKETS};
use subsync_notify::{Deliverer, DeliveryObserver, NotifyConfig};
use subsync_queue::{JobObserver, Store};

use crate::duties::Interval;
use crate::options::Bounded;
use crate::shutdown;

/// Flags of the notification deliverer.
#[derive(Debug, Clone, ClapArgs)]
pub struct NotifyArgs {
    /// The application's endpoint for entitlement change notifications (Standard Webhooks,
    /// POST). Unset: no notifications are queued or sent (PostgreSQL still NOTIFYs).
    #[arg(long, env = "SUBSYNC_NOTIFY_URL")]
    pub notify_url: Option<String>,
    /// The signing secret, `whsec_<base64>` (Standard Webhooks). Required with --notify-url.
    #[arg(long, env = "SUBSYNC_NOTIFY_SECRET", hide_env_values = true)]
    pub notify_secret: Option<String>,
    /// Seconds one POST may take (connect, send, answer) before it counts as failed.
    #[arg(
        long, env = "SUBSYNC_NOTIFY_TIMEOUT", default_value_t = 10,
        value_parser = Bounded::<u64>::between(1, 300).unit(" second"),
    )]
    pub notify_timeout: u64,
    /// Users notified at once by this process.
    #[arg(
        long, env = "SUBSYNC_NOTIFY_CONCURRENCY", default_value_t = 16,
        value_parser = Bounded::<usize>::between(1, 1024),
    )]
    pub notify_concurrency: usize,
    /// How long a change is retried before its delivery job goes `dead` for an operator
    /// (e.g. 3d, 12h).
    #[arg(long, env = "SUBSYNC_NOTIFY_GIVE_UP_AFTER", default_value = "3d", value_parser = Interval)]
    pub notify_give_up_after: Duration,
}

impl NotifyArgs {
    /// The deliverer's settings, or `None` when notifications are off; a clear error when
    /// only half of URL and secret is given, or either is malformed.
    pub fn config(&self) -> Result<Option<NotifyConfig>> {
        let (url, secret) = match (&self.notify_url, &self.notify_secret) {
            (None, None) => return Ok(None),
            (Some(url), Some(secret)) => (url, secret),
            (Some(_), None) => anyhow::bail!(
                "--notify-url (SUBSYNC_NOTIFY_URL) needs --notify-secret (SUBSYNC_NOTIFY_SECRET), a whsec_… secret"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--notify-secret (SUBSYNC_NOTIFY_SECRET) is set but --notify-url (SUBSYNC_NOTIFY_URL) is not"
            ),
        };
        let mut config = NotifyConfig::new(url, secret).context("notification settings")?;
        config.timeout = Duration::from_secs(self.notify_timeout);
        config.concurrency = self.notify_concurrency;
        config.give_up_after = self.notify_give_up_after;
        config.validate().context("notification settings")?;
        Ok(Some(config))
    }
}

/// Starts the deliverer on `store` until `stop`; its job runs are reported to `jobs`.
pub fn spawn(
    config: NotifyConfig,
    store: &Store,
    registry: &Arc<Registry>,
    jobs: Option<Arc<dyn JobObserver>>,
    grace: Duration,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let url = redacted(&config.url);
    let observer = DeliveryMetrics::new(registry).context("registering notification metrics")?;
    let deliverer =
        Deliverer::new(store.clone(), config).context("building the notification HTTP client")?.with_observer(observer);
    tracing::info!(url = %url, "notifying the application of entitlement changes");
    let stop = stop.clone();
    let worker_id = subsync_queue::WorkerOptions::new(subsync_outbox::NOTIFY_QUEUE).worker_id;
    Ok(tokio::spawn(async move {
        subsync_notify::run(Arc::new(deliverer), &worker_id, grace, jobs, shutdown::wait(stop))
            .await
            .context("notification deliverer failed")
    }))
}

/// The URL without credentials or query (either may hold a token), for logs.
fn redacted(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or("?"),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

/// POSTs by result, and how long after the change each was.
struct DeliveryMetrics {
    attempts: Family<[(&'static str, &'static str); 1], Counter>,
    lag: Histogram,
    took: Histogram,
}

impl DeliveryMetrics {
    fn new(registry: &Registry) -> Result<Arc<Self>, MetricsError> {
        let metrics = Self {
            attempts: Family::default(),
            lag: Histogram::new(SECONDS_BUCKETS.iter().copied()),
            took: Histogram::new(SECONDS_BUCKETS.iter().copied()),
        };
        for result in ["delivered", "failed"] {
            metrics.attempts.get_or_create_owned(&[("result", result)]);
        }
        let help = "Notification POSTs by result (delivered = 2xx; failed = anything else, a timeout, a redirect).";
        registry.register("subsync_notify_attempts", help, metrics.attempts.clone())?;
        let help = "From an entitlement change's commit to its delivery (2xx), in seconds.";
        registry.register("subsync_notify_delivery_lag_seconds", help, metrics.lag.clone())?;
        registry.register(
            "subsync_notify_post_duration_seconds",
            "How long each notification POST took.",
            metrics.took.clone(),
        )?;
        Ok(Arc::new(metrics))
    }
}

impl DeliveryObserver for DeliveryMetrics {
    fn attempted(&self, delivered: bool, took: Duration, lag: Duration) {
        let result = if delivered { "delivered" } else { "failed" };
        self.attempts.get_or_create(&[("result", result)]).inc();
        self.took.observe(took.as_secs_f64());
        if delivered {
            self.lag.observe(lag.as_secs_f64());
        }
    }
}
