//! Subscription status → access: which tier a user may use right now, and until when.
//!
//! Separate from the state machine so the rules can be re-evaluated at any later `now`
//! (grace periods and period ends lapse without any new Stripe event).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::tiers::{Features, TierName};

/// Unix time in seconds, the resolution Stripe uses for `created` and period ends.
pub type UnixSeconds = i64;

/// Seconds in a day, for grace periods written in days.
pub const DAY: UnixSeconds = 86_400;

/// Tunable access rules. A struct (not constants) so operators can change the grace period
/// without a code change and tests can pin it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// How long a `past_due` subscription keeps its tier, measured from when it entered
    /// `past_due`. Gives Stripe's payment retries time to succeed before a user loses access.
    pub past_due_grace_secs: UnixSeconds,
}

impl AccessPolicy {
    /// A policy with a grace period of whole days.
    pub fn with_grace_days(days: u32) -> Self {
        Self { past_due_grace_secs: UnixSeconds::from(days) * DAY }
    }
}

impl Default for AccessPolicy {
    /// 7 days of grace.
    fn default() -> Self {
        Self::with_grace_days(7)
    }
}

/// Stripe's subscription status. Unknown future values are kept verbatim (and grant only
/// `free`) instead of failing, so a new Stripe status never blocks the queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// First payment not yet made.
    Incomplete,
    /// First payment never made; terminal.
    IncompleteExpired,
    /// In a trial.
    Trialing,
    /// Paid and current.
    Active,
    /// A renewal payment failed; Stripe is retrying.
    PastDue,
    /// Ended; terminal.
    Canceled,
    /// Retries exhausted, left open but unpaid.
    Unpaid,
    /// Trial ended without a payment method.
    Paused,
    /// A status this code does not know.
    Unknown(String),
}

impl SubscriptionStatus {
    /// Parses Stripe's status string (never fails: unknown values become `Unknown`).
    pub fn parse(s: &str) -> Self {
        match s {
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Stripe's spelling, for storage and logs.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
            Self::Unknown(s) => s,
        }
    }

    /// Rank used to order two snapshots created in the same second (higher wins), so the
    /// outcome does not depend on delivery order: terminal statuses win because Stripe
    /// never leaves them, and a subscription moves from `incomplete` towards `active`.
    ///
    /// `canceled` = `incomplete_expired` (6) > `unpaid` (5) > `past_due` (4) > `paused` (3)
    /// > `active` = `trialing` (2) > `incomplete` (1) > unknown (0).
    pub fn tie_break_rank(&self) -> u8 {
        match self {
            Self::Canceled | Self::IncompleteExpired => 6,
            Self::Unpaid => 5,
            Self::PastDue => 4,
            Self::Paused => 3,
            Self::Active | Self::Trialing => 2,
            Self::Incomplete => 1,
            Self::Unknown(_) => 0,
        }
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SubscriptionStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SubscriptionStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// Why a user has the access they have; stored next to the entitlement so support can
/// answer "why did I lose access?" without replaying events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessReason {
    /// No subscription snapshot known yet (e.g. only the checkout link arrived).
    NoSubscription,
    /// `active`, renewing.
    Active,
    /// `trialing`.
    Trialing,
    /// `active`/`trialing` with `cancel_at_period_end`, before the period end.
    CancelsAtPeriodEnd,
    /// `active`/`trialing` with `cancel_at_period_end`, at or after the period end.
    PeriodEnded,
    /// `past_due`, within the grace period.
    PastDueGrace,
    /// `past_due`, grace period over.
    GraceExpired,
    /// `incomplete`, `incomplete_expired`, `canceled`, `unpaid`, `paused` or unknown.
    Inactive,
}

impl AccessReason {
    /// Whether the subscription grants what it pays for (its tier and add-ons) for this
    /// reason; otherwise access has fallen to `free`.
    pub fn grants(&self) -> bool {
        matches!(
            self,
            AccessReason::Active
                | AccessReason::Trialing
                | AccessReason::CancelsAtPeriodEnd
                | AccessReason::PastDueGrace
        )
    }
}

/// The facts access depends on, taken from the current subscription snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFacts<'a> {
    /// Current status.
    pub status: &'a SubscriptionStatus,
    /// Tier the subscription's prices map to (what is paid for).
    pub plan_tier: &'a TierName,
    /// Whether Stripe will cancel at the period end.
    pub cancel_at_period_end: bool,
    /// End of the paid period, if known.
    pub current_period_end: Option<UnixSeconds>,
    /// When the subscription entered `past_due`, if known.
    pub past_due_since: Option<UnixSeconds>,
    /// `created` of the event the snapshot came from; the grace fallback when
    /// `past_due_since` is unknown.
    pub observed_at: UnixSeconds,
}

