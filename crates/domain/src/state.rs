//! The per-subscription state machine that makes Stripe's delivery order irrelevant.
//!
//! Stripe delivers events late, twice, and out of order (`updated` before `created`), with
//! one-second `created` timestamps. The stored [`SubscriptionState`] is therefore built as a
//! set of registers that each keep a maximum under a total order (a join semilattice):
//! applying the same inputs in any order, any number of times, yields the same state.
//!
//! # Ordering and tie-break (documented contract)
//!
//! Snapshots are ordered by [`OrderKey`] = (`event_created`, fetched, status rank,
//! `event_id`), compared in that order:
//! 1. a later `created` second wins (for a snapshot fetched from Stripe's API, `created` is
//!    Stripe's `Date` response header);
//! 2. within the same second, a fetched snapshot beats one carried by an event (it is
//!    Stripe's own answer to "what is it now?"), and a later fetch beats an earlier one;
//! 3. then the higher [`SubscriptionStatus::tie_break_rank`] wins:
//!    `canceled` = `incomplete_expired` > `unpaid` > `past_due` > `paused` >
//!    `active` = `trialing` > `incomplete` > unknown;
//! 4. then the lexicographically greater `event_id` wins.
//!
//! Rule 3 is a guess: two different snapshots in one second cannot be ordered by Stripe's
//! clock ([`SubscriptionState::same_second_conflict`]). The worker then fetches the
//! subscription from Stripe and applies the answer (rule 2), and only without an API key
//! falls back to the rank.
//!
//! Payment health is ordered by (`event_created`, paid over failed, `invoice_id`). Links
//! keep, per field, the value of the newest link, ties by the greater value.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::access::{
    AccessFacts, AccessPolicy, AccessReason, Entitlement, SubscriptionStatus, UnixSeconds, evaluate_access,
};
use crate::identity::{Identity, UserRef};
pub use crate::input::{FeatureSummary, Input, Link, PaymentHealth, Snapshot};
pub use crate::order::OrderKey;
use crate::tiers::{Features, PriceRef, TierConfig, TierName, UnmappedPrice};

#[cfg(test)]
mod tests;

/// The newest snapshot applied: what access is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Its order key (includes the event id and time).
    pub key: OrderKey,
    /// `cus_…`
    pub customer_id: String,
    /// Status.
    pub status: SubscriptionStatus,
    /// Prices (the tier is re-derived from them with the current config).
    pub prices: Vec<PriceRef>,
    /// Cancels at period end.
    pub cancel_at_period_end: bool,
    /// Period end, if known.
    pub current_period_end: Option<UnixSeconds>,
}

/// The newest payment outcome, ordered by (time, paid over failed, invoice id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Event `created`.
    pub event_created: UnixSeconds,
    /// Paid (`true`) or failed.
    pub paid: bool,
    /// `in_…`
    pub invoice_id: String,
}

/// Tracks when the current `past_due` episode began, independent of arrival order.
///
/// Keeps the key of the newest non-`past_due` snapshot seen (`last_clear`) and every
/// `past_due` snapshot key newer than it. The episode start is the oldest of those; a late
/// non-`past_due` snapshot that falls inside the episode splits it correctly. Older marks
/// are discarded because `last_clear` only moves forward.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastDueTracker {
    last_clear: Option<OrderKey>,
    marks: BTreeSet<OrderKey>,
}

impl PastDueTracker {
    fn observe(&mut self, key: &OrderKey, past_due: bool) {
        if self.last_clear.as_ref().is_some_and(|c| key <= c) {
            return;
        }
        if past_due {
            self.marks.insert(key.clone());
        } else {
            self.marks.retain(|m| m > key);
            self.last_clear = Some(key.clone());
        }
    }

    /// Start of the `past_due` episode the newest snapshot is in, if it is `past_due`.
    fn since(&self) -> Option<UnixSeconds> {
        self.marks.first().map(|k| k.created)
    }
}

