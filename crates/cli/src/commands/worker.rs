//! `subsync worker`: the subscription sync worker (also run in-process by `subsync serve`).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use subsync_domain::{AccessPolicy, TierConfig};
use subsync_notify::NotifyConfig;
use subsync_queue::Store;
use subsync_worker::{GroupCommit, SyncContext, WorkerConfig};

use crate::duties::DutyArgs;
use crate::notify::NotifyArgs;
use crate::options::{Bounded, Global, ListenAddr};
use crate::shutdown;
use crate::stripe::{Fetcher, RefetchArg, StripeApiArgs};
use subsync_stripe_api::StripeApi;
use subsync_worker::RefetchMode;

/// Flags of the worker.
#[derive(Debug, Clone, ClapArgs)]
pub struct WorkerArgs {
    /// Jobs run at once by this process.
    #[arg(
        long, env = "SUBSYNC_WORKER_CONCURRENCY", default_value_t = 16,
        value_parser = Bounded::<usize>::between(1, 1024),
    )]
    pub concurrency: usize,
    /// Seconds a job may run before it is abandoned and retried.
    #[arg(
        long, env = "SUBSYNC_JOB_TIMEOUT", default_value_t = 60,
        value_parser = Bounded::<u64>::at_least(1).unit(" second"),
    )]
    pub job_timeout: u64,
    /// Seconds in-flight jobs may still run after SIGTERM before they are released.
    #[arg(long, env = "SUBSYNC_SHUTDOWN_GRACE", default_value_t = 20)]
    pub shutdown_grace: u64,
    /// Longest a worker commit waits to gather as many jobs as its previous one had, in ms:
    /// several jobs then share one commit, each in its own savepoint (0: each job commits
    /// alone). A lone job never waits. Default: 2 on SQLite, 0 on PostgreSQL.
    #[arg(
        long, env = "SUBSYNC_WORKER_COMMIT_LINGER_MS",
        value_parser = Bounded::<u64>::between(0, 1000).unit(" ms"),
    )]
    pub worker_commit_linger_ms: Option<u64>,
    /// Most jobs in one worker commit.
    #[arg(
        long, env = "SUBSYNC_WORKER_COMMIT_BATCH", default_value_t = GroupCommit::ON.max_batch,
        value_parser = Bounded::<usize>::between(1, 512),
    )]
    pub worker_commit_batch: usize,
    /// Tier mapping file (TOML: prices → tiers → features); the built-in default when unset.
    #[arg(long, env = "SUBSYNC_TIERS")]
    pub tiers: Option<PathBuf>,
    /// Days a `past_due` subscription keeps its tier.
    #[arg(long, env = "SUBSYNC_PAST_DUE_GRACE_DAYS", default_value_t = 7)]
    pub past_due_grace_days: u32,
    /// When to fetch a subscription from Stripe instead of trusting the event's copy:
    /// `conflict` (two different snapshots in one second, and thin events) or `always`
    /// (every subscription event; one API call each). Needs STRIPE_API_KEY.
    #[arg(long, env = "SUBSYNC_REFETCH", default_value = "conflict", value_parser = RefetchArg)]
    pub refetch: RefetchMode,
    #[command(flatten)]
    pub stripe: StripeApiArgs,
    #[command(flatten)]
    pub duties: DutyArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// A validated worker: how it runs jobs, and what the jobs decide with.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// Concurrency, timeouts, queue consumption.
    pub config: WorkerConfig,
    /// Price → tier mapping (the tier file).
    pub tiers: TierConfig,
    /// Grace periods.
    pub policy: AccessPolicy,
    /// Stripe's API, when a key is set.
    pub api: Option<StripeApi>,
    /// When jobs fetch from it.
    pub refetch: RefetchMode,
    /// How often the scheduled duties run.
    pub duties: DutyArgs,
    /// Where to notify the application of changes, when set.
    pub notify: Option<NotifyConfig>,
    /// The worker commit linger asked for; `None`: the backend's default.
    pub commit_linger: Option<Duration>,
    /// Most jobs per worker commit.
    pub commit_batch: usize,
}

impl WorkerSetup {
    /// The handler's context on `store`.
    pub fn context(&self, store: Store) -> SyncContext {
        // On PostgreSQL a quarter of the job slots commit batches at once (SQLite: one).
        let committers = (self.config.queue.concurrency / 4).max(1);
        let default = GroupCommit::default_for(store.backend());
        let group = GroupCommit { linger: self.commit_linger.unwrap_or(default.linger), max_batch: self.commit_batch };
        let mut ctx = SyncContext::new(store, self.tiers.clone(), self.policy).with_group_commit(group, committers);
        if let Some(api) = &self.api {
            ctx = ctx.with_fetcher(Fetcher::shared(api.clone()), self.refetch);
        }
        if self.notify.is_some() {
            ctx = ctx.with_notifications();
        }
        ctx
    }

