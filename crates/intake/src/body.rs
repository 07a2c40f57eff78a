//! Reading a webhook body under a size limit, and refusing an oversized one so the client
//! actually sees the 413.
//!
//! A server that answers before reading the whole body and then closes the connection makes
//! the kernel send a TCP reset, which can discard the answer before the client reads it: the
//! sender sees "connection reset" instead of 413 and cannot tell why. So a body a little over
//! the limit is read to its end and thrown away (bounded in bytes and time, like a lingering
//! close); only a body far over the limit is cut off at once.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

/// Why a body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit (declared or sent).
    #[error("body over the limit")]
    TooLarge,
    /// The body broke HTTP framing (bad chunk, conflicting lengths, connection dropped).
    #[error("the request body could not be read: {0}")]
    Malformed(String),
}

/// How much of an oversized body is read and discarded so the 413 reaches the client: four
/// times the limit. Beyond that, answering at once is cheaper than reading on.
pub fn drain_cap(limit: usize) -> usize {
    limit.saturating_mul(4)
}

/// Longest time spent discarding an oversized body before answering anyway.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads `body` if it is at most `limit` bytes. `declared` is the Content-Length, if any: a
/// declared length over the limit is refused without keeping a byte. Not time-bounded: the
/// caller wraps it in its own timeout.
pub async fn read_limited(mut body: Body, limit: usize, declared: Option<u64>) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= drain_cap(limit) as u64) {
            discard(body, drain_cap(limit)).await;
        }
        return Err(BodyError::TooLarge);
    }
    // Sized once from the declared length (the listener's body budget already reserved it),
    // so the buffer never holds up to twice the body while doubling.
    let mut kept: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Malformed(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if kept.len() + data.len() > limit {
            let seen = kept.len() + data.len();
            drop(kept);
            discard(body, drain_cap(limit).saturating_sub(seen)).await;
            return Err(BodyError::TooLarge);
        }
        kept.extend_from_slice(&data);
    }
    Ok(Bytes::from(kept))
}

/// Reads and drops up to `max` more bytes of `body`, for at most [`DRAIN_TIME`].
async fn discard(mut body: Body, max: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0usize;
        while seen <= max {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A body of `chunks` chunks of `size` bytes that counts how many were read.
    fn counted(chunks: usize, size: usize) -> (Body, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let counter = read.clone();
        let stream = futures::stream::iter((0..chunks).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))
        }));
        (Body::from_stream(stream), read)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_returned_whole() {
        let (body, _) = counted(4, 100);
        let bytes = read_limited(body, 400, None).await.expect("within the limit");
        assert_eq!(bytes.len(), 400);
    }

    #[tokio::test]
    async fn a_body_a_little_over_the_limit_is_read_to_the_end_and_refused() {
        let (body, read) = counted(5, 100);
        assert!(matches!(read_limited(body, 400, None).await, Err(BodyError::TooLarge)));
        assert_eq!(read.load(Ordering::SeqCst), 5, "the rest was drained so the 413 reaches the client");
        let (body, read) = counted(5, 100);
        assert!(matches!(read_limited(body, 400, Some(500)).await, Err(BodyError::TooLarge)));
        assert_eq!(read.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_body_far_over_the_limit_is_cut_off() {
        let (body, read) = counted(100, 100);
        assert!(matches!(read_limited(body, 400, None).await, Err(BodyError::TooLarge)));
        let n = read.load(Ordering::SeqCst);
        assert!(n < 100, "stopped draining after the cap, read {n} chunks");
        assert!(n * 100 > drain_cap(400), "drained up to the cap, read {n} chunks");
        let (body, read) = counted(100, 100);
        assert!(matches!(read_limited(body, 400, Some(10_000)).await, Err(BodyError::TooLarge)));
        assert_eq!(read.load(Ordering::SeqCst), 0, "a declared huge body is not read at all");
    }

    #[tokio::test]
    async fn a_broken_body_is_malformed() {
        let stream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")),
        ]);
        let err = read_limited(Body::from_stream(stream), 400, None).await.expect_err("broken");
        assert!(matches!(err, BodyError::Malformed(_)), "{err:?}");
    }
}
