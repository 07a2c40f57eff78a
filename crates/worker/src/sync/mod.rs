//! The sync job handler: one stored Stripe event in, one transaction out.
//!
//! [`handle`] loads the event the job names (`{"event_id": …}`), decides what it means
//! (`input`), then in ONE transaction reads the subscription's state, applies the domain
//! rules, writes the state, recomputes the user's entitlement, appends history on a tier
//! change, records the event's outcome and completes the job (`apply`). Either all of that
//! commits or none of it does, so a crash, a lost lease or an operator retry never applies
//! an event twice: a re-run finds the state already containing the event (`unchanged`).
//!
//! Failures: a missing or unparseable event, a price the tier config does not map, or a
//! corrupt stored state are permanent (the job goes `dead` for an operator); database
//! trouble is retried with backoff.

mod apply;
mod fetched;
mod input;
mod lapse;
mod refresh;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use subsync_domain::{AccessPolicy, TierConfig};
use subsync_eventlog::SyncJob;
use subsync_queue::{Committer, Job, JobError, Store, Work};
use subsync_stripe::Envelope;
use tracing::Instrument;

use crate::error::WorkerError;
use crate::fetch::{RefetchMode, SubscriptionFetcher};

pub use apply::TierChangeReport;
pub use lapse::LapseJob;
pub use subsync_queue::GroupCommit;

/// Hooks around each job, for tests and metrics: e.g. checking that two jobs of one
/// subscription never run at once. `finished` runs when the handler ends in any way,
/// including being dropped (timeout, shutdown abort, a killed worker).
pub trait SyncObserver: Send + Sync {
    /// The handler started `job`.
    fn started(&self, _job: &Job) {}
    /// `job`'s effect is about to commit, together with its completion. Its exclusive
    /// section ends here: the next job of its subscription can only start after that commit,
    /// so an observer checking for overlap must close the interval at this point, not at
    /// `finished`, which runs after the commit and can come after that next job started.
    fn releasing(&self, _job: &Job) {}
    /// The handler for `job` ended (or was dropped).
    fn finished(&self, _job: &Job) {}
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
type BeforeJob = Arc<dyn Fn(&Job) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Everything the handler needs besides the job. Cheap to clone (one per job).
#[derive(Clone)]
pub struct SyncContext {
    store: Store,
    tiers: Arc<TierConfig>,
    policy: AccessPolicy,
    clock: Clock,
    observer: Option<Arc<dyn SyncObserver>>,
    before_job: Option<BeforeJob>,
    fetcher: Option<Arc<dyn SubscriptionFetcher>>,
    refetch: RefetchMode,
    notifications: bool,
    wall_clock: bool,
    committer: Committer,
}

impl std::fmt::Debug for SyncContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext")
            .field("backend", &self.store.backend())
            .field("policy", &self.policy)
            .field("observer", &self.observer.is_some())
            .field("stripe_api", &self.fetcher.is_some())
            .field("refetch", &self.refetch)
            .field("notifications", &self.notifications)
            .field("committer", &self.committer)
            .finish()
    }
}

impl SyncContext {
    /// A context deciding with `tiers` and `policy`, evaluating access at the wall clock.
    pub fn new(store: Store, tiers: TierConfig, policy: AccessPolicy) -> Self {
        Self {
            committer: Committer::alone(store.clone()),
            store,
            tiers: Arc::new(tiers),
            policy,
            clock: Arc::new(Utc::now),
            observer: None,
            before_job: None,
            fetcher: None,
            refetch: RefetchMode::OnConflict,
            notifications: false,
            wall_clock: true,
        }
    }

    /// Commits several jobs' transactions as one (each job in its own savepoint; see
    /// [`GroupCommit`]), with up to `committers` batches at once on PostgreSQL, while
    /// [`crate::run`] runs. A zero linger keeps one commit per job.
    pub fn with_group_commit(mut self, config: GroupCommit, committers: usize) -> Self {
        self.committer = Committer::grouped(self.store.clone(), config, committers);
        self
    }

