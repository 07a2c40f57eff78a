//! The transactional half of a sync: state, entitlement, history and outcome, written in the
//! caller's transaction.
//!
//! A user's entitlement is the best (highest-ranked tier; ties: smallest subscription id)
//! among all subscriptions attributed to the user, evaluated at `now` — the same rule as the
//! test oracle. When a subscription's user changes (the Stripe customer id is replaced by our
//! app user id once the checkout link arrives), both the old and the new user are
//! recomputed: the old row moves away (deleted when nothing is left) and each side gets a
//! history line if its tier changed.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use subsync_domain::{
    Entitlement, FeatureSummary, Features, Input, Outcome, Snapshot, SubscriptionState, TierName, UnixSeconds,
    UnmappedPrice,
};
use subsync_queue::{JobError, JobId, Tx};

use super::input::Decision;
use super::{SyncContext, job_error};
use crate::store::{self, HistoryWrite, OutcomeWrite, StoredEntitlement, SubscriptionWrite, UnmappedWrite};

/// A change of a user's tier made by one event (logged; also in the history table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierChangeReport {
    /// The user.
    pub user_id: String,
    /// Tier before.
    pub from: String,
    /// Tier after.
    pub to: String,
}

/// What one sync did, for the log line.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub tier_changes: Vec<TierChangeReport>,
}

/// Applies the decision inside `tx` (everything but the job's completion and the commit).
/// The prices of a snapshot input that the tier file does not map, and what that did:
/// `ignored` beside a mapped plan, `free` when none maps and the file says so. `None` when
/// every price maps (or none does and the job must die: [`record_dead_unmapped`]).
fn unmapped_of<'a>(ctx: &SyncContext, inputs: &'a [Input]) -> Option<(&'a Snapshot, Vec<UnmappedPrice>, &'static str)> {
    // The last snapshot is the one that decides (a fetched one follows the event's).
    let snapshot = inputs.iter().rev().find_map(|i| match i {
        Input::Snapshot(s) => Some(s),
        _ => None,
    })?;
    let plan = ctx.tiers().plan_for_prices(&snapshot.prices).ok()?;
    if plan.ignored.is_empty() {
        return None;
    }
    let effect = if plan.ignored.len() == snapshot.prices.len() { "free" } else { "ignored" };
    Some((snapshot, plan.ignored, effect))
}

/// The warning recorded as the event's outcome reason and logged, with the closest mapped
/// lookup key as a hint.
fn unmapped_warning(ctx: &SyncContext, snapshot: &Snapshot, prices: &[UnmappedPrice]) -> String {
    let prices: Vec<String> = prices
        .iter()
        .map(|p| {
            let key = p.lookup_key.as_deref();
            let hint = key.and_then(|k| ctx.tiers().closest_lookup_key(k)).map(|k| format!(", did you mean `{k}`?"));
            format!("{} (lookup_key {}{})", p.price_id, key.unwrap_or("<none>"), hint.unwrap_or_default())
        })
        .collect();
    let warning = format!("unmapped prices ignored for access: {}", prices.join("; "));
    tracing::warn!(subscription_id = %snapshot.subscription_id, %warning, "unmapped prices");
    warning
}

/// Records every price of `snapshot` the tier file does not map, with `effect`.
async fn record_unmapped(
    tx: &mut Tx,
    event_id: &str,
    snapshot: &Snapshot,
    prices: &[UnmappedPrice],
    effect: &str,
    at: DateTime<Utc>,
) -> Result<(), JobError> {
    for price in prices {
        let row = UnmappedWrite {
            event_id,
            price_id: &price.price_id,
            lookup_key: price.lookup_key.as_deref(),
            subscription_id: &snapshot.subscription_id,
            effect,
            at,
        };
        store::record_unmapped(tx, &row).await.map_err(job_error)?;
    }
    Ok(())
}

/// After a snapshot none of whose prices maps failed its job (it goes `dead` for an
/// operator): records its prices for `subsync tiers unmapped`, in a transaction of its own
/// since the job's rolled back. Best effort: a failure here is logged, the job's own error
/// stands.
pub(crate) async fn record_dead_unmapped(ctx: &SyncContext, event_id: &str, decision: &Decision) {
    let Decision::Apply(inputs) = decision else { return };
    let Some(snapshot) = inputs.iter().rev().find_map(|i| match i {
        Input::Snapshot(s) => Some(s),
        _ => None,
    }) else {
        return;
    };
    if ctx.tiers().plan_for_prices(&snapshot.prices).is_ok() {
        return;
    }
    let prices: Vec<UnmappedPrice> =
        snapshot.prices.iter().filter_map(|p| ctx.tiers().tier_for_price(p).err()).collect();
    let recorded = async {
        let mut tx = ctx.store().begin().await?;
        record_unmapped(&mut tx, event_id, snapshot, &prices, "dead", Utc::now()).await?;
        tx.commit().await?;
        Ok::<(), JobError>(())
    };
    if let Err(e) = recorded.await {
        tracing::warn!(event_id, error = %e, "could not record the unmapped prices of a dead job");
    }
}

