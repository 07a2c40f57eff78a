//! The global budget of request-body bytes in flight.
//!
//! A webhook's body must be read whole before its signature can be checked, so memory held
//! for bodies grows with the number of senders unless their total is bounded. Every request
//! reserves its declared `Content-Length` before its handler runs (a body with no declared
//! length reserves as its bytes arrive) and gives it back when both the request's handling
//! and its body are finished. A request that cannot reserve is refused with 503 and
//! `Retry-After`, which Stripe retries.
//!
//! Small bodies (at most [`SMALL_BODY`], every ordinary Stripe event) may use the whole
//! budget; larger ones only all but its last eighth, so large slow bodies alone can never
//! crowd out the webhooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, header};
use prometheus_client::metrics::gauge::Gauge;

/// Bodies up to this size may use the headroom the larger ones leave.
pub const SMALL_BODY: usize = 64 * 1024;

/// Bytes reserved by requests in flight, against a fixed capacity.
#[derive(Debug)]
pub struct BodyBudget {
    capacity: usize,
    used: AtomicUsize,
    gauge: Gauge,
}

impl BodyBudget {
    /// A budget of `capacity` bytes, reporting its use in `gauge`.
    pub fn new(capacity: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self { capacity, used: AtomicUsize::new(0), gauge })
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most bytes in use a reservation totalling `total` may bring the budget to.
    fn ceiling(&self, total: usize) -> usize {
        if total <= SMALL_BODY { self.capacity } else { self.capacity - self.capacity / 8 }
    }

    /// Takes `bytes` more for a reservation that will then total `total`, if they fit.
    fn take(&self, bytes: usize, total: usize) -> bool {
        let ceiling = self.ceiling(total);
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= ceiling)
            })
            .is_ok();
        if taken {
            self.gauge.inc_by(bytes as i64);
        }
        taken
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.dec_by(bytes as i64);
    }

    /// Reserves `bytes` (0 is always granted), or `None` if they do not fit now.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Arc<Reservation>> {
        if bytes > 0 && !self.take(bytes, bytes) {
            return None;
        }
        Some(Arc::new(Reservation { budget: self.clone(), bytes: AtomicUsize::new(bytes) }))
    }
}

/// Bytes held for one request, given back when the last handle to it is dropped (the
/// request's handling and its body each hold one).
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: AtomicUsize,
}

impl Reservation {
    /// Makes the reservation cover at least `total` bytes, if the budget allows.
    pub fn cover(&self, total: usize) -> bool {
        let held = self.bytes.load(Ordering::Acquire);
        if total <= held {
            return true;
        }
        if self.budget.take(total - held, total) {
            self.bytes.fetch_add(total - held, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(*self.bytes.get_mut());
    }
}

/// What a request reserves before its handler runs: its declared length when the
/// application will read it (at most `body_limit`); nothing when it declares none (chunked
/// bodies reserve as they arrive) or declares more than the limit (the application refuses
/// it unread).
pub fn up_front(headers: &HeaderMap, body_limit: usize) -> usize {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n <= body_limit as u64)
        .map_or(0, |n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(capacity: usize) -> Arc<BodyBudget> {
        BodyBudget::new(capacity, Gauge::default())
    }

    #[test]
    fn reservations_are_given_back_when_dropped() {
        let budget = budget(1000);
        let a = budget.try_reserve(600).expect("fits");
        assert!(budget.try_reserve(500).is_none(), "600 + 500 > 1000");
        let b = budget.try_reserve(400).expect("600 + 400 fits exactly");
        assert_eq!(budget.in_use(), 1000);
        assert_eq!(budget.gauge.get(), 1000);
        let body_handle = a.clone();
        drop(a);
        assert_eq!(budget.in_use(), 1000, "the body still holds it");
        drop(body_handle);
        drop(b);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.gauge.get(), 0);
        assert!(budget.try_reserve(0).is_some(), "a request without a body always passes");
    }

    #[test]
    fn large_bodies_leave_the_last_eighth_to_small_ones() {
        let capacity = 8 * 1024 * 1024;
        let budget = budget(capacity);
        let mut large = Vec::new();
        while let Some(r) = budget.try_reserve(SMALL_BODY + 1) {
            large.push(r);
            assert!(large.len() <= capacity / SMALL_BODY, "bounded");
        }
        assert!(budget.in_use() <= capacity - capacity / 8, "large bodies stopped at 7/8: {}", budget.in_use());
        let small = budget.try_reserve(4 * 1024).expect("a webhook still fits");
        assert!(small.cover(SMALL_BODY), "a small body may grow within the headroom");
        assert!(!small.cover(SMALL_BODY + 1), "but not into a large one past 7/8");
        assert_eq!(small.bytes(), SMALL_BODY);
    }

    #[test]
    fn a_reservation_grows_only_within_the_budget() {
        let budget = budget(100);
        let r = budget.try_reserve(0).expect("empty");
        assert!(r.cover(60));
        assert!(r.cover(50), "already covered");
        assert!(!r.cover(101));
        assert_eq!(r.bytes(), 60);
        assert_eq!(budget.in_use(), 60);
        drop(r);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn the_up_front_reservation_is_the_declared_length_within_the_limit() {
        let mut headers = HeaderMap::new();
        assert_eq!(up_front(&headers, 1000), 0, "no body declared");
        headers.insert(header::CONTENT_LENGTH, "700".parse().expect("value"));
        assert_eq!(up_front(&headers, 1000), 700);
        headers.insert(header::CONTENT_LENGTH, "1001".parse().expect("value"));
        assert_eq!(up_front(&headers, 1000), 0, "refused unread by the application");
        headers.insert(header::CONTENT_LENGTH, "nonsense".parse().expect("value"));
        assert_eq!(up_front(&headers, 1000), 0);
    }
}
