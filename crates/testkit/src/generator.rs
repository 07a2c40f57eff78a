//! Seeded generation of realistic subscription lifecycles.
//!
//! Each lifecycle is one customer's subscription from checkout to (maybe) cancellation, as
//! the sequence of webhook events Stripe would send, in true order. Several events may
//! share a `created` second, like Stripe's; two *subscription* snapshots only share a second
//! when the later one also wins the domain tie-break, so the true order is recoverable.

use serde::{Deserialize, Serialize};
use subsync_domain::SubscriptionStatus;

use crate::catalog::{CatalogPrice, catalog};
use crate::event::{ApiVersion, EventFact, GeneratedEvent, ItemFact};

const DAY: i64 = 86_400;

/// Knobs for [`generate_lifecycles`]. Ratios are probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorOptions {
    /// Earliest checkout time (unix seconds).
    pub start: i64,
    /// Checkouts are spread uniformly over `start .. start + spread_secs`.
    pub spread_secs: i64,
    /// Share of lifecycles rendered with the old API version (`2024-06-20`).
    pub legacy_api_ratio: f64,
    /// Maximum number of renewals per lifecycle (at least 1 is generated).
    pub max_renewals: u32,
    /// Chance a renewal payment fails and the subscription goes `past_due`.
    pub past_due_ratio: f64,
    /// Chance a `past_due` subscription recovers (else it ends `canceled` or `unpaid`).
    pub recover_ratio: f64,
    /// Chance of a plan change during a period.
    pub plan_change_ratio: f64,
    /// Chance the user schedules cancellation at period end during a period.
    pub cancel_at_period_end_ratio: f64,
    /// Chance a still-running subscription is canceled immediately at the end.
    pub cancel_now_ratio: f64,
    /// Chance the subscription starts with a 14-day trial.
    pub trial_ratio: f64,
    /// Chance, per period, that the add-on ([`crate::catalog::addon_price`]) is added, its
    /// quantity changed, or removed. 0 (the default) draws nothing, so older seeds keep
    /// their lifecycles.
    #[serde(default)]
    pub addon_ratio: f64,
    /// Chance, per period, of a Stripe Entitlements summary for the customer (a random set of
    /// [`crate::catalog::STRIPE_FEATURE_KEYS`]; sometimes two in one second). 0 (the default)
    /// draws nothing.
    #[serde(default)]
    pub summary_ratio: f64,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        Self {
            start: 1_767_225_600, // 2026-01-01T00:00:00Z
            spread_secs: 30 * DAY,
            legacy_api_ratio: 0.25,
            max_renewals: 4,
            past_due_ratio: 0.25,
            recover_ratio: 0.6,
            plan_change_ratio: 0.15,
            cancel_at_period_end_ratio: 0.1,
            cancel_now_ratio: 0.15,
            trial_ratio: 0.1,
            addon_ratio: 0.0,
            summary_ratio: 0.0,
        }
    }
}

/// One subscription's events in true order, with the ids a test needs to check results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// `sub_…`
    pub subscription_id: String,
    /// `cus_…`
    pub customer_id: String,
    /// The app user id the subscription must end up attributed to.
    pub user_id: String,
    /// API version all its events are rendered for.
    pub api_version: ApiVersion,
    /// Events in true order (`created` non-decreasing).
    pub events: Vec<GeneratedEvent>,
}

/// How the app identified the buyer at checkout: exercises every identity source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityStyle {
    /// `client_reference_id` and `metadata.app_user_id`.
    Both,
    /// `client_reference_id` only.
    ClientReference,
    /// `metadata.app_user_id` only.
    Metadata,
}

/// A Stripe-like id: `prefix_1` + 23 random alphanumerics.
pub(crate) fn stripe_id(rng: &mut fastrand::Rng, prefix: &str) -> String {
    let tail: String = (0..23).map(|_| rng.alphanumeric()).collect();
    format!("{prefix}_1{tail}")
}

/// Builds one lifecycle event by event, keeping the running subscription state.
pub(crate) struct Script<'r> {
    pub(crate) rng: &'r mut fastrand::Rng,
    api: ApiVersion,
    subscription_id: String,
    customer_id: String,
    sub_app_user: Option<String>,
    item: ItemFact,
    addon: Option<ItemFact>,
    status: SubscriptionStatus,
    cancel_at_period_end: bool,
    pub(crate) period_start: i64,
    pub(crate) period_end: i64,
    subscription_created: i64,
    latest_invoice: Option<String>,
    now: i64,
    last_snapshot: Option<(i64, u8)>,
    events: Vec<GeneratedEvent>,
}