pub(crate) async fn apply(
    tx: &mut Tx,
    ctx: &SyncContext,
    job_id: JobId,
    event_id: &str,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<Report, JobError> {
    let at = Utc::now();
    let inputs = match decision {
        Decision::Ignore { subscription_id, reason } => {
            let report = Report { outcome: "ignored", reason: Some(reason.clone()), tier_changes: Vec::new() };
            record(tx, job_id, event_id, subscription_id.as_deref(), &report, at).await?;
            return Ok(report);
        }
        Decision::Apply(inputs) => inputs.as_slice(),
        Decision::Features(summary) => return apply_features(tx, ctx, job_id, event_id, summary, now, at).await,
        Decision::FetchThin { subscription_id } => {
            return Err(JobError::permanent(format!(
                "thin event about {subscription_id} reached apply unfetched (a bug)"
            )));
        }
    };
    let Some(first) = inputs.first() else {
        return Err(JobError::permanent("a decision to apply nothing (a bug)".to_owned()));
    };
    let sub_id = first.subscription_id();
    let previous = store::lock_subscription(tx, sub_id).await.map_err(job_error)?;
    let state: Option<SubscriptionState> =
        previous.as_ref().map(|row| decode_state(sub_id, row.state.clone())).transpose()?;
    let outcome = subsync_domain::apply_all(state.as_ref(), inputs, ctx.tiers(), ctx.policy(), now.timestamp())
        .map_err(|e| JobError::permanent(format!("subscription {sub_id}: {e}")))?;

    let report = match outcome {
        Outcome::Applied { new_state, .. } => {
            let user = new_state.user();
            let write = SubscriptionWrite {
                subscription_id: sub_id,
                state: serde_json::to_value(&new_state)
                    .map_err(|e| JobError::permanent(format!("state of {sub_id} does not serialize: {e}")))?,
                user_id: user.as_ref().map(|u| u.user_id.as_str()),
                customer_id: new_state.customer_id(),
                status: new_state.status().map(|s| s.as_str()),
                event_id,
                at,
            };
            store::save_subscription(tx, &write).await.map_err(job_error)?;

            let mut users: Vec<&str> =
                [previous.as_ref().and_then(|row| row.user_id.as_deref()), user.as_ref().map(|u| u.user_id.as_str())]
                    .into_iter()
                    .flatten()
                    .collect();
            if ctx.tiers().feature_source().uses_stripe_entitlements()
                && let Some(customer) = new_state.customer_id()
            {
                // Serialized with the customer's summaries (see `store::lock_customer`). A
                // customer known only from its summary stood for a user; once a subscription
                // names the real one, that stand-in is refreshed away.
                store::lock_customer(tx, customer).await.map_err(job_error)?;
                users.push(customer);
            }
            users.sort_unstable();
            users.dedup();
            store::lock_users(tx, &users).await.map_err(job_error)?;
            let mut tier_changes = Vec::new();
            for user_id in users {
                let cause = Cause { event_id, job_id, subscription_id: sub_id, at };
                if let Some(change) = refresh_user(tx, ctx, user_id, &cause, now).await? {
                    tier_changes.push(change);
                }
            }
            let mut reason = None;
            if let Some((snapshot, prices, effect)) = unmapped_of(ctx, inputs) {
                record_unmapped(tx, event_id, snapshot, &prices, effect, at).await?;
                reason = Some(unmapped_warning(ctx, snapshot, &prices));
            }
            Report { outcome: "applied", reason, tier_changes }
        }
        Outcome::Stale { reason } => {
            Report { outcome: "stale", reason: Some(reason.to_string()), tier_changes: Vec::new() }
        }
        Outcome::Unchanged => Report { outcome: "unchanged", reason: None, tier_changes: Vec::new() },
    };
    record(tx, job_id, event_id, Some(sub_id), &report, at).await?;
    Ok(report)
}

/// What caused a recomputation, for history lines.
struct Cause<'a> {
    event_id: &'a str,
    job_id: JobId,
    subscription_id: &'a str,
    at: DateTime<Utc>,
}

async fn record(
    tx: &mut Tx,
    job_id: JobId,
    event_id: &str,
    subscription_id: Option<&str>,
    report: &Report,
    at: DateTime<Utc>,
) -> Result<(), JobError> {
    let row = OutcomeWrite {
        event_id,
        job_id,
        subscription_id,
        outcome: report.outcome,
        reason: report.reason.as_deref(),
        at,
    };
    store::record_outcome(tx, &row).await.map_err(job_error)
}