    /// Starts the notification deliverer on `store` when `--notify-url` is set.
    pub fn spawn_notifier(
        &self,
        store: &Store,
        registry: &Arc<subsync_metrics::Registry>,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<tokio::task::JoinHandle<Result<()>>>> {
        let Some(config) = self.notify.clone() else { return Ok(None) };
        crate::notify::spawn(
            config,
            store,
            registry,
            self.config.queue.observer.clone(),
            self.config.shutdown_grace,
            stop,
        )
        .map(Some)
    }

    /// Starts the scheduled duties (reconcile with Stripe, prune past `retention`) on `store`.
    pub fn spawn_duties(
        &self,
        store: &Store,
        retention: Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let duties = crate::duties::duties(&self.duties, store, retention, self.api.clone());
        crate::duties::spawn(store, duties, stop)
    }
}

impl WorkerArgs {
    /// Validates the flags (clap checked each value already) and reads the tier file into a
    /// worker set-up.
    pub fn setup(&self) -> Result<WorkerSetup> {
        let tiers = match &self.tiers {
            Some(path) => TierConfig::load(path).with_context(|| format!("tier mapping {}", path.display()))?,
            None => TierConfig::default_config(),
        };
        let mut config = WorkerConfig::default().with_concurrency(self.concurrency);
        config.job_timeout = Duration::from_secs(self.job_timeout);
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace);
        let api = self.stripe.client()?;
        if api.is_none() && self.refetch == RefetchMode::Always {
            anyhow::bail!(
                "--refetch always (SUBSYNC_REFETCH) fetches every subscription from Stripe: set STRIPE_API_KEY"
            );
        }
        if api.is_none() {
            tracing::info!(
                "no STRIPE_API_KEY: no catch-up from Stripe's API; same-second conflicts use the status rank, thin events are skipped"
            );
        }
        Ok(WorkerSetup {
            config,
            tiers,
            policy: AccessPolicy::with_grace_days(self.past_due_grace_days),
            api,
            refetch: self.refetch,
            duties: self.duties.clone(),
            notify: self.notify.config()?,
            commit_linger: self.worker_commit_linger_ms.map(Duration::from_millis),
            commit_batch: self.worker_commit_batch,
        })
    }
}

/// Flags of `subsync worker`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub store: crate::options::StoreArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Do not apply migrations at start.
    #[arg(long, env = "SUBSYNC_NO_MIGRATE")]
    pub no_migrate: bool,
    /// Address to serve this worker's `/metrics` and `/healthz` on; none when unset.
    #[arg(long, env = "SUBSYNC_METRICS_LISTEN", value_parser = ListenAddr)]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub api: crate::commands::serve::ApiArgs,
}

/// Runs the worker until SIGTERM/SIGINT.
pub async fn run(global: &Global, args: Args) -> Result<()> {
    let mut setup = args.worker.setup()?;
    let metrics_listen = args.metrics_listen;
    let store = if args.no_migrate {
        global.connect_for(&args.store).await?
    } else {
        global.connect_and_migrate(&args.store).await?
    };
    let registry = Arc::new(subsync_metrics::Registry::new());
    let notify_registry = registry.clone();
    setup.config.queue.observer =
        Some(crate::job_metrics::JobMetrics::new(registry.clone()).context("registering job metrics")?);
    let stop = shutdown::broadcast();
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })).route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let text = registry.render().map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)?;
                    Ok::<_, axum::http::StatusCode>((
                        [(axum::http::header::CONTENT_TYPE, subsync_metrics::CONTENT_TYPE)],
                        text,
                    ))
                }
            }),
        );
        tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(shutdown::wait(stop.clone())).into_future());
        tracing::info!(%addr, "worker metrics on /metrics");
    }
    let api_server = args.api.start(&store, &setup.tiers, stop.clone()).await?;
    tracing::info!(backend = store.backend().as_str(), concurrency = setup.config.queue.concurrency, "worker starting");
    let duties = setup.spawn_duties(&store, args.store.retention.window(), &stop);
    let notifier = setup.spawn_notifier(&store, &notify_registry, &stop)?;
    subsync_worker::run(setup.context(store), setup.config, shutdown::wait(stop)).await.context("worker failed")?;
    for duty in duties {
        let _ = duty.await;
    }
    if let Some(notifier) = notifier {
        notifier.await.context("notification task")??;
    }
    if let Some(handle) = api_server {
        handle.await.context("read API task")?.context("application read API failed")?;
    }
    tracing::info!("worker stopped");
    Ok(())
}
