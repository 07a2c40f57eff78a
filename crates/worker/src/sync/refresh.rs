//! Recomputing one user's entitlement inside the job's transaction, and everything that
//! follows a change of it: the history line, the notification (outbox, PostgreSQL `NOTIFY`)
//! and the timed lapse.
//!
//! A user's entitlement is the best (highest-ranked tier; ties: smallest subscription id)
//! among all subscriptions attributed to the user, evaluated at `now` — the same rule as the
//! test oracle — plus every granting subscription's add-ons and, when the tier file uses
//! them, Stripe's Entitlements.
//!
//! Changes are judged on the *stored* decision, not on the read-time view: a grant that
//! passed its `access_until` reads as lapsed at once (`entitlements::effective`), and its
//! lapse job ([`super::lapse`]) then rewrites the row at that instant, which is the change
//! history records (cause `lapse`) and the application is notified of.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use subsync_domain::{Entitlement, Features, SubscriptionState, TierName, UnixSeconds};
use subsync_outbox::{ChangeCause, EntitlementState, NewChange};
use subsync_queue::{JobError, JobId, Tx};

use super::apply::{TierChangeReport, decode_state};
use super::{SyncContext, job_error, lapse};
use crate::store::{self, HistoryWrite, StoredEntitlement};

/// What caused a recomputation: a Stripe event, or a grant's `access_until` passing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CauseKind<'a> {
    Event(&'a str),
    Lapse(DateTime<Utc>),
}

/// What caused a recomputation, for history lines and notifications.
#[derive(Debug)]
pub(crate) struct Cause<'a> {
    pub kind: CauseKind<'a>,
    pub job_id: JobId,
    /// The subscription (or customer) whose job it is.
    pub subscription_id: &'a str,
    /// When it is written.
    pub at: DateTime<Utc>,
}

impl<'a> Cause<'a> {
    pub(crate) fn event(event_id: &'a str, job_id: JobId, subscription_id: &'a str, at: DateTime<Utc>) -> Self {
        Self { kind: CauseKind::Event(event_id), job_id, subscription_id, at }
    }

    /// The history line's `cause_event_id`: the event, or `lapse:<ms>` (one line per lapse
    /// and user, however often the job runs).
    fn key(&self) -> String {
        match self.kind {
            CauseKind::Event(id) => id.to_owned(),
            CauseKind::Lapse(at) => format!("lapse:{}", at.timestamp_millis()),
        }
    }

    /// The history line's `cause` column.
    fn column(&self) -> &'static str {
        match self.kind {
            CauseKind::Event(_) => "event",
            CauseKind::Lapse(_) => "lapse",
        }
    }

    fn for_notification(&self) -> ChangeCause {
        match self.kind {
            CauseKind::Event(id) => ChangeCause::Event { event_id: id.to_owned() },
            CauseKind::Lapse(at) => ChangeCause::Lapse { access_until: at },
        }
    }
}

