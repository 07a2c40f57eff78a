//! When to try again and how long to wait: Stripe's advice first, then the status.

use std::time::Duration;

use crate::config::MAX_BACKOFF;

/// What Stripe's answer (or its absence) says about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try again (if attempts remain).
    Retry,
    /// Stop: retrying would give the same answer.
    Stop,
}

/// Decides on an HTTP answer. Why this order: `Stripe-Should-Retry` is Stripe telling us
/// what it knows (a lock timeout worth retrying, a 500 that would only repeat), so it
/// wins over the status; a refused key never retries, whatever the header says.
pub(crate) fn verdict(status: u16, should_retry: Option<bool>) -> Verdict {
    if status == 401 || status == 403 {
        return Verdict::Stop;
    }
    match should_retry {
        Some(true) => Verdict::Retry,
        Some(false) => Verdict::Stop,
        None if status == 429 || status == 409 || status >= 500 => Verdict::Retry,
        None => Verdict::Stop,
    }
}

/// Parses `Stripe-Should-Retry` (`true`/`false`; anything else is no advice).
pub(crate) fn should_retry_header(value: Option<&str>) -> Option<bool> {
    match value.map(str::trim) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// Parses `Retry-After` given in seconds (Stripe's form); a date or garbage is ignored.
pub(crate) fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(MAX_BACKOFF.as_secs_f64())))
}

/// The wait before retry number `retry` (0 = the first retry): `base · 2^retry`, capped
/// at [`MAX_BACKOFF`], with jitter in `[½, 1]` of that so clients that failed together
/// do not retry together; never less than `Retry-After` (itself capped).
pub(crate) fn delay(base: Duration, retry: u32, retry_after: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.min(16)).min(MAX_BACKOFF);
    let jittered = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
    match retry_after {
        Some(after) => jittered.max(after.min(MAX_BACKOFF)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_advice_wins_except_for_refused_keys() {
        assert_eq!(verdict(409, Some(true)), Verdict::Retry);
        assert_eq!(verdict(400, Some(true)), Verdict::Retry);
        assert_eq!(verdict(500, Some(false)), Verdict::Stop);
        assert_eq!(verdict(429, Some(false)), Verdict::Stop);
        assert_eq!(verdict(401, Some(true)), Verdict::Stop);
        assert_eq!(verdict(403, None), Verdict::Stop);
    }

    #[test]
    fn without_advice_the_status_decides() {
        for status in [429, 409, 500, 502, 503, 504] {
            assert_eq!(verdict(status, None), Verdict::Retry, "{status}");
        }
        for status in [400, 402, 404, 410, 422] {
            assert_eq!(verdict(status, None), Verdict::Stop, "{status}");
        }
    }

    #[test]
    fn headers_parse() {
        assert_eq!(should_retry_header(Some("true")), Some(true));
        assert_eq!(should_retry_header(Some("false")), Some(false));
        assert_eq!(should_retry_header(Some("maybe")), None);
        assert_eq!(should_retry_header(None), None);
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("3600")), Some(MAX_BACKOFF), "bounded");
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(Some("NaN")), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(500);
        for _ in 0..200 {
            for retry in 0..6 {
                let full = base * 2u32.pow(retry);
                let full = full.min(MAX_BACKOFF);
                let d = delay(base, retry, None);
                assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?} not in [{:?}, {full:?}]", full / 2);
            }
            assert!(delay(base, 40, None) <= MAX_BACKOFF);
            assert!(delay(base, 0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
            assert!(delay(base, 0, Some(Duration::from_secs(60))) <= MAX_BACKOFF);
        }
    }
}