/// A customer's Stripe Entitlements summary: stored if it is the newest (Stripe sends the
/// whole list, so the newest replaces the rest), then every user of the customer refreshed.
async fn apply_features(
    tx: &mut Tx,
    ctx: &SyncContext,
    job_id: JobId,
    event_id: &str,
    summary: &FeatureSummary,
    now: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Report, JobError> {
    let customer = summary.customer_id.as_str();
    if !ctx.tiers().feature_source().uses_stripe_entitlements() {
        let reason = "the tier file's source is \"prices\": Stripe entitlement summaries grant nothing";
        let report = Report { outcome: "ignored", reason: Some(reason.into()), tier_changes: Vec::new() };
        record(tx, job_id, event_id, None, &report, at).await?;
        return Ok(report);
    }
    store::lock_customer(tx, customer).await.map_err(job_error)?;
    let stored = store::lock_customer_features(tx, customer).await.map_err(job_error)?;
    let report = match stored {
        Some(s) if !summary.supersedes(s.event_created, &s.event_id) => {
            let same = s.event_created == summary.event_created && s.event_id == summary.event_id;
            let reason = (!same).then(|| format!("a newer summary of {customer} is stored ({})", s.event_id));
            Report { outcome: if same { "unchanged" } else { "stale" }, reason, tier_changes: Vec::new() }
        }
        _ => {
            store::save_customer_features(tx, summary, at).await.map_err(job_error)?;
            // The customer's users, and the customer itself: it stands for a user while no
            // subscription names one (and is refreshed away once one does).
            let mut users = store::customer_users(tx, customer).await.map_err(job_error)?;
            users.push(customer.to_owned());
            users.sort_unstable();
            users.dedup();
            let refs: Vec<&str> = users.iter().map(String::as_str).collect();
            store::lock_users(tx, &refs).await.map_err(job_error)?;
            let mut tier_changes = Vec::new();
            for user_id in &refs {
                let cause = Cause { event_id, job_id, subscription_id: customer, at };
                if let Some(change) = refresh_user(tx, ctx, user_id, &cause, now).await? {
                    tier_changes.push(change);
                }
            }
            let unmapped = ctx.tiers().unmapped_stripe_features(&summary.lookup_keys);
            let reason = (!unmapped.is_empty()).then(|| {
                format!("Stripe features not in [stripe_features], granting nothing: {}", unmapped.join(", "))
            });
            Report { outcome: "applied", reason, tier_changes }
        }
    };
    record(tx, job_id, event_id, None, &report, at).await?;
    Ok(report)
}

fn decode_state(sub_id: &str, json: serde_json::Value) -> Result<SubscriptionState, JobError> {
    serde_json::from_value(json)
        .map_err(|e| JobError::permanent(format!("stored state of {sub_id} does not decode: {e}")))
}

/// Recomputes one user's entitlement from all of the user's subscriptions (the best tier
/// among them, plus every granting subscription's add-ons); writes it (or deletes it when
/// none is left) and a history line when the tier changed.
async fn refresh_user(
    tx: &mut Tx,
    ctx: &SyncContext,
    user_id: &str,
    cause: &Cause<'_>,
    now: DateTime<Utc>,
) -> Result<Option<TierChangeReport>, JobError> {
    let tiers = ctx.tiers();
    let mut best: Option<(String, SubscriptionState, Entitlement)> = None;
    let mut addons: Vec<(String, Features)> = Vec::new();
    for (sub_id, json) in store::user_subscriptions(tx, user_id).await.map_err(job_error)? {
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
    let existing = store::entitlement_in(tx, user_id).await.map_err(job_error)?;
    let from = existing.map_or_else(|| TierName::FREE.to_owned(), |e| e.tier);
    let (to, granting_sub) = match best {
        None if stripe_grants.is_some() => {
            // Only Stripe's Entitlements speak for this user (no subscription of theirs is known).
            let grants = stripe_grants.unwrap_or_else(Features::none);
            let row = features_only_row(ctx, user_id, &grants, cause, now)?;
            store::upsert_entitlement(tx, &row).await.map_err(job_error)?;
            (row.tier, cause.subscription_id.to_owned())
        }
        None => {
            store::delete_entitlement(tx, user_id).await.map_err(job_error)?;
            (TierName::FREE.to_owned(), cause.subscription_id.to_owned())
        }
        Some((sub_id, state, ent)) => {
            let row = entitlement_row(ctx, user_id, &sub_id, &state, &ent, stripe_grants.as_ref(), cause, now)?;
            store::upsert_entitlement(tx, &row).await.map_err(job_error)?;
            (row.tier, sub_id)
        }
    };
    if from == to {
        return Ok(None);
    }
    let line = HistoryWrite {
        user_id,
        subscription_id: &granting_sub,
        from_tier: &from,
        to_tier: &to,
        cause_event_id: cause.event_id,
        job_id: cause.job_id,
        at: cause.at,
    };
    store::insert_history(tx, &line).await.map_err(job_error)?;
    Ok(Some(TierChangeReport { user_id: user_id.to_owned(), from, to }))
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
        last_event_id: cause.event_id.to_owned(),
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
        last_event_id: cause.event_id.to_owned(),
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