/// The access decision for one subscription at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Tier the user may use now (`free` when the grant has lapsed).
    pub tier: TierName,
    /// When this grant lapses (exclusive: at this second access is already lower), or
    /// `None` if it lasts until the next status change. The worker re-evaluates then.
    pub access_until: Option<UnixSeconds>,
    /// Why.
    pub reason: AccessReason,
}

/// Applies the status → access rules at `now`. Pure: the same facts and `now` always give
/// the same answer.
///
/// * `active`/`trialing` → plan tier; with `cancel_at_period_end`, only while
///   `now < current_period_end`, then `free`.
/// * `past_due` → plan tier while `now < past_due_since + grace` (and before the period end
///   if it cancels then), then `free`.
/// * everything else → `free`.
pub fn evaluate_access(facts: &AccessFacts<'_>, policy: &AccessPolicy, now: UnixSeconds) -> Access {
    let free = |reason| Access { tier: TierName::free(), access_until: None, reason };
    let period_limit = if facts.cancel_at_period_end { facts.current_period_end } else { None };
    match facts.status {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing => match period_limit {
            Some(end) if now >= end => free(AccessReason::PeriodEnded),
            Some(end) => Access {
                tier: facts.plan_tier.clone(),
                access_until: Some(end),
                reason: AccessReason::CancelsAtPeriodEnd,
            },
            None => Access {
                tier: facts.plan_tier.clone(),
                access_until: None,
                reason: if *facts.status == SubscriptionStatus::Trialing {
                    AccessReason::Trialing
                } else {
                    AccessReason::Active
                },
            },
        },
        SubscriptionStatus::PastDue => {
            let since = facts.past_due_since.unwrap_or(facts.observed_at);
            let grace_end = since.saturating_add(policy.past_due_grace_secs);
            let until = period_limit.map_or(grace_end, |end| end.min(grace_end));
            if now >= until {
                free(if until == grace_end { AccessReason::GraceExpired } else { AccessReason::PeriodEnded })
            } else {
                Access { tier: facts.plan_tier.clone(), access_until: Some(until), reason: AccessReason::PastDueGrace }
            }
        }
        SubscriptionStatus::Incomplete
        | SubscriptionStatus::IncompleteExpired
        | SubscriptionStatus::Canceled
        | SubscriptionStatus::Unpaid
        | SubscriptionStatus::Paused
        | SubscriptionStatus::Unknown(_) => free(AccessReason::Inactive),
    }
}

