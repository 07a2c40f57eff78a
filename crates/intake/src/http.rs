//! The HTTP surface: `POST /webhooks/stripe`, health, readiness and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subsync_eventlog::EventRecord;
use subsync_queue::Store;
use subsync_stripe::signature::{self, SignatureError};

use crate::body::{BodyError, read_limited};
use crate::committer::Committer;
use crate::config::IntakeConfig;
use crate::metrics::IntakeMetrics;

/// Everything a request handler needs, shared by all requests.
pub struct IntakeState {
    store: Store,
    config: IntakeConfig,
    committer: Committer,
    metrics: IntakeMetrics,
    registry: Arc<subsync_metrics::Registry>,
}

impl IntakeState {
    /// Starts the committers and registers metrics in `registry`.
    pub fn new(
        store: Store,
        config: IntakeConfig,
        registry: Arc<subsync_metrics::Registry>,
    ) -> Result<Arc<Self>, subsync_metrics::MetricsError> {
        let metrics = IntakeMetrics::register(&registry)?;
        let committer = Committer::start(store.clone(), config.batching, metrics.clone());
        Ok(Arc::new(Self { store, config, committer, metrics, registry }))
    }

    /// The intake's series, for callers that report on it directly (the benchmark).
    pub fn metrics(&self) -> &IntakeMetrics {
        &self.metrics
    }
}

/// The intake's routes. Serve it on the public address Stripe calls.
pub fn router(state: Arc<IntakeState>) -> Router {
    Router::new()
        .route("/webhooks/stripe", post(webhook))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // We read the body ourselves, with our own limit and a JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// A refusal: status, machine code, human message.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    outcome: &'static str,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>, outcome: &'static str) -> Self {
        Self { status, code, message: message.into(), outcome }
    }

    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "error": self.code, "message": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

async fn webhook(State(state): State<Arc<IntakeState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let (response, outcome) = match handle(&state, &headers, body).await {
        Ok((response, outcome)) => (response, outcome),
        Err(refusal) => {
            let outcome = refusal.outcome;
            tracing::info!(status = refusal.status.as_u16(), code = refusal.code, "webhook refused");
            (refusal.into_response(), outcome)
        }
    };
    state.metrics.count(outcome);
    state.metrics.latency.observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(state: &IntakeState, headers: &HeaderMap, body: Body) -> Result<(Response, &'static str), Refusal> {
    let (limit, body_timeout) = (state.config.body_limit, state.config.body_timeout);
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the {limit}-byte limit"),
            "too_large",
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        // Refused unread; `read_limited` discards a moderately oversized body first so
        // the client reads this 413 instead of a connection reset.
        let _ = tokio::time::timeout(body_timeout, read_limited(body, limit, declared)).await;
        return Err(too_large());
    }
    check_content_type(headers)?;
    let bytes = match tokio::time::timeout(body_timeout, read_limited(body, limit, declared)).await {
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("request body not received within {}s", body_timeout.as_secs()),
                "rejected_payload",
            ));
        }
        Ok(Err(BodyError::TooLarge)) => return Err(too_large()),
        Ok(Err(e @ BodyError::Malformed(_))) => {
            // A body that breaks HTTP framing (bad chunk, conflicting lengths, connection
            // dropped) is the client's malformed request: 400.
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "malformed_body", e.to_string(), "rejected_payload"));
        }
        Ok(Ok(bytes)) => bytes,
    };

    let signature_header =
        headers.get("stripe-signature").ok_or(SignatureError::MissingHeader).map_err(signature_refusal)?;
    let now = chrono::Utc::now().timestamp();
    signature::verify(&state.config.secrets, signature_header.as_bytes(), &bytes, now, state.config.tolerance)
        .map_err(signature_refusal)?;

    let record = parse_record(&bytes)?;
    let (event_id, event_type, disposition) = (record.event_id.clone(), record.event_type.clone(), record.disposition);
    match state.committer.submit(record).await {
        Ok(stored) => {
            let outcome = if stored.duplicate { "duplicate" } else { "accepted" };
            tracing::info!(
                event_id = %event_id,
                event_type = %event_type,
                outcome,
                disposition = disposition.as_str(),
                job_id = stored.job_id.map(|id| id.to_string()).unwrap_or_default(),
                "webhook stored"
            );
            let body = json!({ "received": true, "duplicate": stored.duplicate, "job_id": stored.job_id });
            Ok(((StatusCode::OK, axum::Json(body)).into_response(), outcome))
        }
        Err(e) => {
            tracing::warn!(event_id = %event_id, error = %e, "webhook not stored; answering 503 so Stripe retries");
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the event could not be stored right now; it was not accepted, retry later",
                "unavailable",
            ))
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let mime = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Stripe webhooks are application/json",
            "unsupported_media_type",
        ))
    }
}

fn signature_refusal(e: SignatureError) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, e.code(), e.to_string(), "rejected_signature")
}

/// Turns a verified body into the record to store, or a 400.
fn parse_record(bytes: &[u8]) -> Result<EventRecord, Refusal> {
    EventRecord::from_body(bytes)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.code(), e.to_string(), "rejected_payload"))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<IntakeState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable", "error": e.to_string() })))
                .into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<IntakeState>>) -> Response {
    match state.registry.render() {
        Ok(text) => ([(header::CONTENT_TYPE, subsync_metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
