//! The client-side rate limit: one token bucket shared by every clone of the client.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket refilled at `rate` per second, holding at most `rate` tokens (one
/// second of burst). Why reservations: a caller that finds no token takes one anyway
/// (the count goes negative) and sleeps until its turn, so waiters are served in the
/// order they asked and nobody spins.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `per_second` requests per second (at least 1).
    pub(crate) fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self { rate, state: Mutex::new(State { tokens: rate, last: Instant::now() }) }
    }

    /// Waits for this caller's token.
    pub(crate) async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token now and says how long to wait before using it.
    fn reserve(&self) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.rate);
        state.last = now;
        state.tokens -= 1.0;
        if state.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-state.tokens / self.rate) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let bucket = TokenBucket::new(5);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "one second of burst is free");
        for _ in 0..10 {
            bucket.acquire().await;
        }
        // 10 more at 5/s: 2 s of paused (virtual) time, exactly.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1990) && elapsed <= Duration::from_millis(2010), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_bucket() {
        let bucket = Arc::new(TokenBucket::new(2));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let bucket = bucket.clone();
            tasks.push(tokio::spawn(async move {
                bucket.acquire().await;
                Instant::now()
            }));
        }
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.expect("task").duration_since(start));
        }
        done.sort();
        // 2 free, then one every 500 ms: the last of 8 at 3 s.
        assert_eq!(done[1], Duration::ZERO);
        let last = done[7];
        assert!(last >= Duration::from_millis(2990) && last <= Duration::from_millis(3010), "{last:?}");
        // Never more than 2 + 2·t in the first t seconds.
        for (i, at) in done.iter().enumerate() {
            assert!((i as f64) < 2.0 + 2.0 * at.as_secs_f64() + 0.01, "{i}: {at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refills_while_idle_but_not_beyond_one_second() {
        let bucket = TokenBucket::new(3);
        for _ in 0..3 {
            bucket.acquire().await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        for _ in 0..4 {
            bucket.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(330) && elapsed <= Duration::from_millis(340), "{elapsed:?}");
    }
}