/// Everything stored per subscription. Private fields so the merge invariants hold;
/// serializable so the worker can persist it (e.g. as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    subscription_id: String,
    current: Option<SnapshotRecord>,
    identity: Identity,
    past_due: PastDueTracker,
    last_payment: Option<PaymentRecord>,
}

impl SubscriptionState {
    /// An empty state for a subscription nothing is known about yet.
    pub fn new(subscription_id: impl Into<String>) -> Self {
        Self {
            subscription_id: subscription_id.into(),
            current: None,
            identity: Identity::default(),
            past_due: PastDueTracker::default(),
            last_payment: None,
        }
    }

    /// `sub_…`
    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }

    /// The newest snapshot, if any arrived.
    pub fn current(&self) -> Option<&SnapshotRecord> {
        self.current.as_ref()
    }

    /// Current status, if a snapshot arrived.
    pub fn status(&self) -> Option<&SubscriptionStatus> {
        self.current.as_ref().map(|c| &c.status)
    }

    /// The Stripe customer, from the snapshot or else a link.
    pub fn customer_id(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.customer_id.as_str()).or_else(|| self.identity.link_customer())
    }

    /// The user this subscription's entitlement belongs to (see [`Identity::resolve`]);
    /// `None` only when nothing but payments is known.
    pub fn user(&self) -> Option<UserRef> {
        self.identity.resolve(self.customer_id())
    }

    /// The identity registers.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// When the current `past_due` episode began (`None` unless currently `past_due`).
    pub fn past_due_since(&self) -> Option<UnixSeconds> {
        match self.status() {
            Some(SubscriptionStatus::PastDue) => self.past_due.since(),
            _ => None,
        }
    }

    /// The newest payment outcome.
    pub fn last_payment(&self) -> Option<&PaymentRecord> {
        self.last_payment.as_ref()
    }

    /// Whether `incoming` cannot be ordered against the current snapshot by Stripe's clock:
    /// it was carried by an event in the same `created` second as the current one and
    /// describes the subscription differently (status, prices, cancellation or period end).
    /// The rank rule would then guess; the worker asks Stripe instead when it can (see the
    /// module docs). A redelivery of the current snapshot, or one that agrees with it, is no
    /// conflict.
    pub fn same_second_conflict(&self, incoming: &Snapshot) -> bool {
        let Some(cur) = &self.current else { return false };
        incoming.fetched_at.is_none()
            && incoming.event_created == cur.key.created
            && incoming.event_id != cur.key.event_id
            && (incoming.status != cur.status
                || incoming.prices != cur.prices
                || incoming.cancel_at_period_end != cur.cancel_at_period_end
                || incoming.current_period_end != cur.current_period_end)
    }

    /// The entitlement at `now`. Re-derives the tier from the stored prices, so a config
    /// change takes effect on re-evaluation; a price the config no longer maps is an error,
    /// never a silent grant or denial.
    pub fn entitlement(
        &self,
        cfg: &TierConfig,
        policy: &AccessPolicy,
        now: UnixSeconds,
    ) -> Result<Entitlement, DomainError> {
        let Some(cur) = &self.current else {
            return Ok(Entitlement {
                tier: TierName::free(),
                features: cfg.free_features(),
                addons: Features::none(),
                access_until: None,
                reason: AccessReason::NoSubscription,
                status: None,
                plan_tier: None,
                evaluated_at: now,
            });
        };
        let plan = cfg.plan_for_prices(&cur.prices)?;
        let plan_tier = plan.tier;
        let access = evaluate_access(
            &AccessFacts {
                status: &cur.status,
                plan_tier: &plan_tier,
                cancel_at_period_end: cur.cancel_at_period_end,
                current_period_end: cur.current_period_end,
                past_due_since: self.past_due_since(),
                observed_at: cur.key.created,
            },
            policy,
            now,
        );
        // `access.tier` is the mapped plan tier or `free`; both exist in a validated config.
        let tier_features = cfg.features(&access.tier).cloned().unwrap_or_else(|| cfg.free_features());
        let addons = if access.reason.grants() { plan.addons } else { Features::none() };
        Ok(Entitlement {
            tier: access.tier,
            features: tier_features.plus(&addons, 1),
            addons,
            access_until: access.access_until,
            reason: access.reason,
            status: Some(cur.status.clone()),
            plan_tier: Some(plan_tier),
            evaluated_at: now,
        })
    }
}