impl<'r> Script<'r> {
    pub(crate) fn new(
        rng: &'r mut fastrand::Rng,
        api: ApiVersion,
        price: CatalogPrice,
        sub_app_user: Option<String>,
        created: i64,
    ) -> Self {
        let subscription_id = stripe_id(rng, "sub");
        let customer_id = stripe_id(rng, "cus");
        let item_id = stripe_id(rng, "si");
        let period = price.interval.period_secs();
        Self {
            rng,
            api,
            subscription_id,
            customer_id,
            sub_app_user,
            item: ItemFact { item_id, price, quantity: 1 },
            addon: None,
            status: SubscriptionStatus::Incomplete,
            cancel_at_period_end: false,
            period_start: created,
            period_end: created + period,
            subscription_created: created,
            latest_invoice: None,
            now: created,
            last_snapshot: None,
            events: Vec::new(),
        }
    }

    fn at(&mut self, t: i64) -> i64 {
        self.now = self.now.max(t);
        self.now
    }

    fn push(&mut self, event_type: &str, t: i64, fact: EventFact) {
        let id = stripe_id(self.rng, "evt");
        self.events.push(GeneratedEvent::render(id, event_type, t, self.api, fact));
    }

    pub(crate) fn now(&self) -> i64 {
        self.now
    }

    pub(crate) fn amount(&self) -> i64 {
        self.item.price.amount
    }

    pub(crate) fn new_invoice_id(&mut self) -> String {
        let id = stripe_id(self.rng, "in");
        self.latest_invoice = Some(id.clone());
        id
    }

    pub(crate) fn checkout(
        &mut self,
        t: i64,
        client_reference_id: Option<String>,
        app_user_id: Option<String>,
        email: String,
    ) {
        let t = self.at(t);
        let fact = EventFact::CheckoutCompleted {
            session_id: stripe_id(self.rng, "cs_test"),
            subscription_id: self.subscription_id.clone(),
            customer_id: self.customer_id.clone(),
            client_reference_id,
            app_user_id,
            invoice_id: self.latest_invoice.clone().unwrap_or_default(),
            amount: self.item.price.amount,
            email,
        };
        self.push("checkout.session.completed", t, fact);
    }

    /// Emits a subscription snapshot with `status`. Never puts two snapshots in the same
    /// second unless the later one wins the domain tie-break (then true order = tie order).
    pub(crate) fn snapshot(&mut self, event_type: &str, t: i64, status: SubscriptionStatus) {
        let mut t = self.at(t);
        let rank = status.tie_break_rank();
        if let Some((last_t, last_rank)) = self.last_snapshot
            && last_t == t
            && rank <= last_rank
        {
            t = self.at(t + 1);
        }
        self.last_snapshot = Some((t, rank));
        let previous = std::mem::replace(&mut self.status, status.clone());
        let fact = EventFact::Subscription {
            subscription_id: self.subscription_id.clone(),
            customer_id: self.customer_id.clone(),
            status,
            previous_status: (event_type == "customer.subscription.updated").then_some(previous),
            items: std::iter::once(self.item.clone()).chain(self.addon.clone()).collect(),
            cancel_at_period_end: self.cancel_at_period_end,
            current_period_start: self.period_start,
            current_period_end: self.period_end,
            app_user_id: self.sub_app_user.clone(),
            subscription_created: self.subscription_created,
            latest_invoice: self.latest_invoice.clone(),
        };
        self.push(event_type, t, fact);
    }

    pub(crate) fn invoice(
        &mut self,
        t: i64,
        invoice_id: &str,
        paid: bool,
        amount: i64,
        billing_reason: &str,
        attempt_count: u32,
    ) {
        let t = self.at(t);
        let fact = EventFact::Invoice {
            invoice_id: invoice_id.to_owned(),
            subscription_id: self.subscription_id.clone(),
            customer_id: self.customer_id.clone(),
            paid,
            item: self.item.clone(),
            amount,
            billing_reason: billing_reason.to_owned(),
            attempt_count,
            period_start: self.period_start,
            period_end: self.period_end,
            app_user_id: self.sub_app_user.clone(),
        };
        let event_type = if paid { "invoice.paid" } else { "invoice.payment_failed" };
        self.push(event_type, t, fact);
    }

    pub(crate) fn set_cancel_at_period_end(&mut self, v: bool) {
        self.cancel_at_period_end = v;
    }