/// What the app stores and checks per subscription: the tier and features in force, until
/// when, and why. Read/export features are always present because `free` grants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    /// Tier in force at the evaluation instant.
    pub tier: TierName,
    /// Features of that tier, plus the subscription's add-ons while it grants.
    pub features: Features,
    /// What the subscription's add-on prices grant (quantities applied); nothing once access
    /// has lapsed. Kept apart so a user's other subscriptions can add theirs.
    pub addons: Features,
    /// When the grant lapses (exclusive), if ever; re-evaluate then.
    pub access_until: Option<UnixSeconds>,
    /// Why.
    pub reason: AccessReason,
    /// Subscription status the decision was based on (`None`: no snapshot yet).
    pub status: Option<SubscriptionStatus>,
    /// Tier the subscription pays for, even if access has lapsed (`None`: no snapshot yet).
    pub plan_tier: Option<TierName>,
    /// The instant this was evaluated at.
    pub evaluated_at: UnixSeconds,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600;

    fn facts<'a>(status: &'a SubscriptionStatus, tier: &'a TierName) -> AccessFacts<'a> {
        AccessFacts {
            status,
            plan_tier: tier,
            cancel_at_period_end: false,
            current_period_end: Some(T0 + 30 * DAY),
            past_due_since: None,
            observed_at: T0,
        }
    }

    fn pro() -> TierName {
        "pro".into()
    }

    #[test]
    fn status_round_trips_and_unknown_is_kept() {
        for s in [
            "incomplete",
            "incomplete_expired",
            "trialing",
            "active",
            "past_due",
            "canceled",
            "unpaid",
            "paused",
            "brand_new",
        ] {
            assert_eq!(SubscriptionStatus::parse(s).as_str(), s);
            let json = format!("\"{s}\"");
            let v: SubscriptionStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), json);
        }
        assert_eq!(SubscriptionStatus::parse("brand_new"), SubscriptionStatus::Unknown("brand_new".into()));
    }

    #[test]
    fn tie_break_ranks_follow_the_documented_order() {
        use SubscriptionStatus::*;
        let order = [Unknown("x".into()), Incomplete, Active, Paused, PastDue, Unpaid, Canceled];
        for w in order.windows(2) {
            assert!(w[0].tie_break_rank() < w[1].tie_break_rank(), "{:?}", w);
        }
        assert_eq!(Active.tie_break_rank(), Trialing.tie_break_rank());
        assert_eq!(Canceled.tie_break_rank(), IncompleteExpired.tie_break_rank());
    }

    #[test]
    fn active_and_trialing_grant_the_plan_tier() {
        let tier = pro();
        for (status, reason) in
            [(SubscriptionStatus::Active, AccessReason::Active), (SubscriptionStatus::Trialing, AccessReason::Trialing)]
        {
            // Even far past the period end: status drives access, not the clock.
            let a = evaluate_access(&facts(&status, &tier), &AccessPolicy::default(), T0 + 90 * DAY);
            assert_eq!(a, Access { tier: pro(), access_until: None, reason });
        }
    }

    #[test]
    fn cancel_at_period_end_boundaries() {
        let tier = pro();
        let end = T0 + 30 * DAY;
        for status in [SubscriptionStatus::Active, SubscriptionStatus::Trialing] {
            let mut f = facts(&status, &tier);
            f.cancel_at_period_end = true;
            let p = AccessPolicy::default();
            let before = evaluate_access(&f, &p, end - 1);
            assert_eq!(before.tier, pro());
            assert_eq!(before.access_until, Some(end));
            assert_eq!(before.reason, AccessReason::CancelsAtPeriodEnd);
            let at = evaluate_access(&f, &p, end);
            assert_eq!(at.tier, TierName::free());
            assert_eq!(at.reason, AccessReason::PeriodEnded);
            assert_eq!(at.access_until, None);
            // Without a known period end the tier is kept (never guess a denial).
            f.current_period_end = None;
            assert_eq!(evaluate_access(&f, &p, end + DAY).tier, pro());
        }
    }

    #[test]
    fn past_due_grace_boundaries() {
        let tier = pro();
        let status = SubscriptionStatus::PastDue;
        let policy = AccessPolicy::default();
        let mut f = facts(&status, &tier);
        f.past_due_since = Some(T0 + DAY);
        let grace_end = T0 + DAY + 7 * DAY;
        let inside = evaluate_access(&f, &policy, grace_end - 1);
        assert_eq!(inside, Access { tier: pro(), access_until: Some(grace_end), reason: AccessReason::PastDueGrace });
        let after = evaluate_access(&f, &policy, grace_end);
        assert_eq!(after.tier, TierName::free());
        assert_eq!(after.reason, AccessReason::GraceExpired);
        // Unknown start: measured from the event time.
        f.past_due_since = None;
        assert_eq!(evaluate_access(&f, &policy, T0 + 7 * DAY - 1).tier, pro());
        assert_eq!(evaluate_access(&f, &policy, T0 + 7 * DAY).tier, TierName::free());
        // Configurable grace.
        let short = AccessPolicy::with_grace_days(1);
        assert_eq!(evaluate_access(&f, &short, T0 + DAY - 1).tier, pro());
        assert_eq!(evaluate_access(&f, &short, T0 + DAY).tier, TierName::free());
        let none = AccessPolicy::with_grace_days(0);
        assert_eq!(evaluate_access(&f, &none, T0).tier, TierName::free());
    }

    #[test]
    fn past_due_that_cancels_at_period_end_stops_at_the_earlier_limit() {
        let tier = pro();
        let status = SubscriptionStatus::PastDue;
        let mut f = facts(&status, &tier);
        f.cancel_at_period_end = true;
        f.current_period_end = Some(T0 + 2 * DAY);
        let a = evaluate_access(&f, &AccessPolicy::default(), T0 + DAY);
        assert_eq!(a.access_until, Some(T0 + 2 * DAY));
        let b = evaluate_access(&f, &AccessPolicy::default(), T0 + 2 * DAY);
        assert_eq!((b.tier, b.reason), (TierName::free(), AccessReason::PeriodEnded));
    }

    #[test]
    fn inactive_statuses_are_free() {
        let tier = pro();
        for s in ["incomplete", "incomplete_expired", "canceled", "unpaid", "paused", "something_new"] {
            let status = SubscriptionStatus::parse(s);
            let a = evaluate_access(&facts(&status, &tier), &AccessPolicy::default(), T0);
            assert_eq!(a, Access { tier: TierName::free(), access_until: None, reason: AccessReason::Inactive }, "{s}");
        }
    }
}