/// A change of the tier in force, reported so the worker can log and notify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChange {
    /// Tier before (`free` if there was no state).
    pub from: TierName,
    /// Tier after.
    pub to: TierName,
}

/// Why an input was skipped as stale (recorded, not an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaleReason {
    /// A newer snapshot is already applied.
    OlderSnapshot {
        /// Key of the stored snapshot.
        stored: OrderKey,
        /// Key of the incoming one.
        incoming: OrderKey,
    },
    /// A newer payment outcome is already recorded.
    OlderPayment {
        /// Stored record.
        stored: PaymentRecord,
        /// Incoming record.
        incoming: PaymentRecord,
    },
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::OlderSnapshot { stored, incoming } => {
                write!(f, "snapshot {incoming} is older than stored {stored}")
            }
            StaleReason::OlderPayment { stored, incoming } => write!(
                f,
                "payment event for {}@{} is older than stored {}@{}",
                incoming.invoice_id, incoming.event_created, stored.invoice_id, stored.event_created
            ),
        }
    }
}

/// What [`apply`] decided.
// One `Outcome` exists per processed event and is consumed at once: boxing the state
// would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The state changed: store `new_state`.
    Applied {
        /// The state to store.
        new_state: SubscriptionState,
        /// Set when the tier in force at `now` changed.
        tier_change: Option<TierChange>,
    },
    /// Older than what is stored: record as skipped.
    Stale {
        /// Why.
        reason: StaleReason,
    },
    /// Already known (duplicate delivery or redundant link): nothing to do.
    Unchanged,
}

/// Errors that make an input impossible to apply. All are permanent: retrying without an
/// operator fixing something gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// A price the tier config does not map.
    #[error(transparent)]
    UnmappedPrice(#[from] UnmappedPrice),
    /// The input belongs to another subscription than the state (a worker bug).
    #[error("input for subscription {input} applied to the state of subscription {state}")]
    SubscriptionMismatch {
        /// The state's subscription.
        state: String,
        /// The input's subscription.
        input: String,
    },
}

