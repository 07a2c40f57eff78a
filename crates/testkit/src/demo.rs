//! A small, fixed, realistic event set for `subsync demo` and smoke tests: three users, and
//! a delivery order that is deliberately out of order, with a duplicate and the
//! checkout/subscription.created race pair.

use subsync_domain::SubscriptionStatus;

use crate::catalog::price;
use crate::delivery::Delivery;
use crate::event::{ApiVersion, GeneratedEvent};
use crate::generator::{Lifecycle, Script};

const DAY: i64 = 86_400;

/// Time origin of the demo: 2026-01-01T00:00:00Z.
pub const DEMO_BASE: i64 = 1_767_225_600;

/// A good instant to evaluate the demo at (base + 20 days): Alice has basic, Bob still has
/// pro until his period ends (he cancelled at period end), Carol is `past_due` inside her
/// 7-day grace period (until base + 22 days).
pub const DEMO_NOW: i64 = DEMO_BASE + 20 * DAY;

/// Webhook secret the demo signs with (not a real secret).
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_subsync_demo_not_a_real_secret";

const DEMO_SEED: u64 = 20_260_101;

/// Checkout → created (incomplete) → updated (active) → invoice.paid, like the generator.
fn start(s: &mut Script<'_>, t: i64, client_ref: Option<&str>, meta: Option<&str>, email: &str) {
    let inv = s.new_invoice_id();
    s.checkout(t, client_ref.map(Into::into), meta.map(Into::into), email.into());
    s.snapshot("customer.subscription.created", t, SubscriptionStatus::Incomplete);
    s.snapshot("customer.subscription.updated", t + 1, SubscriptionStatus::Active);
    let amount = s.amount();
    s.invoice(t + 1, &inv, true, amount, "subscription_create", 1);
}

/// The three demo lifecycles in true order:
/// * `usr_alice` buys `basic_monthly` (new API; client_reference_id + metadata);
/// * `usr_bob` buys `pro_monthly` (old API; client_reference_id only), then schedules
///   cancellation at period end on day 10;
/// * `usr_carol` bought `basic_monthly` 15 days before the base (metadata only); her
///   renewal on day 15 fails and the subscription goes `past_due`.
pub fn demo_lifecycles() -> Vec<Lifecycle> {
    let mut rng = fastrand::Rng::with_seed(DEMO_SEED);
    let (Some(basic), Some(pro)) = (price("basic_monthly"), price("pro_monthly")) else {
        return Vec::new();
    };

    let mut carol = Script::new(&mut rng, ApiVersion::Basil, basic.clone(), None, DEMO_BASE - 15 * DAY);
    start(&mut carol, DEMO_BASE - 15 * DAY, None, Some("usr_carol"), "carol@example.co.uk");
    let due = carol.period_end;
    carol.advance_period();
    let inv = carol.new_invoice_id();
    let amount = carol.amount();
    carol.invoice(due, &inv, false, amount, "subscription_cycle", 1);
    carol.snapshot("customer.subscription.updated", due, SubscriptionStatus::PastDue);
    let carol = carol.finish("usr_carol".into());

    let mut alice = Script::new(&mut rng, ApiVersion::Basil, basic, Some("usr_alice".into()), DEMO_BASE);
    start(&mut alice, DEMO_BASE, Some("usr_alice"), Some("usr_alice"), "alice@example.co.uk");
    let alice = alice.finish("usr_alice".into());

    let mut bob = Script::new(&mut rng, ApiVersion::Legacy, pro, None, DEMO_BASE + 60);
    start(&mut bob, DEMO_BASE + 60, Some("usr_bob"), None, "bob@example.co.uk");
    bob.set_cancel_at_period_end(true);
    bob.snapshot("customer.subscription.updated", DEMO_BASE + 10 * DAY, SubscriptionStatus::Active);
    let bob = bob.finish("usr_bob".into());

    vec![alice, bob, carol]
}

/// The demo's delivery order over [`demo_lifecycles`]: Alice's `updated` before her
/// `created`; Bob's `customer.subscription.created` and `checkout.session.completed` as a
/// concurrent pair in reverse order, and his invoice before his activation; Carol's
/// `past_due` update before the failed invoice that caused it, then delivered again.
pub fn demo_plan() -> (Vec<Lifecycle>, Vec<Delivery>) {
    let lifecycles = demo_lifecycles();
    let d = |lifecycle, event| Delivery { lifecycle, event, duplicate: false, concurrent_with_next: false };
    let (alice, bob, carol) = (0, 1, 2);
    let mut plan = vec![
        d(carol, 0),
        d(carol, 1),
        d(carol, 2),
        d(carol, 3),
        d(alice, 2),
        d(alice, 0),
        d(alice, 1),
        d(alice, 3),
        Delivery { concurrent_with_next: true, ..d(bob, 1) },
        d(bob, 0),
        d(bob, 3),
        d(bob, 2),
        d(bob, 4),
        d(carol, 5),
        d(carol, 4),
        Delivery { duplicate: true, ..d(carol, 5) },
    ];
    plan.retain(|p| p.event(&lifecycles).is_some());
    (lifecycles, plan)
}

/// The demo events in delivery order (the duplicate appears twice, byte-identical).
pub fn demo_events() -> Vec<GeneratedEvent> {
    let (lifecycles, plan) = demo_plan();
    plan.iter().filter_map(|p| p.event(&lifecycles).cloned()).collect()
}
