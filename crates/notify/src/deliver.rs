//! One delivery job: send the user's undelivered changes, oldest first, up to the job's own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use subsync_outbox::{DeliveryJob, PendingChange};
use subsync_queue::{Committer, CommitterGuard, GroupCommit, Job, JobError, Store, Work};
use tracing::Instrument;

use crate::config::NotifyConfig;

/// Changes read per round trip while a job catches its user up.
const PAGE: u32 = 32;

/// Hooks for metrics: what each POST did and how long it took.
pub trait DeliveryObserver: Send + Sync {
    /// A POST ended: `delivered` on a 2xx; `lag` is from the change's commit to now.
    fn attempted(&self, delivered: bool, took: Duration, lag: Duration);
}

/// Sends changes to the configured receiver. One per process, shared by its jobs.
pub struct Deliverer {
    store: Store,
    config: NotifyConfig,
    client: reqwest::Client,
    observer: Option<Arc<dyn DeliveryObserver>>,
    committer: Committer,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").field("url", &self.config.url.as_str()).finish()
    }
}

impl Deliverer {
    /// A deliverer POSTing to `config.url`; redirects are never followed (they are failures).
    pub fn new(store: Store, config: NotifyConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("subsync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // A job's last delivery is marked in the transaction that completes the job, several
        // jobs' in one commit where group commit is on by default (SQLite).
        let committers = (config.concurrency / 4).max(1);
        let committer = Committer::grouped(store.clone(), GroupCommit::default_for(store.backend()), committers);
        Ok(Self { store, config, client, observer: None, committer })
    }

    /// Calls `observer` after every POST.
    pub fn with_observer(mut self, observer: Arc<dyn DeliveryObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The store jobs are claimed from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// Starts the group committer for as long as the guard lives (the runner holds it).
    pub(crate) fn start_committer(&self) -> Option<CommitterGuard> {
        self.committer.start()
    }

    /// The handler of queue [`subsync_outbox::NOTIFY_QUEUE`]: sends the job's user's
    /// undelivered changes with `seq` up to the job's, oldest first; stops at the first
    /// failure, which fails the job (retried with backoff, or `dead` once the failing change
    /// is older than `give_up_after`).
    pub async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let args: DeliveryJob = job.decode()?;
        let span = tracing::info_span!("notify", user_id = %args.user_id, change_id = %args.change_id, job_id = %job.id(), attempt = job.attempt());
        self.catch_up(job, &args).instrument(span).await
    }

    async fn catch_up(&self, job: &Job, args: &DeliveryJob) -> Result<(), JobError> {
        loop {
            let page =
                subsync_outbox::undelivered(&self.store, &args.user_id, args.seq, PAGE).await.map_err(outbox_error)?;
            if page.is_empty() {
                return Ok(());
            }
            let last_page = page.len() < PAGE as usize;
            for (i, change) in page.iter().enumerate() {
                // The job's last change is marked with the job's completion, in one commit.
                let completes = last_page && i + 1 == page.len();
                self.send(change, completes.then_some(job)).await?;
                if completes {
                    return Ok(());
                }
            }
        }
    }

    async fn send(&self, change: &PendingChange, completing: Option<&Job>) -> Result<(), JobError> {
        let started = Instant::now();
        let result = self.post(change).await;
        let now = Utc::now();
        let lag = (now - change.created_at).to_std().unwrap_or_default();
        if let Some(observer) = &self.observer {
            observer.attempted(result.is_ok(), started.elapsed(), lag);
        }
        match result {
            Ok(status) => {
                match completing {
                    Some(job) => {
                        let lock_key = job.group_key().to_owned();
                        let (job, seq) = (job.clone(), change.seq);
                        let work: Work = Box::new(move |tx| {
                            Box::pin(async move {
                                subsync_outbox::mark_delivered_in(tx, seq, now).await.map_err(outbox_error)?;
                                job.complete_in(tx).await?;
                                Ok(())
                            })
                        });
                        self.committer.run(&lock_key, work).await?;
                    }
                    None => {
                        subsync_outbox::mark_delivered(&self.store, change.seq, now).await.map_err(outbox_error)?;
                    }
                }
                tracing::info!(change_id = %change.change_id, %status, lag_ms = lag.as_millis() as u64, "notification delivered");
                Ok(())
            }
            Err(why) => {
                subsync_outbox::mark_failed(&self.store, change.seq, now, &why).await.map_err(outbox_error)?;
                tracing::warn!(change_id = %change.change_id, attempts = change.attempts + 1, error = %why, "notification not delivered");
                if lag >= self.config.give_up_after {
                    return Err(JobError::permanent(format!(
                        "change {} still undelivered {}s after it was written (giving up after {}s): {why}",
                        change.change_id,
                        lag.as_secs(),
                        self.config.give_up_after.as_secs()
                    )));
                }
                Err(JobError::retry(format!("change {}: {why}", change.change_id)))
            }
        }
    }

    /// One signed POST; the status on a 2xx, else why not.
    async fn post(&self, change: &PendingChange) -> Result<reqwest::StatusCode, String> {
        let timestamp = Utc::now().timestamp();
        let signature = self.config.secret.sign(&change.change_id, timestamp, change.body.as_bytes());
        let answer = self
            .client
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &change.change_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(change.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(status);
        }
        if status.is_redirection() {
            let to = answer.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?");
            return Err(format!("answered {status}, a redirect to {to} (not followed)"));
        }
        Err(format!("answered {status}"))
    }
}

/// A transport error in words, without the URL's query (it may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

fn outbox_error(e: subsync_outbox::OutboxError) -> JobError {
    match e {
        subsync_outbox::OutboxError::Queue(q) => q.into(),
        other => JobError::permanent(other.to_string()),
    }
}
