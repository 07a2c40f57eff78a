//! The transactional half of a sync: state, entitlement, history and outcome, written in the
//! caller's transaction.
//!
//! Every user the event touches is recomputed by `refresh` (the user's entitlement, history,
//! notification, timed lapse). When a subscription's user changes (the Stripe customer id is
//! replaced by our app user id once the checkout link arrives), both the old and the new user
//! are recomputed: the old row moves away (deleted when nothing is left).

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use subsync_domain::{FeatureSummary, Input, Outcome, Snapshot, SubscriptionState, UnmappedPrice};
use subsync_queue::{JobError, JobId, Tx};

use super::fetched;
use super::input::Decision;
use super::refresh::{Cause, refresh_user};
use super::{SyncContext, job_error};
use crate::store::{self, OutcomeWrite, SubscriptionWrite, UnmappedWrite};

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

/// `conflict` is set (and the job fails before writing anything) when the event's snapshot
/// conflicts with the stored state within one Stripe second and Stripe's API should settle
/// it ([`fetched::needs_conflict_fetch`]); `None` once it has.
pub(crate) async fn apply(
    tx: &mut Tx,
    ctx: &SyncContext,
    job_id: JobId,
    event_id: &str,
    decision: &Decision,
    now: DateTime<Utc>,
    conflict: Option<&AtomicBool>,
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
    if let Some(flag) = conflict
        && fetched::needs_conflict_fetch(ctx, state.as_ref(), decision)
    {
        flag.store(true, Ordering::SeqCst);
        return Err(JobError::retry(format!("{sub_id}: a same-second conflict, to be settled by Stripe's API first")));
    }
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
                let cause = Cause::event(event_id, job_id, sub_id, at);
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
                let cause = Cause::event(event_id, job_id, customer, at);
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

pub(super) fn decode_state(sub_id: &str, json: serde_json::Value) -> Result<SubscriptionState, JobError> {
    serde_json::from_value(json)
        .map_err(|e| JobError::permanent(format!("stored state of {sub_id} does not decode: {e}")))
}