    pub(crate) fn set_price(&mut self, price: CatalogPrice, t: i64) {
        if price.interval != self.item.price.interval {
            self.period_start = t;
            self.period_end = t + price.interval.period_secs();
        }
        self.item.price = price;
    }

    /// Adds the add-on (quantity 1 to 5), changes its quantity, or removes it.
    pub(crate) fn change_addon(&mut self) {
        self.addon = match self.addon.take() {
            None => Some(ItemFact {
                item_id: stripe_id(self.rng, "si"),
                price: crate::catalog::addon_price(),
                quantity: self.rng.u32(1..=5),
            }),
            Some(_) if self.rng.bool() => None,
            Some(item) => Some(ItemFact { quantity: self.rng.u32(1..=5), ..item }),
        };
    }

    /// Emits the customer's Stripe Entitlements summary at `t`: a random set of features,
    /// and sometimes a second, different one in the same second (the greater event id wins).
    pub(crate) fn feature_summary(&mut self, t: i64) {
        let copies = if self.rng.u8(0..4) == 0 { 2 } else { 1 };
        for _ in 0..copies {
            let lookup_keys: Vec<String> = crate::catalog::STRIPE_FEATURE_KEYS
                .iter()
                .filter(|_| self.rng.bool())
                .map(|k| (*k).to_owned())
                .collect();
            let fact = EventFact::FeatureSummary { customer_id: self.customer_id.clone(), lookup_keys };
            self.push("entitlements.active_entitlement_summary.updated", t, fact);
        }
    }

    pub(crate) fn advance_period(&mut self) {
        let len = self.item.price.interval.period_secs();
        self.period_start = self.period_end;
        self.period_end += len;
    }

    pub(crate) fn set_trial(&mut self, trial_end: i64) {
        self.period_end = trial_end;
    }

    pub(crate) fn status(&self) -> SubscriptionStatus {
        self.status.clone()
    }

    pub(crate) fn lookup_key(&self) -> &str {
        &self.item.price.lookup_key
    }

    pub(crate) fn finish(self, user_id: String) -> Lifecycle {
        Lifecycle {
            subscription_id: self.subscription_id,
            customer_id: self.customer_id,
            user_id,
            api_version: self.api,
            events: self.events,
        }
    }
}

fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    rng.f64() < p
}

/// Generates `count` lifecycles. Deterministic: the same seed and options give the same
/// lifecycles, byte for byte.
pub fn generate_lifecycles(seed: u64, count: usize, options: &GeneratorOptions) -> Vec<Lifecycle> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count).map(|_| generate_one(&mut rng, options)).collect()
}

