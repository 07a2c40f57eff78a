//! Delivery plans: the order a fake Stripe sends generated events in, with duplicates and
//! races, so tests exercise what production sees (no ordering guarantee, redeliveries).

use serde::{Deserialize, Serialize};

use crate::event::GeneratedEvent;
use crate::generator::Lifecycle;

/// How to turn lifecycles into a delivery order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryOptions {
    /// Chance each event is delivered a second time (identical bytes).
    pub duplicate_ratio: f64,
    /// Shuffle everything; otherwise deliver in global true order (by `created`), with
    /// duplicates re-sent at a random later point.
    pub shuffle: bool,
    /// Put each lifecycle's `checkout.session.completed` and
    /// `customer.subscription.created` next to each other (in random order) and mark the
    /// first with `concurrent_with_next`, so senders can fire them at the same time.
    pub concurrent_pairs: bool,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self { duplicate_ratio: 0.1, shuffle: true, concurrent_pairs: true }
    }
}

/// One POST a sender makes: a reference to an event (duplicates reference the same event,
/// so the bytes are identical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Delivery {
    /// Index into the lifecycles slice.
    pub lifecycle: usize,
    /// Index into that lifecycle's events.
    pub event: usize,
    /// This is a redelivery of an event delivered elsewhere in the plan.
    pub duplicate: bool,
    /// Send this one concurrently with the next delivery in the plan.
    pub concurrent_with_next: bool,
}

impl Delivery {
    /// The event this delivery sends.
    pub fn event<'a>(&self, lifecycles: &'a [Lifecycle]) -> Option<&'a GeneratedEvent> {
        lifecycles.get(self.lifecycle)?.events.get(self.event)
    }
}

fn plain(lifecycle: usize, event: usize, duplicate: bool) -> Delivery {
    Delivery { lifecycle, event, duplicate, concurrent_with_next: false }
}

/// Builds a delivery plan. Deterministic for a seed. Every event is delivered at least
/// once; duplicates are extra.
pub fn delivery_plan(lifecycles: &[Lifecycle], seed: u64, options: &DeliveryOptions) -> Vec<Delivery> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut originals: Vec<(i64, usize, usize)> = lifecycles
        .iter()
        .enumerate()
        .flat_map(|(l, lc)| lc.events.iter().enumerate().map(move |(e, ev)| (ev.created, l, e)))
        .collect();
    originals.sort_unstable();
    let mut plan: Vec<Delivery> = originals.iter().map(|&(_, l, e)| plain(l, e, false)).collect();
    let dups: Vec<Delivery> =
        originals.iter().filter(|_| rng.f64() < options.duplicate_ratio).map(|&(_, l, e)| plain(l, e, true)).collect();
    if options.shuffle {
        plan.extend(dups);
        rng.shuffle(&mut plan);
    } else {
        for dup in dups {
            let first = plan
                .iter()
                .position(|d| d.lifecycle == dup.lifecycle && d.event == dup.event && !d.duplicate)
                .unwrap_or(0);
            let at = rng.usize(first + 1..=plan.len());
            plan.insert(at, dup);
        }
    }
    if options.concurrent_pairs {
        pair_checkout_races(lifecycles, &mut plan, &mut rng);
    }
    plan
}

fn pair_checkout_races(lifecycles: &[Lifecycle], plan: &mut Vec<Delivery>, rng: &mut fastrand::Rng) {
    for (l, lc) in lifecycles.iter().enumerate() {
        let find = |ty: &str| lc.events.iter().position(|e| e.event_type == ty);
        let (Some(checkout), Some(created)) =
            (find("checkout.session.completed"), find("customer.subscription.created"))
        else {
            continue;
        };
        let (first, second) = if rng.bool() { (checkout, created) } else { (created, checkout) };
        let pos =
            |plan: &[Delivery], e: usize| plan.iter().position(|d| d.lifecycle == l && d.event == e && !d.duplicate);
        let Some(second_at) = pos(plan, second) else {
            continue;
        };
        let moved = plan.remove(second_at);
        let Some(first_at) = pos(plan, first) else {
            plan.insert(second_at, moved);
            continue;
        };
        plan[first_at].concurrent_with_next = true;
        plan.insert(first_at + 1, moved);
    }
}
