//! `subsync serve` (everything in one process) and `subsync intake` (the webhook intake only).

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use subsync_intake::Batching;
use subsync_intake::{IntakeConfig, IntakeState};
use subsync_stripe::signature::Secrets;

use crate::options::{AppKeysFlag, Bounded, Global, ListenAddr, WebhookSecrets};
use crate::shutdown;

/// Flags of the webhook intake.
#[derive(Debug, Clone, ClapArgs)]
pub struct IntakeArgs {
    /// Webhook signing secret(s), `whsec_…`, comma-separated during a secret roll.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true, value_parser = WebhookSecrets)]
    pub stripe_webhook_secret: Option<Secrets>,
    /// Address for Stripe's webhook calls.
    #[arg(long, env = "SUBSYNC_LISTEN", default_value = "127.0.0.1:8080", value_parser = ListenAddr)]
    pub listen: SocketAddr,
    /// Oldest accepted signature timestamp, in seconds.
    #[arg(
        long, env = "SUBSYNC_SIGNATURE_TOLERANCE", default_value_t = 300,
        value_parser = Bounded::<u64>::at_least(1).unit(" second"),
    )]
    pub signature_tolerance: u64,
    /// Largest accepted webhook body, in bytes.
    #[arg(
        long, env = "SUBSYNC_BODY_LIMIT", default_value_t = 1024 * 1024,
        value_parser = Bounded::<usize>::at_least(1024).unit(" bytes"),
    )]
    pub body_limit: usize,
    /// Concurrent group-commit writers (PostgreSQL; SQLite always uses one).
    #[arg(
        long, env = "SUBSYNC_INTAKE_COMMITTERS", default_value_t = subsync_intake::DEFAULT_COMMITTERS,
        value_parser = Bounded::<usize>::at_least(1),
    )]
    pub committers: usize,
    /// Most webhooks stored per commit.
    #[arg(
        long, env = "SUBSYNC_INTAKE_BATCH", default_value_t = subsync_intake::DEFAULT_MAX_BATCH,
        value_parser = Bounded::<usize>::at_least(1),
    )]
    pub max_batch: usize,
    /// Longest a committer waits, in milliseconds, to fill a batch as large as its previous
    /// one (0: commit whatever is queued at once).
    #[arg(
        long, env = "SUBSYNC_INTAKE_COMMIT_LINGER_MS",
        default_value_t = subsync_intake::DEFAULT_COMMIT_LINGER.as_millis() as u64,
        value_parser = Bounded::<u64>::at_most(1000).why(": every request may wait that long"),
    )]
    pub commit_linger_ms: u64,
    /// Do not apply migrations at start (when a one-shot `subsync migrate` does it).
    #[arg(long, env = "SUBSYNC_NO_MIGRATE")]
    pub no_migrate: bool,
    #[command(flatten)]
    pub limits: super::listen::ListenArgs,
}

/// Flags of the admin API and dashboard, served beside the intake on a private address.
#[derive(Debug, Clone, ClapArgs)]
pub struct AdminArgs {
    /// Private address of the admin API and dashboard (never the public webhook address).
    #[arg(long, env = "SUBSYNC_ADMIN_LISTEN", default_value = subsync_admin::DEFAULT_LISTEN, value_parser = ListenAddr)]
    pub admin_listen: SocketAddr,
    /// Bearer token for the admin API (16+ characters). Without it the admin listener does not start.
    #[arg(long, env = "SUBSYNC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Mark the dashboard's session cookie `Secure` (set when the admin address is behind HTTPS).
    #[arg(long, env = "SUBSYNC_ADMIN_SECURE_COOKIES")]
    pub admin_secure_cookies: bool,
    #[command(flatten)]
    pub limits: super::listen::AdminListenArgs,
}

/// Flags of the application's read API, on its own private address: the application's
/// network path never reaches the admin listener, and the API runs without an admin token.
#[derive(Debug, Clone, ClapArgs)]
pub struct ApiArgs {
    /// Private address of the application's read API (never the public webhook address).
    #[arg(long, env = "SUBSYNC_API_LISTEN", default_value = subsync_appapi::DEFAULT_LISTEN, value_parser = ListenAddr)]
    pub api_listen: SocketAddr,
    /// Application keys (comma-separated, 16+ characters each; several during a rotation).
    /// Without them the read API does not start.
    #[arg(long, env = "SUBSYNC_APP_KEYS", hide_env_values = true, value_parser = AppKeysFlag)]
    pub app_keys: Option<subsync_appapi::AppKeys>,
}

impl ApiArgs {
    /// The read API to run, or `None` (with the reason logged) when no key is set.
    pub(crate) async fn start(
        &self,
        store: &subsync_queue::Store,
        tiers: &subsync_domain::TierConfig,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
        let Some(keys) = self.app_keys.clone() else {
            tracing::info!("application read API not started: set SUBSYNC_APP_KEYS (16+ characters each) to enable it");
            return Ok(None);
        };
        let listen = self.api_listen;
        let state = subsync_appapi::AppApiState::new(store.clone(), keys, tiers);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for the application read API"))?;
        Ok(Some(tokio::spawn(subsync_appapi::serve(listener, state, shutdown::wait(stop)))))
    }
}

/// Flags of `subsync intake`.
#[derive(Debug, Clone, ClapArgs)]
pub struct IntakeOnlyArgs {
    #[command(flatten)]
    pub store: crate::options::StoreArgs,
    #[command(flatten)]
    pub intake: IntakeArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Flags of `subsync serve`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub store: crate::options::StoreArgs,
    #[command(flatten)]
    pub intake: IntakeArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub worker: crate::commands::worker::WorkerArgs,
}