    /// Appends every change of a user's entitlement to the outbox (`subsync-outbox`), in the
    /// change's transaction, with its delivery job: for a process whose deliverer sends them
    /// (`--notify-url`). Without it no outbox row is written (nobody would deliver it); on
    /// PostgreSQL the change is `NOTIFY`d either way.
    pub fn with_notifications(mut self) -> Self {
        self.notifications = true;
        self
    }

    pub(crate) fn notifications(&self) -> bool {
        self.notifications
    }

    /// Asks Stripe's API through `fetcher` when an event cannot be ordered, is thin, or (in
    /// [`RefetchMode::Always`]) always. Without one, thin events are skipped and same-second
    /// conflicts are decided by the status rank.
    pub fn with_fetcher(mut self, fetcher: Arc<dyn SubscriptionFetcher>, mode: RefetchMode) -> Self {
        self.fetcher = Some(fetcher);
        self.refetch = mode;
        self
    }

    pub(crate) fn fetcher(&self) -> Option<&dyn SubscriptionFetcher> {
        self.fetcher.as_deref()
    }

    pub(crate) fn refetch_mode(&self) -> RefetchMode {
        self.refetch
    }

    /// Evaluates access at `clock()` instead of the wall clock, so tests can compare stored
    /// entitlements with an oracle evaluated at the same instant. Such a context schedules no
    /// timed lapses ([`LapseJob`]): they fall due on the queue's clock (the database's wall
    /// clock), which this context does not follow.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self.wall_clock = false;
        self
    }

    /// Whether access is evaluated at the wall clock, the clock the queue schedules by.
    pub(crate) fn on_wall_clock(&self) -> bool {
        self.wall_clock
    }

    /// Calls `observer` around every job.
    pub fn with_observer(mut self, observer: Arc<dyn SyncObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Awaits `hook(job)` at the start of every job, before anything is read: fault
    /// injection for tests and drills (a slow job to exercise timeouts and shutdown).
    pub fn with_before_job(
        mut self,
        hook: impl Fn(&Job) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        self.before_job = Some(Arc::new(hook));
        self
    }

    /// Starts the group committer, if any, for as long as the guard lives ([`crate::run`]).
    pub(crate) fn start_committer(&self) -> Option<subsync_queue::CommitterGuard> {
        self.committer.start()
    }

    /// The store jobs read and write.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tier config decisions use.
    pub fn tiers(&self) -> &TierConfig {
        &self.tiers
    }

    /// The access policy decisions use.
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// Calls [`SyncObserver::finished`] however the handler ends.
struct Watch<'a> {
    observer: Arc<dyn SyncObserver>,
    job: &'a Job,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.observer.finished(self.job);
    }
}

/// Applies the Stripe event a job names, or a grant's timed lapse ([`LapseJob`]). The apalis
/// handler of queue [`subsync_eventlog::SYNC_QUEUE`].
pub async fn handle(job: Job, ctx: SyncContext) -> Result<(), JobError> {
    let _watch = ctx.observer.clone().map(|observer| {
        observer.started(&job);
        Watch { observer, job: &job }
    });
    let args: SyncJob = match job.decode()? {
        lapse::SyncTask::Lapse { lapse } => return lapse::run(&job, &ctx, &lapse).await,
        lapse::SyncTask::Event(args) => args,
    };
    let span = tracing::info_span!(
        "sync",
        event_id = %args.event_id,
        job_id = %job.id(),
        subscription_id = %job.group_key(),
        attempt = job.attempt(),
        replay = args.replay,
    );
    process(&job, &ctx, &args).instrument(span).await
}