fn generate_one(rng: &mut fastrand::Rng, o: &GeneratorOptions) -> Lifecycle {
    let prices = catalog();
    let api = if chance(rng, o.legacy_api_ratio) { ApiVersion::Legacy } else { ApiVersion::Basil };
    let price = prices[rng.usize(..prices.len())].clone();
    let user_id = format!("usr_{}", (0..16).map(|_| rng.alphanumeric()).collect::<String>());
    let style = match rng.u8(0..3) {
        0 => IdentityStyle::Both,
        1 => IdentityStyle::ClientReference,
        _ => IdentityStyle::Metadata,
    };
    let sub_meta = (style != IdentityStyle::ClientReference && rng.bool()).then(|| user_id.clone());
    let t0 = o.start + rng.i64(0..o.spread_secs.max(1));
    let trial = chance(rng, o.trial_ratio);
    let mut s = Script::new(rng, api, price, sub_meta, t0);
    let client_ref = (style != IdentityStyle::Metadata).then(|| user_id.clone());
    let meta = (style != IdentityStyle::ClientReference).then(|| user_id.clone());
    let email = format!("{}@example.co.uk", user_id.to_lowercase());

    // Checkout: the session completes in the same second as the subscription is created.
    let first_invoice = s.new_invoice_id();
    if trial {
        s.set_trial(t0 + 14 * DAY);
        s.checkout(t0, client_ref, meta, email);
        s.snapshot("customer.subscription.created", t0, SubscriptionStatus::Trialing);
        s.invoice(t0, &first_invoice, true, 0, "subscription_create", 1);
    } else {
        s.checkout(t0, client_ref, meta, email);
        s.snapshot("customer.subscription.created", t0, SubscriptionStatus::Incomplete);
        let paid_at = t0 + s.rng.i64(0..=1);
        s.snapshot("customer.subscription.updated", paid_at, SubscriptionStatus::Active);
        let amount = s.amount();
        s.invoice(paid_at, &first_invoice, true, amount, "subscription_create", 1);
    }

    let renewals = s.rng.u32(1..=o.max_renewals.max(1));
    let mut ended = false;
    for _ in 0..renewals {
        // Mid-period plan change.
        if chance(s.rng, o.plan_change_ratio) {
            let others: Vec<CatalogPrice> = catalog().into_iter().filter(|p| p.lookup_key != s.lookup_key()).collect();
            let next = others[s.rng.usize(..others.len())].clone();
            let len = s.period_end - s.period_start;
            let t = s.period_start + s.rng.i64(DAY..(len / 2).max(DAY + 1));
            let t = t.max(s.now());
            s.set_price(next, t);
            let status = s.status();
            s.snapshot("customer.subscription.updated", t, status);
            let inv = s.new_invoice_id();
            let amount = s.amount() / 2;
            let at = s.now() + s.rng.i64(0..=1);
            s.invoice(at, &inv, true, amount, "subscription_update", 1);
        }
        // An add-on bought, resized or dropped mid-period.
        if o.addon_ratio > 0.0 && chance(s.rng, o.addon_ratio) {
            let len = s.period_end - s.period_start;
            let t = (s.period_start + s.rng.i64(DAY..(len / 2).max(DAY + 1))).max(s.now());
            s.change_addon();
            let status = s.status();
            s.snapshot("customer.subscription.updated", t, status);
        }
        // Stripe recomputes the customer's active features.
        if o.summary_ratio > 0.0 && chance(s.rng, o.summary_ratio) {
            let len = s.period_end - s.period_start;
            let t = s.period_start + s.rng.i64(0..len.max(1));
            s.feature_summary(t);
        }
        // Cancellation scheduled for the period end.
        if chance(s.rng, o.cancel_at_period_end_ratio) {
            let len = s.period_end - s.period_start;
            let t = (s.period_start + s.rng.i64(DAY..(len / 2).max(DAY + 1))).max(s.now());
            s.set_cancel_at_period_end(true);
            let status = s.status();
            s.snapshot("customer.subscription.updated", t, status);
            if s.rng.f64() < 0.7 {
                let end = s.period_end + s.rng.i64(0..60);
                s.snapshot("customer.subscription.deleted", end, SubscriptionStatus::Canceled);
            }
            ended = true;
            break;
        }
        // Renewal at the period end.
        let due = s.period_end + s.rng.i64(0..3600);
        s.advance_period();
        let inv = s.new_invoice_id();
        let amount = s.amount();
        if chance(s.rng, o.past_due_ratio) {
            s.invoice(due, &inv, false, amount, "subscription_cycle", 1);
            s.snapshot("customer.subscription.updated", due, SubscriptionStatus::PastDue);
            let retries = s.rng.u32(1..=3);
            let mut recovered = false;
            for k in 1..=retries {
                let t = s.now() + s.rng.i64(2 * DAY..=4 * DAY);
                if k == retries && chance(s.rng, o.recover_ratio) {
                    s.invoice(t, &inv, true, amount, "subscription_cycle", k + 1);
                    s.snapshot("customer.subscription.updated", t, SubscriptionStatus::Active);
                    recovered = true;
                } else {
                    s.invoice(t, &inv, false, amount, "subscription_cycle", k + 1);
                    // Another update while still past_due (e.g. the app edits metadata):
                    // the grace period must still run from the first past_due snapshot.
                    if s.rng.bool() {
                        s.snapshot("customer.subscription.updated", t, SubscriptionStatus::PastDue);
                    }
                }
            }
            if !recovered {
                // Sometimes the traffic ends mid-dunning: the subscription stays past_due.
                if chance(s.rng, 0.3) {
                    ended = true;
                    break;
                }
                let t = s.now() + DAY;
                if s.rng.bool() {
                    s.snapshot("customer.subscription.deleted", t, SubscriptionStatus::Canceled);
                } else {
                    s.snapshot("customer.subscription.updated", t, SubscriptionStatus::Unpaid);
                }
                ended = true;
                break;
            }
        } else {
            s.invoice(due, &inv, true, amount, "subscription_cycle", 1);
            s.snapshot("customer.subscription.updated", due, SubscriptionStatus::Active);
        }
    }
    if !ended && chance(s.rng, o.cancel_now_ratio) {
        // Sometimes in the very second of the last update: only the status tie-break can
        // then tell which came last.
        let t = if s.rng.bool() { s.now() } else { s.now() + s.rng.i64(DAY..10 * DAY) };
        s.snapshot("customer.subscription.deleted", t, SubscriptionStatus::Canceled);
    }
    s.finish(user_id)
}
