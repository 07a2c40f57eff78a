//! One connection: its socket (which reports the first byte after an idle wait), its
//! requests (which reserve body budget and report their phase), and its task (which closes
//! it at its phase's deadline, when shed, or at shutdown).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::Shared;
use crate::budget::{self, Reservation};
use crate::config::BODY_TIMEOUT_GRACE;
use crate::shed::{Conn, Phase};

/// Longest a request waits for body budget (shedding slow bodies meanwhile) before its 503.
const ADMIT_WAIT: Duration = Duration::from_millis(500);
/// Pause between two tries for body budget.
const ADMIT_STEP: Duration = Duration::from_millis(10);
/// Longest a connection may take to finish its request once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// The socket, reporting the first byte received after an idle keep-alive wait.
pub(crate) struct TrackedStream {
    pub(crate) stream: TcpStream,
    pub(crate) conn: Arc<Conn>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.advance(Phase::Idle, Phase::Headers);
            self.conn.first_byte();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A request body that holds its share of the budget (growing it when more arrives than
/// was declared) and reports when it is complete.
struct TrackedBody {
    inner: Incoming,
    reservation: Arc<Reservation>,
    conn: Arc<Conn>,
    received: usize,
}

/// Why a body stopped: the budget could not cover what kept arriving.
#[derive(Debug, thiserror::Error)]
#[error("the request body budget is spent")]
struct BudgetSpent;

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                self.received = self.received.saturating_add(len);
                if !self.reservation.cover(self.received) {
                    self.conn.set(Phase::Handling);
                    return Poll::Ready(Some(Err(BudgetSpent.into())));
                }
                if self.inner.is_end_stream() {
                    self.conn.advance(Phase::Body, Phase::Handling);
                }
            }
            Poll::Ready(_) => self.conn.advance(Phase::Body, Phase::Handling),
            Poll::Pending => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The per-connection service: admission against the body budget, then the router.
#[derive(Clone)]
pub(crate) struct ConnService {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<Conn>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let (shared, conn) = (self.shared.clone(), self.conn.clone());
        Box::pin(async move {
            let need = budget::up_front(request.headers(), shared.config.body_limit);
            let Some(reservation) = admit(&shared, &conn, need).await else {
                shared.metrics.bodies_refused.inc();
                conn.set(Phase::Idle);
                return Ok(overloaded());
            };
            conn.set(if request.body().is_end_stream() { Phase::Handling } else { Phase::Body });
            let request = request.map(|inner| {
                Body::new(TrackedBody { inner, reservation: reservation.clone(), conn: conn.clone(), received: 0 })
            });
            let response = shared.router.clone().oneshot(request).await;
            drop(reservation);
            conn.set(Phase::Idle);
            response
        })
    }
}

/// Reserves `need` body bytes, shedding slow bodies to make room, for at most [`ADMIT_WAIT`]
/// (meanwhile the connection is [`Phase::Queued`]).
async fn admit(shared: &Shared, conn: &Conn, need: usize) -> Option<Arc<Reservation>> {
    if let Some(r) = shared.budget.try_reserve(need) {
        return Some(r);
    }
    conn.set(Phase::Queued);
    let deadline = Instant::now() + ADMIT_WAIT;
    loop {
        if shared.registry.shed_one_body().is_some() {
            shared.metrics.shed_budget.inc();
        }
        tokio::time::sleep(ADMIT_STEP).await;
        if let Some(r) = shared.budget.try_reserve(need) {
            return Some(r);
        }
        if Instant::now() >= deadline {
            shared.warn_throttled("body budget spent: answering 503 with Retry-After");
            return None;
        }
    }
}

/// The 503 for a request that found no body budget, in the intake's error shape; the
/// connection is closed after it so the unread body is not read.
fn overloaded() -> Response<Body> {
    let body = serde_json::json!({
        "error": "overloaded",
        "message": "too many request bodies are in flight; retry shortly",
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// When the connection's phase runs out, if it can.
fn deadline(shared: &Shared, conn: &Conn) -> Option<(Instant, Phase)> {
    let (phase, since) = conn.phase();
    let limit = match phase {
        // From the connection (or the first byte after an idle wait).
        Phase::Fresh | Phase::Headers => shared.config.header_timeout,
        Phase::Idle => shared.config.idle_timeout,
        Phase::Body => shared.config.body_timeout + BODY_TIMEOUT_GRACE,
        // Bounded by the admission wait, and by the application.
        Phase::Queued | Phase::Handling => return None,
        Phase::Closing => Duration::ZERO,
    };
    Some((since + limit, phase))
}

/// Serves one connection until it ends, times out, is shed, or shutdown has let it finish.
pub(crate) async fn run(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    stream: TcpStream,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(TrackedStream { stream, conn: conn.clone() });
    let service = ConnService { shared: shared.clone(), conn: conn.clone() };
    let http = shared.http.serve_connection(io, service);
    tokio::pin!(http);
    // Bounded: every pass ends the connection or waits for an event that changes its state.
    loop {
        let due = deadline(&shared, &conn);
        let sleep = async {
            match due {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = shared.config.name, error = %e, "connection ended with an error");
                }
                break;
            }
            () = conn.close.notified() => break,
            () = conn.changed.notified() => {}
            () = sleep => {
                // The phase may have moved on since the deadline was computed.
                if let Some((at, phase)) = deadline(&shared, &conn)
                    && at <= Instant::now()
                {
                    shared.metrics.timed_out(phase.as_str());
                    break;
                }
            }
            _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
                http.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, http.as_mut()).await;
                break;
            }
        }
    }
}