async fn process(job: &Job, ctx: &SyncContext, args: &SyncJob) -> Result<(), JobError> {
    if let Some(hook) = &ctx.before_job {
        hook(job).await;
    }
    let event_id = args.event_id.as_str();
    let event =
        subsync_eventlog::get(&ctx.store, event_id).await.map_err(|e| job_error(e.into()))?.ok_or_else(|| {
            JobError::permanent(format!("event {event_id} is not in the event log (never stored, or pruned)"))
        })?;
    let envelope = Envelope::parse(event.payload.as_bytes())
        .map_err(|e| JobError::permanent(format!("stored event {event_id} does not parse [{}]: {e}", e.code())))?;
    if envelope.id != event_id {
        return Err(JobError::permanent(format!("stored event {event_id} carries id {} in its body", envelope.id)));
    }
    tracing::debug!(event_type = %event.event_type, disposition = %event.disposition, "event loaded");
    let decision = if event.object_kind == subsync_eventlog::FETCHED_OBJECT {
        fetched::stored_fetch(&envelope, &event.payload)?
    } else {
        input::decide(&envelope)?
    };
    let decision = fetched::resolve(ctx, event_id, decision).await?;
    if let input::Decision::Apply(inputs) = &decision
        && let Some(input) = inputs.first()
    {
        tracing::Span::current().record("subscription_id", input.subscription_id());
    }

    // A same-second conflict is found inside the transaction; it rolls back, Stripe's API
    // is asked outside it, and the job's transaction runs once more with the answer.
    let report = match commit(job, ctx, event_id, &decision, true).await {
        Err(Attempt::Conflict) => {
            let decision = fetched::fetch_beside(ctx, event_id, decision).await?;
            commit(job, ctx, event_id, &decision, false).await
        }
        other => other,
    }
    .map_err(|attempt| match attempt {
        Attempt::Failed(e) => e,
        Attempt::Conflict => JobError::retry("a same-second conflict came back after Stripe's answer".to_owned()),
    })?;

    tracing::info!(
        event_type = %envelope.event_type,
        outcome = report.outcome,
        reason = report.reason.as_deref().unwrap_or(""),
        "event synced"
    );
    for change in &report.tier_changes {
        tracing::info!(user_id = %change.user_id, from = %change.from, to = %change.to, "tier changed");
    }
    Ok(())
}

/// Why one run of a job's transaction did not commit.
enum Attempt {
    /// A same-second conflict that Stripe's API should settle first.
    Conflict,
    Failed(JobError),
}

/// Applies `decision` and completes the job in one transaction (alone or in a group commit);
/// with `check_conflict`, stops at a same-second conflict Stripe's API should settle.
async fn commit(
    job: &Job,
    ctx: &SyncContext,
    event_id: &str,
    decision: &input::Decision,
    check_conflict: bool,
) -> Result<apply::Report, Attempt> {
    let now = ctx.now();
    let report = Arc::new(std::sync::Mutex::new(None));
    let apply_failed = Arc::new(AtomicBool::new(false));
    let conflict = Arc::new(AtomicBool::new(false));
    let work: Work = {
        let (ctx, job, decision) = (ctx.clone(), job.clone(), decision.clone());
        let (event_id, report) = (event_id.to_owned(), Arc::clone(&report));
        let (apply_failed, conflict) = (Arc::clone(&apply_failed), Arc::clone(&conflict));
        Box::new(move |tx| {
            Box::pin(async move {
                let conflict = check_conflict.then_some(conflict.as_ref());
                let done = apply::apply(tx, &ctx, job.id(), &event_id, &decision, now, conflict)
                    .await
                    .inspect_err(|_| apply_failed.store(true, Ordering::SeqCst))?;
                job.complete_in(tx).await?;
                if let Some(observer) = &ctx.observer {
                    observer.releasing(&job);
                }
                *report.lock().unwrap_or_else(|p| p.into_inner()) = Some(done);
                Ok(())
            })
        })
    };
    if let Err(e) = ctx.committer.run(job.group_key(), work).await {
        if conflict.load(Ordering::SeqCst) {
            return Err(Attempt::Conflict);
        }
        if apply_failed.load(Ordering::SeqCst) {
            apply::record_dead_unmapped(ctx, event_id, decision).await;
        }
        return Err(Attempt::Failed(e));
    }
    Ok(report.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default())
}

/// Database trouble is worth retrying; a corrupt stored row is not.
pub(crate) fn job_error(err: WorkerError) -> JobError {
    match err {
        WorkerError::Queue(e) => e.into(),
        WorkerError::Corrupt(msg) => JobError::permanent(format!("corrupt row: {msg}")),
        other => JobError::retry(other.to_string()),
    }
}
