//! The open connections, what each is doing, and which to close first when there are too
//! many or the body budget is spent.
//!
//! Each connection is in one [`Phase`]. Shedding never touches a connection whose request is
//! being handled (a webhook that was read and is being stored). It closes, in this order:
//! the connection that has waited longest for a request it already started or between
//! requests (headers stalled part-way, idle keep-alive); else a request still waiting for
//! body budget (it would get a 503); else the oldest connection that
//! has sent nothing yet (a real sender's request follows its handshake at once, so a fresh
//! connection is most likely a request on its way); else the body that has been arriving
//! longest, if for at least [`MIN_BODY_AGE`] (an ordinary webhook's body arrives in
//! milliseconds).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A body younger than this is never shed: it is most likely a real request arriving.
pub const MIN_BODY_AGE: Duration = Duration::from_secs(1);

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected, nothing received yet.
    Fresh,
    /// Part of a request's headers received, waiting for the rest.
    Headers,
    /// Idle between keep-alive requests: nothing received since the last answer.
    Idle,
    /// Headers read; waiting for body budget before its body is read.
    Queued,
    /// Headers read; the body is still arriving.
    Body,
    /// The request is read (or needs no body) and is being handled: never shed.
    Handling,
    /// Chosen to be closed; its task is closing it.
    Closing,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Headers,
            1 => Self::Idle,
            2 => Self::Body,
            3 => Self::Handling,
            5 => Self::Fresh,
            6 => Self::Queued,
            _ => Self::Closing,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Headers => 0,
            Self::Idle => 1,
            Self::Body => 2,
            Self::Handling => 3,
            Self::Closing => 4,
            Self::Fresh => 5,
            Self::Queued => 6,
        }
    }

    /// The `phase` label of the timeout metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh | Self::Headers => "headers",
            Self::Idle => "idle",
            Self::Queued => "queued",
            Self::Body => "body",
            Self::Handling => "handling",
            Self::Closing => "closing",
        }
    }
}

/// One open connection's shared state: its phase and since when, and the signals its task
/// waits on.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    epoch: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    /// Signalled when the connection is shed: its task drops it.
    pub close: Notify,
    /// Signalled on every phase change, so the task recomputes its deadline.
    pub changed: Notify,
}