/// Applies one input to the stored state (or `None` if nothing is stored yet).
///
/// Pure and order-independent: any permutation of any multiset of inputs ends in the same
/// state. `now` is used only to report [`TierChange`]; the state itself does not depend on
/// it. Rules:
/// * a snapshot becomes current only if its [`OrderKey`] is greater than the stored one
///   (else `Stale`, or `Unchanged` if it is the stored one); its prices must map, else
///   [`DomainError::UnmappedPrice`] and nothing changes;
/// * an older snapshot can still refine history (the `past_due` episode start, or the
///   newest subscription `app_user_id`); then it is `Applied` with no tier change;
/// * links merge identity: an explicit `app_user_id` beats `client_reference_id`, which
///   beats the customer id;
/// * payment outcomes keep the newest one; older ones are `Stale`.
pub fn apply(
    state: Option<&SubscriptionState>,
    input: &Input,
    cfg: &TierConfig,
    policy: &AccessPolicy,
    now: UnixSeconds,
) -> Result<Outcome, DomainError> {
    if let Some(s) = state
        && s.subscription_id != input.subscription_id()
    {
        return Err(DomainError::SubscriptionMismatch {
            state: s.subscription_id.clone(),
            input: input.subscription_id().to_owned(),
        });
    }
    let empty;
    let old = match state {
        Some(s) => s,
        None => {
            empty = SubscriptionState::new(input.subscription_id());
            &empty
        }
    };
    let mut next = old.clone();
    let mut stale = None;
    match input {
        Input::Snapshot(s) => {
            let key = OrderKey::of(s);
            match &old.current {
                Some(cur) if key <= cur.key => {
                    if key < cur.key {
                        stale = Some(StaleReason::OlderSnapshot { stored: cur.key.clone(), incoming: key.clone() });
                    }
                }
                _ => {
                    cfg.tier_for_prices(&s.prices)?;
                    next.current = Some(SnapshotRecord {
                        key: key.clone(),
                        customer_id: s.customer_id.clone(),
                        status: s.status.clone(),
                        prices: s.prices.clone(),
                        cancel_at_period_end: s.cancel_at_period_end,
                        current_period_end: s.current_period_end,
                    });
                }
            }
            next.identity.observe_snapshot(&key, s.app_user_id.as_deref());
            next.past_due.observe(&key, s.status == SubscriptionStatus::PastDue);
        }
        Input::Link(l) => next.identity.observe_link(
            l.event_created,
            Some(&l.customer_id),
            l.app_user_id.as_deref(),
            l.client_reference_id.as_deref(),
        ),
        Input::Payment(p) => {
            let rec = PaymentRecord { event_created: p.event_created, paid: p.paid, invoice_id: p.invoice_id.clone() };
            match &old.last_payment {
                Some(cur) if rec < *cur => {
                    stale = Some(StaleReason::OlderPayment { stored: cur.clone(), incoming: rec });
                }
                Some(cur) if rec == *cur => {}
                _ => next.last_payment = Some(rec),
            }
        }
    }

    if next == *old {
        return Ok(match stale {
            Some(reason) => Outcome::Stale { reason },
            None => Outcome::Unchanged,
        });
    }
    let before = match state {
        Some(s) => s.entitlement(cfg, policy, now).map(|e| e.tier).unwrap_or_else(|_| TierName::free()),
        None => TierName::free(),
    };
    let after = next.entitlement(cfg, policy, now)?.tier;
    let tier_change = (before != after).then_some(TierChange { from: before, to: after });
    Ok(Outcome::Applied { new_state: next, tier_change })
}

/// Applies several inputs of one subscription as one step (e.g. an event's snapshot and the
/// subscription as fetched from Stripe right after): `Applied` if any of them changed the
/// state (with the tier change across all of them), else the first `Stale`, else
/// `Unchanged`. Stops at the first error, changing nothing.
pub fn apply_all(
    state: Option<&SubscriptionState>,
    inputs: &[Input],
    cfg: &TierConfig,
    policy: &AccessPolicy,
    now: UnixSeconds,
) -> Result<Outcome, DomainError> {
    let mut current: Option<SubscriptionState> = None;
    let mut stale = None;
    for input in inputs {
        match apply(current.as_ref().or(state), input, cfg, policy, now)? {
            Outcome::Applied { new_state, .. } => current = Some(new_state),
            Outcome::Stale { reason } => {
                stale.get_or_insert(reason);
            }
            Outcome::Unchanged => {}
        }
    }
    let Some(new_state) = current else {
        return Ok(stale.map_or(Outcome::Unchanged, |reason| Outcome::Stale { reason }));
    };
    let before = match state {
        Some(s) => s.entitlement(cfg, policy, now).map(|e| e.tier).unwrap_or_else(|_| TierName::free()),
        None => TierName::free(),
    };
    let after = new_state.entitlement(cfg, policy, now)?.tier;
    let tier_change = (before != after).then_some(TierChange { from: before, to: after });
    Ok(Outcome::Applied { new_state, tier_change })
}

/// Applies inputs one after another, ignoring `Stale`/`Unchanged`. For replays, tests and
/// the oracle; stops at the first error.
pub fn replay<'a>(
    state: Option<SubscriptionState>,
    inputs: impl IntoIterator<Item = &'a Input>,
    cfg: &TierConfig,
    policy: &AccessPolicy,
    now: UnixSeconds,
) -> Result<Option<SubscriptionState>, DomainError> {
    let mut state = state;
    for input in inputs {
        if let Outcome::Applied { new_state, .. } = apply(state.as_ref(), input, cfg, policy, now)? {
            state = Some(new_state);
        }
    }
    Ok(state)
}