impl AdminArgs {
    /// The admin server to run, or `None` (with the reason logged) when no token is set.
    async fn start(
        &self,
        store: &subsync_queue::Store,
        registry: Arc<subsync_metrics::Registry>,
        limits: (subsync_listener::ListenerConfig, subsync_listener::ListenerMetrics),
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
        let Some(raw) = self.admin_token.as_deref() else {
            tracing::warn!("admin API not started: set SUBSYNC_ADMIN_TOKEN (16+ characters) to enable it");
            return Ok(None);
        };
        let token = subsync_admin::AdminToken::new(raw.to_string()).context("SUBSYNC_ADMIN_TOKEN")?;
        let listen = self.admin_listen;
        let state = subsync_admin::AdminState::new(store.clone(), token, registry)
            .with_entitlements(Arc::new(crate::views::Entitlements(store.clone())))
            .with_secure_cookies(self.admin_secure_cookies);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for the admin API"))?;
        let (config, metrics) = limits;
        let app = subsync_admin::router(state);
        Ok(Some(tokio::spawn(subsync_listener::serve(listener, app, config, metrics, shutdown::wait(stop)))))
    }
}

impl IntakeArgs {
    /// The intake configuration these flags describe (clap checked each value already).
    fn config(&self) -> Result<IntakeConfig> {
        // Required by `serve` and `intake` only, and clap's "required" error cannot say where
        // to get a secret: so this one check stays here.
        let Some(secrets) = self.stripe_webhook_secret.clone() else {
            bail!(
                "STRIPE_WEBHOOK_SECRET is not set. It is the endpoint's signing secret (whsec_…): \
                 for development, `stripe listen --forward-to localhost:8080/webhooks/stripe` prints one; \
                 in production the Stripe Dashboard shows it under Developers → Webhooks → your endpoint → Signing secret"
            );
        };
        let mut config = IntakeConfig::new(secrets);
        config.tolerance = Duration::from_secs(self.signature_tolerance);
        config.body_limit = self.body_limit;
        config.body_timeout = Duration::from_secs(self.limits.body_timeout);
        config.batching = Batching {
            committers: self.committers,
            max_batch: self.max_batch,
            linger: Duration::from_millis(self.commit_linger_ms),
        };
        Ok(config)
    }
}

/// Runs the intake (and the admin API when configured) until shutdown.
pub async fn intake_only(global: &Global, args: IntakeOnlyArgs) -> Result<()> {
    run(global, &args.store, args.intake, args.admin, None, None).await
}

/// Runs every part in one process: intake, worker, admin, the application's read API.
pub async fn serve(global: &Global, args: Args) -> Result<()> {
    let worker = args.worker.setup()?;
    run(global, &args.store, args.intake, args.admin, Some(args.api), Some(worker)).await
}

async fn run(
    global: &Global,
    store_args: &crate::options::StoreArgs,
    intake: IntakeArgs,
    admin: AdminArgs,
    api: Option<ApiArgs>,
    worker: Option<super::worker::WorkerSetup>,
) -> Result<()> {
    let listen = intake.listen;
    let config = intake.config()?;
    let admin_runs = admin.admin_token.is_some();
    let limits = intake.limits.listeners(&admin.limits, intake.body_limit, store_args.db_pool, admin_runs)?;
    let store = if intake.no_migrate {
        global.connect_for(store_args).await?
    } else {
        global.connect_and_migrate(store_args).await?
    };
    let registry = Arc::new(subsync_metrics::Registry::new());
    let families = subsync_listener::ListenerFamilies::register(&registry).context("registering listener metrics")?;
    let stop = shutdown::broadcast();
    let admin_listener = (limits.admin, families.listener("admin"));
    let admin_server = admin.start(&store, registry.clone(), admin_listener, stop.clone()).await?;
    // The API answers unknown users with the worker's tier file's `free` tier.
    let api_server = match (&api, &worker) {
        (Some(api), Some(setup)) => api.start(&store, &setup.tiers, stop.clone()).await?,
        _ => None,
    };
    let worker = match worker {
        Some(mut setup) => {
            setup.config.queue.observer =
                Some(crate::job_metrics::JobMetrics::new(registry.clone()).context("registering job metrics")?);
            tracing::info!(concurrency = setup.config.queue.concurrency, "worker running in-process");
            let ctx = setup.context(store.clone());
            let duties = setup.spawn_duties(&store, store_args.retention.window(), &stop);
            let notifier = setup.spawn_notifier(&store, &registry, &stop)?;
            Some((tokio::spawn(subsync_worker::run(ctx, setup.config, shutdown::wait(stop.clone()))), duties, notifier))
        }
        None => None,
    };
    let state = IntakeState::new(store.clone(), config, registry).context("registering metrics")?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, backend = store.backend().as_str(), "intake listening on POST /webhooks/stripe");
    let app = subsync_intake::router(state);
    subsync_listener::serve(listener, app, limits.intake, families.listener("intake"), shutdown::wait(stop))
        .await
        .context("intake server failed")?;
    if let Some((handle, duties, notifier)) = worker {
        handle.await.context("worker task")?.context("worker failed")?;
        for duty in duties {
            let _ = duty.await;
        }
        if let Some(notifier) = notifier {
            notifier.await.context("notification task")??;
        }
    }
    if let Some(handle) = admin_server {
        handle.await.context("admin server task")?.context("admin server failed")?;
    }
    if let Some(handle) = api_server {
        handle.await.context("read API task")?.context("application read API failed")?;
    }
    tracing::info!("stopped");
    Ok(())
}