/// Recomputes one user's entitlement from all of the user's subscriptions (the best tier
/// among them, plus every granting subscription's add-ons); writes it (or deletes it when
/// none is left); on a tier change appends a history line; on a change the application acts
/// on (tier, features, `access_until`) notifies; schedules the grant's lapse.
pub(crate) async fn refresh_user(
    tx: &mut Tx,
    ctx: &SyncContext,
    user_id: &str,
    cause: &Cause<'_>,
    now: DateTime<Utc>,
) -> Result<Option<TierChangeReport>, JobError> {
    let tiers = ctx.tiers();
    let mut best: Option<(String, SubscriptionState, Entitlement)> = None;
    let mut addons: Vec<(String, Features)> = Vec::new();
    let view = store::user_view(tx, user_id).await.map_err(job_error)?;
    for (sub_id, json) in view.subscriptions {
        let state = decode_state(&sub_id, json)?;
        let ent = state
            .entitlement(tiers, ctx.policy(), now.timestamp())
            .map_err(|e| JobError::permanent(format!("subscription {sub_id}: {e}")))?;
        addons.push((sub_id.clone(), ent.addons.clone()));
        let better = best.as_ref().is_none_or(|(_, _, b)| tiers.rank(&ent.tier) > tiers.rank(&b.tier));
        if better {
            best = Some((sub_id, state, ent));
        }
    }
    // The granting subscription's features hold its own add-ons; the others' stack on top.
    if let Some((best_id, _, ent)) = best.as_mut() {
        for (sub_id, extra) in &addons {
            if sub_id != best_id {
                ent.features = ent.features.plus(extra, 1);
            }
        }
    }
    // Stripe's Entitlements, when the tier file uses them, grant on top of all that.
    let stripe = if tiers.feature_source().uses_stripe_entitlements() {
        store::user_stripe_features(tx, user_id).await.map_err(job_error)?
    } else {
        None
    };
    let stripe_grants = stripe.as_ref().map(|keys| tiers.stripe_grants(keys.iter().map(String::as_str)));
    if let (Some((_, _, ent)), Some(grants)) = (best.as_mut(), &stripe_grants) {
        ent.features = ent.features.plus(grants, 1);
    }
    let existing = view.entitlement;
    let row = match best {
        None if stripe_grants.is_some() => {
            // Only Stripe's Entitlements speak for this user (no subscription of theirs is known).
            let grants = stripe_grants.unwrap_or_else(Features::none);
            Some(features_only_row(ctx, user_id, &grants, cause, now)?)
        }
        None => None,
        Some((sub_id, state, ent)) => {
            Some(entitlement_row(ctx, user_id, &sub_id, &state, &ent, stripe_grants.as_ref(), cause, now)?)
        }
    };
    let written = match row {
        Some(row) => {
            let version = store::upsert_entitlement(tx, &row).await.map_err(job_error)?;
            Some((row, version))
        }
        None if existing.is_some() => {
            store::delete_entitlement(tx, user_id).await.map_err(job_error)?;
            None
        }
        None => None,
    };

    let previous = existing.as_ref().map_or_else(|| nothing(ctx), |e| state_of(&e.row));
    let current = written.as_ref().map_or_else(|| nothing(ctx), |(row, _)| state_of(row));
    if let Some((row, _)) = &written {
        lapse::schedule(tx, ctx, row, now).await?;
    }
    if previous.differs_for_app(&current) {
        // A removed row keeps growing its user's version as the upsert would have.
        let version = written.as_ref().map_or_else(
            || existing.as_ref().map_or(0, |e| (e.version + 1).max(cause.at.timestamp_millis())),
            |(_, version)| *version,
        );
        notify(tx, ctx, user_id, version, previous, current, cause).await?;
    }

    let from = existing.map_or_else(|| TierName::FREE.to_owned(), |e| e.row.tier);
    let (to, granting_sub) = match &written {
        Some((row, _)) if !row.subscription_id.is_empty() => (row.tier.clone(), row.subscription_id.clone()),
        Some((row, _)) => (row.tier.clone(), cause.subscription_id.to_owned()),
        None => (TierName::FREE.to_owned(), cause.subscription_id.to_owned()),
    };
    if from == to {
        return Ok(None);
    }
    let key = cause.key();
    let line = HistoryWrite {
        user_id,
        subscription_id: &granting_sub,
        from_tier: &from,
        to_tier: &to,
        cause_event_id: &key,
        job_id: cause.job_id,
        at: cause.at,
        cause: cause.column(),
    };
    store::insert_history(tx, &line).await.map_err(job_error)?;
    Ok(Some(TierChangeReport { user_id: user_id.to_owned(), from, to }))
}

/// Announces the change (PostgreSQL `NOTIFY`, at commit) and, when this process delivers
/// notifications, appends it to the outbox with its delivery job: in the change's own
/// transaction, so the change and its notification commit together.
async fn notify(
    tx: &mut Tx,
    ctx: &SyncContext,
    user_id: &str,
    version: i64,
    previous: EntitlementState,
    current: EntitlementState,
    cause: &Cause<'_>,
) -> Result<(), JobError> {
    let change_id = if ctx.notifications() {
        let change = NewChange {
            user_id: user_id.to_owned(),
            version,
            previous,
            current,
            cause: cause.for_notification(),
            at: cause.at,
        };
        let appended = subsync_outbox::append(ctx.store(), tx, change).await.map_err(outbox_error)?;
        tracing::debug!(user_id, version, change_id = %appended.change_id, "entitlement change queued for notification");
        Some(appended.change_id)
    } else {
        None
    };
    subsync_outbox::announce(tx, user_id, version, change_id.as_deref()).await.map_err(outbox_error)
}