impl Conn {
    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The phase now and since when.
    pub fn phase(&self) -> (Phase, Instant) {
        let phase = Phase::from_u8(self.phase.load(Ordering::Acquire));
        (phase, self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire)))
    }

    /// Moves to `phase` (since now), unless the connection is closing.
    pub fn set(&self, phase: Phase) {
        self.since_ms.store(self.millis(Instant::now()), Ordering::Release);
        let _ = self.phase.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
            (current != Phase::Closing.as_u8()).then_some(phase.as_u8())
        });
        self.changed.notify_one();
    }

    /// Moves from `from` to `to` (since now) only if the connection is in `from`.
    pub fn advance(&self, from: Phase, to: Phase) {
        if self.phase.compare_exchange(from.as_u8(), to.as_u8(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.since_ms.store(self.millis(Instant::now()), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// Marks the first byte of a new connection: [`Phase::Fresh`] to [`Phase::Headers`],
    /// keeping the time of connection (the header timeout counts from it).
    pub fn first_byte(&self) {
        let (fresh, headers) = (Phase::Fresh.as_u8(), Phase::Headers.as_u8());
        let _ = self.phase.compare_exchange(fresh, headers, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A connection as the shedding choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The connection.
    pub id: u64,
    /// Its phase.
    pub phase: Phase,
    /// Since when.
    pub since: Instant,
}

/// The connection to close first among `candidates` at `now`, if any may be closed.
pub fn pick_victim(candidates: impl IntoIterator<Item = Candidate>, now: Instant) -> Option<Candidate> {
    let mut waiting: Option<Candidate> = None;
    let mut fresh: Option<Candidate> = None;
    let mut queued: Option<Candidate> = None;
    let mut body: Option<Candidate> = None;
    for c in candidates {
        let slot = match c.phase {
            Phase::Idle | Phase::Headers => &mut waiting,
            Phase::Fresh => &mut fresh,
            Phase::Queued => &mut queued,
            Phase::Body if now.saturating_duration_since(c.since) >= MIN_BODY_AGE => &mut body,
            _ => continue,
        };
        // Oldest first; between equals, an idle connection (nothing in progress) goes first.
        let better = slot.is_none_or(|best| {
            c.since < best.since || (c.since == best.since && c.phase == Phase::Idle && best.phase != Phase::Idle)
        });
        if better {
            *slot = Some(c);
        }
    }
    waiting.or(queued).or(fresh).or(body)
}

/// Every open connection of one listener.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled when a connection is removed (shutdown waits for the last one).
    pub removed: Notify,
}

impl Default for Registry {
    fn default() -> Self {
        Self { epoch: Instant::now(), next_id: AtomicU64::new(0), conns: Mutex::default(), removed: Notify::new() }
    }
}

impl Registry {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.conns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a new connection, from which nothing was received yet.
    pub fn open(&self) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            epoch: self.epoch,
            phase: AtomicU8::new(Phase::Fresh.as_u8()),
            since_ms: AtomicU64::new(Instant::now().saturating_duration_since(self.epoch).as_millis() as u64),
            close: Notify::new(),
            changed: Notify::new(),
        });
        self.conns().insert(id, conn.clone());
        conn
    }

    /// Forgets a connection whose task ended.
    pub fn remove(&self, conn: &Conn) {
        self.conns().remove(&conn.id);
        self.removed.notify_waiters();
    }

    /// Open connections, not counting those being closed.
    pub fn active(&self) -> usize {
        self.conns().values().filter(|c| c.phase().0 != Phase::Closing).count()
    }

    /// Open connections, closing ones included.
    pub fn len(&self) -> usize {
        self.conns().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns().is_empty()
    }

    /// Closes the connection [`pick_victim`] chooses; returns its phase, or `None` if no
    /// connection may be shed.
    pub fn shed_one(&self) -> Option<Phase> {
        self.shed_where(|_| true)
    }

    /// Closes the slowest body still arriving (to free body budget), if one is old enough.
    pub fn shed_one_body(&self) -> Option<Phase> {
        self.shed_where(|phase| phase == Phase::Body)
    }

    fn shed_where(&self, eligible: impl Fn(Phase) -> bool) -> Option<Phase> {
        let conns = self.conns();
        // A victim may change phase between the choice and the mark: choose again (bounded).
        for _ in 0..4 {
            let now = Instant::now();
            let candidates = conns.values().map(|c| {
                let (phase, since) = c.phase();
                Candidate { id: c.id, phase, since }
            });
            let candidates = candidates.filter(|c| eligible(c.phase));
            let victim = pick_victim(candidates, now)?;
            let Some(conn) = conns.get(&victim.id) else { continue };
            if conn
                .phase
                .compare_exchange(victim.phase.as_u8(), Phase::Closing.as_u8(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                conn.close.notify_one();
                return Some(victim.phase);
            }
        }
        None
    }

    /// Closes every connection at once (shutdown's last resort).
    pub fn close_all(&self) {
        for conn in self.conns().values() {
            conn.phase.store(Phase::Closing.as_u8(), Ordering::Release);
            conn.close.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn c(id: u64, phase: Phase, since: Instant) -> Candidate {
        Candidate { id, phase, since }
    }

    #[test]
    fn the_oldest_waiting_connection_goes_first() {
        let t = Instant::now();
        let now = at(t, 10_000);
        let picked = pick_victim(
            [c(1, Phase::Headers, at(t, 500)), c(2, Phase::Idle, at(t, 100)), c(3, Phase::Body, at(t, 0))],
            now,
        );
        assert_eq!(picked.map(|v| v.id), Some(2), "idle since 100 ms beats headers since 500 ms and any body");
        let picked = pick_victim([c(1, Phase::Headers, at(t, 50)), c(2, Phase::Idle, at(t, 100))], now);
        assert_eq!(picked.map(|v| v.id), Some(1), "older headers first");
        let picked = pick_victim([c(1, Phase::Headers, at(t, 100)), c(2, Phase::Idle, at(t, 100))], now);
        assert_eq!(picked.map(|v| v.id), Some(2), "a tie goes to the idle one");
    }

    #[test]
    fn a_fresh_connection_goes_after_stalled_ones_and_before_bodies() {
        let t = Instant::now();
        let now = at(t, 10_000);
        let stalled = c(2, Phase::Headers, at(t, 900));
        let old_body = c(3, Phase::Body, at(t, 0));
        assert_eq!(pick_victim([c(1, Phase::Fresh, at(t, 100)), stalled, old_body], now).map(|v| v.id), Some(2));
        assert_eq!(pick_victim([c(1, Phase::Fresh, at(t, 100)), old_body], now).map(|v| v.id), Some(1));
        let picked = pick_victim([c(1, Phase::Fresh, at(t, 200)), c(4, Phase::Fresh, at(t, 100))], now);
        assert_eq!(picked.map(|v| v.id), Some(4), "the oldest silent connection");
        let picked = pick_victim([c(1, Phase::Fresh, at(t, 100)), c(5, Phase::Queued, at(t, 9_999))], now);
        assert_eq!(picked.map(|v| v.id), Some(5), "a request waiting for body budget before a fresh connection");
    }

    #[test]
    fn bodies_are_shed_only_when_slow_and_handling_never() {
        let t = Instant::now();
        let now = at(t, 10_000);
        let young = now - MIN_BODY_AGE + Duration::from_millis(1);
        assert_eq!(pick_victim([c(1, Phase::Body, young), c(2, Phase::Handling, t)], now), None);
        let picked = pick_victim(
            [c(1, Phase::Body, at(t, 3_000)), c(2, Phase::Body, at(t, 2_000)), c(3, Phase::Handling, t)],
            now,
        );
        assert_eq!(picked.map(|v| v.id), Some(2), "the body sending longest");
        assert_eq!(pick_victim([c(1, Phase::Closing, t), c(2, Phase::Handling, t)], now), None);
    }

    #[test]
    fn the_registry_sheds_in_order_and_never_twice() {
        let registry = Registry::default();
        let handling = registry.open();
        handling.set(Phase::Handling);
        let idle = registry.open();
        idle.set(Phase::Idle);
        let headers = registry.open();
        headers.first_byte();
        let fresh = registry.open();
        assert_eq!(registry.active(), 4);
        assert_eq!(registry.shed_one(), Some(Phase::Idle), "idle since the newest set() still beats nothing older");
        assert_eq!(idle.phase().0, Phase::Closing);
        idle.set(Phase::Idle);
        assert_eq!(idle.phase().0, Phase::Closing, "a closing connection stays closing");
        assert_eq!(registry.shed_one_body(), None, "no body is arriving");
        assert_eq!(registry.shed_one(), Some(Phase::Headers));
        assert_eq!(registry.shed_one(), Some(Phase::Fresh));
        assert_eq!(registry.shed_one(), None, "only the handled request is left");
        assert_eq!((registry.active(), registry.len()), (1, 4));
        for conn in [&idle, &headers, &fresh] {
            registry.remove(conn);
        }
        assert_eq!(registry.len(), 1);
        registry.close_all();
        assert_eq!(handling.phase().0, Phase::Closing);
    }
}