fn outbox_error(e: subsync_outbox::OutboxError) -> JobError {
    match e {
        subsync_outbox::OutboxError::Queue(q) => q.into(),
        other => JobError::permanent(other.to_string()),
    }
}

/// What a notification says of a stored row.
fn state_of(row: &StoredEntitlement) -> EntitlementState {
    EntitlementState {
        tier: row.tier.clone(),
        features: row.features.clone(),
        status: row.status.clone(),
        reason: row.reason.clone(),
        access_until: row.access_until,
        period_end: row.period_end,
    }
}

/// What a user without a row has: the tier file's `free`.
fn nothing(ctx: &SyncContext) -> EntitlementState {
    EntitlementState {
        tier: TierName::FREE.to_owned(),
        features: serde_json::to_value(ctx.tiers().free_features()).unwrap_or(serde_json::Value::Null),
        status: None,
        reason: wire(&subsync_domain::AccessReason::NoSubscription),
        access_until: None,
        period_end: None,
    }
}

/// The entitlement of a user known only through a Stripe Entitlements summary: `free` plus
/// the granted features, held by no subscription (`subscription_id` is empty).
fn features_only_row(
    ctx: &SyncContext,
    user_id: &str,
    grants: &Features,
    cause: &Cause<'_>,
    now: DateTime<Utc>,
) -> Result<StoredEntitlement, JobError> {
    let free = ctx.tiers().free_features();
    Ok(StoredEntitlement {
        user_id: user_id.to_owned(),
        user_source: "customer_id".to_owned(),
        tier: TierName::FREE.to_owned(),
        features: to_json(&free.plus(grants, 1))?,
        lapse_tier: TierName::FREE.to_owned(),
        lapse_features: to_json(&free)?,
        subscription_id: String::new(),
        status: None,
        reason: wire(&subsync_domain::AccessReason::NoSubscription),
        plan_tier: None,
        access_until: None,
        period_end: None,
        updated_at: cause.at,
        evaluated_at: now,
        last_event_id: cause.key(),
    })
}

/// The stored entitlement from the granting subscription's decision; `stripe` (Stripe's
/// Entitlements grants, already in `ent.features`) outlives the subscription's lapse.
#[allow(clippy::too_many_arguments)]
fn entitlement_row(
    ctx: &SyncContext,
    user_id: &str,
    sub_id: &str,
    state: &SubscriptionState,
    ent: &Entitlement,
    stripe: Option<&Features>,
    cause: &Cause<'_>,
    now: DateTime<Utc>,
) -> Result<StoredEntitlement, JobError> {
    let user_source = state.user().map_or_else(|| "customer_id".to_owned(), |u| wire(&u.source));
    Ok(StoredEntitlement {
        user_id: user_id.to_owned(),
        user_source,
        tier: ent.tier.as_str().to_owned(),
        features: to_json(&ent.features)?,
        lapse_tier: TierName::FREE.to_owned(),
        lapse_features: to_json(&ctx.tiers().free_features().plus(stripe.unwrap_or(&Features::none()), 1))?,
        subscription_id: sub_id.to_owned(),
        status: ent.status.as_ref().map(|s| s.as_str().to_owned()),
        reason: wire(&ent.reason),
        plan_tier: ent.plan_tier.as_ref().map(|t| t.as_str().to_owned()),
        access_until: ent.access_until.and_then(seconds),
        period_end: state.current().and_then(|c| c.current_period_end).and_then(seconds),
        updated_at: cause.at,
        evaluated_at: now,
        last_event_id: cause.key(),
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, JobError> {
    serde_json::to_value(value).map_err(|e| JobError::permanent(format!("cannot serialize: {e}")))
}

/// The serde spelling of a unit enum variant (e.g. `past_due_grace`).
fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn seconds(s: UnixSeconds) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(s, 0).single()
}
