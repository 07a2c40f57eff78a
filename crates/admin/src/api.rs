//! The JSON API: the same operations as the CLI, for scripts and other tools. Documented in
//! `docs/admin-api.md`. Every error is `{"error": <code>, "message": <sentence>}`.

use std::sync::atomic::AtomicU64;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use serde_json::json;
use subsync_metrics::Registry;
use subsync_queue::JobState;

use crate::AdminState;
use crate::audit::{self, AuditQuery};
use crate::auth::Principal;
use crate::error::AdminError;
use crate::ops::{self, Action};
use crate::query::{JobQuery, ListQuery};

/// An [`AdminError`] answered as JSON.
pub(crate) struct ApiError(AdminError);

impl<E: Into<AdminError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        json_error(self.0.status(), self.0.code(), &self.0.public_message())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The JSON error body every endpoint uses.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/retry", post(bulk_retry))
        .route("/api/jobs/cancel", post(bulk_cancel))
        .route("/api/jobs/{id}", get(show_job))
        .route("/api/jobs/{id}/retry", post(retry_job))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .route("/api/stats", get(stats))
        .route("/api/duties", get(duties))
        .route("/api/notifications", get(notifications))
        .route("/api/groups/running", get(running_groups))
        .route("/api/entitlements", get(list_entitlements))
        .route("/api/entitlements/{user}", get(get_entitlement))
        .route("/api/support/{key}", get(get_support))
        .route("/api/events/{event_id}", get(get_event))
        .route("/api/audit", get(list_audit))
}

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn pairs(q: Pairs) -> ApiResult<Vec<(String, String)>> {
    q.map(|Query(p)| p).map_err(|e| AdminError::InvalidInput(format!("malformed query string: {e}")).into())
}

async fn healthz(State(state): State<AdminState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable" }))).into_response()
        }
    }
}

async fn list_jobs(State(state): State<AdminState>, q: Pairs) -> ApiResult<Json<serde_json::Value>> {
    let list = ListQuery::from_pairs(&pairs(q)?)?;
    let filter = list.query.filter(Utc::now())?;
    let page = list.page()?;
    let jobs = state.store.list(&filter, page).await?;
    let total = state.store.count(&filter).await?;
    Ok(Json(json!({ "jobs": jobs, "total": total, "limit": page.limit, "offset": page.offset })))
}

async fn show_job(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    q: Pairs,
) -> ApiResult<Json<serde_json::Value>> {
    let mut queue = None;
    for (name, value) in pairs(q)? {
        match name.as_str() {
            "queue" if !value.is_empty() => queue = Some(value),
            "queue" => {}
            other => {
                return Err(
                    AdminError::InvalidInput(format!("unknown query parameter `{other}` (expected: queue)")).into()
                );
            }
        }
    }
    let job = ops::resolve_job(&state.store, &id, queue.as_deref()).await?;
    Ok(Json(json!(job)))
}

async fn retry_job(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let job = ops::act_on_one(&state.store, Action::Retry, &id, principal.actor()).await?;
    state.record_action(Action::Retry, 1);
    Ok(Json(json!({ "retried": 1, "job": job })))
}

async fn cancel_job(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let job = ops::act_on_one(&state.store, Action::Cancel, &id, principal.actor()).await?;
    state.record_action(Action::Cancel, 1);
    Ok(Json(json!({ "cancelled": 1, "job": job })))
}

/// The body of a bulk action: a filter (same names as the list query) plus `confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    #[serde(default)]
    state: Option<serde_json::Value>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    confirm: bool,
}

fn parse_bulk(body: &Bytes) -> Result<(JobQuery, bool), AdminError> {
    let req: BulkRequest =
        serde_json::from_slice(body).map_err(|e| AdminError::InvalidInput(format!("bad JSON body: {e}")))?;
    let state = match req.state {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => vec![s],
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                other => Err(AdminError::InvalidInput(format!("`state` entries must be strings, got {other}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(AdminError::InvalidInput(format!(
                "`state` must be a string or a list of strings, got {other}"
            )));
        }
    };
    Ok((
        JobQuery { state, queue: req.queue, group: req.group, key: req.key, since: req.since, until: req.until },
        req.confirm,
    ))
}

async fn bulk(
    state: &AdminState,
    action: Action,
    principal: &Principal,
    body: &Bytes,
) -> Result<serde_json::Value, AdminError> {
    let (query, confirm) = parse_bulk(body)?;
    if query.state.iter().all(|s| s.trim().is_empty()) {
        return Err(AdminError::InvalidInput(format!(
            "bulk {} needs at least one state, e.g. {{\"state\": \"dead\", \"confirm\": true}}",
            action.verb()
        )));
    }
    let filter = query.filter(Utc::now())?;
    let ids = ops::matching_ids(&state.store, &filter).await?;
    if !confirm {
        return Err(AdminError::NotConfirmed(format!(
            "bulk {} of {} matching job(s) ({}) needs \"confirm\": true",
            action.verb(),
            ids.len(),
            query.describe()
        )));
    }
    let changed =
        ops::apply_bulk(&state.store, action, &ids, &query.describe(), principal.actor(), |_, _, _| {}).await?;
    state.record_action(action, changed);
    let key = match action {
        Action::Retry => "retried",
        Action::Cancel => "cancelled",
    };
    Ok(json!({ key: changed, "matched": ids.len() }))
}

async fn bulk_retry(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(bulk(&state, Action::Retry, &principal, &body).await?))
}

async fn bulk_cancel(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(bulk(&state, Action::Cancel, &principal, &body).await?))
}

/// The audit log, newest first: `?since=2h&actor=alice&limit=100`.
async fn list_audit(State(state): State<AdminState>, q: Pairs) -> ApiResult<Json<serde_json::Value>> {
    let filter = AuditQuery::from_pairs(&pairs(q)?)?.filter(Utc::now())?;
    let entries = audit::list(&state.store, &filter).await?;
    Ok(Json(json!({ "entries": entries, "limit": filter.limit })))
}

async fn duties(State(state): State<AdminState>) -> ApiResult<Json<serde_json::Value>> {
    let duties = subsync_duties::store::status(&state.store).await?;
    Ok(Json(serde_json::json!({ "duties": duties })))
}

/// The outbox of change notifications: `?user=…&undelivered=1&limit=…`.
async fn notifications(
    State(state): State<AdminState>,
    q: Pairs,
) -> ApiResult<Json<crate::notifications::NotificationsView>> {
    let query = crate::notifications::NotificationsQuery::from_pairs(&pairs(q)?)?;
    Ok(Json(crate::notifications::view(&state.store, &query, Utc::now()).await?))
}

async fn stats(State(state): State<AdminState>) -> ApiResult<Json<ops::Stats>> {
    Ok(Json(ops::stats(&state.store, Utc::now()).await?))
}

async fn running_groups(State(state): State<AdminState>) -> ApiResult<Json<serde_json::Value>> {
    let groups = state.store.running_groups().await?;
    Ok(Json(json!({ "groups": groups })))
}

/// `limit`/`offset` for the entitlements listing.
pub(crate) fn limit_offset(pairs: &[(String, String)]) -> Result<(u32, u64), AdminError> {
    let mut list = ListQuery::default();
    for (name, value) in pairs {
        match name.as_str() {
            "limit" if !value.is_empty() => list.limit = Some(value.clone()),
            "offset" if !value.is_empty() => list.offset = Some(value.clone()),
            "limit" | "offset" | "user" => {}
            other => {
                return Err(AdminError::InvalidInput(format!(
                    "unknown query parameter `{other}` (expected: limit, offset)"
                )));
            }
        }
    }
    let page = list.page()?;
    Ok((page.limit, page.offset))
}

async fn list_entitlements(State(state): State<AdminState>, q: Pairs) -> ApiResult<Json<serde_json::Value>> {
    let view = state.entitlements.as_ref().ok_or(AdminError::NotConfigured("entitlements"))?;
    let (limit, offset) = limit_offset(&pairs(q)?)?;
    let rows = view.list(limit, offset).await?;
    Ok(Json(json!({ "entitlements": rows, "limit": limit, "offset": offset })))
}

async fn get_entitlement(
    State(state): State<AdminState>,
    Path(user): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let view = state.entitlements.as_ref().ok_or(AdminError::NotConfigured("entitlements"))?;
    let row =
        view.get(&user).await?.ok_or_else(|| AdminError::NotFound(format!("no entitlement for user `{user}`")))?;
    Ok(Json(row))
}

async fn get_support(State(state): State<AdminState>, Path(key): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let view = state.entitlements.as_ref().ok_or(AdminError::NotConfigured("entitlements"))?;
    let found = view.support(&key).await?.ok_or_else(|| {
        AdminError::NotFound(format!("no user, customer or subscription `{key}` is known to subsync"))
    })?;
    Ok(Json(found))
}

async fn get_event(
    State(state): State<AdminState>,
    Path(event_id): Path<String>,
) -> ApiResult<Json<subsync_eventlog::StoredEvent>> {
    let row = subsync_eventlog::get(&state.store, &event_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no stored event with id `{event_id}`")))?;
    Ok(Json(row))
}

/// Prometheus scrape: the process registry, plus queue depth and lag read from the database
/// now (so they are never stale). If the database is down the registry is still served and
/// `subsync_queue_store_up` is 0, so the scrape itself does not fail.
async fn metrics(State(state): State<AdminState>) -> Response {
    let (now, up) = match queue_families(&state).await {
        Ok(families) => (families, 1),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read queue state");
            (Registry::new(), 0)
        }
    };
    let store_up = Gauge::<i64>::default();
    store_up.set(up);
    let help = "1 when the admin server could read the queue database at this scrape.";
    let text = now
        .register("subsync_queue_store_up", help, store_up)
        .and_then(|()| Ok(state.metrics.render()? + &now.render()?));
    match text {
        Ok(text) => {
            let mut res = text.into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(subsync_metrics::CONTENT_TYPE));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot render");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "cannot render the metrics")
        }
    }
}

/// Queue depth, lag and running groups, read now, in a registry of their own (all or none).
async fn queue_families(state: &AdminState) -> Result<Registry, AdminError> {
    let metric = |e: subsync_metrics::MetricsError| AdminError::InvalidInput(e.to_string());
    let counts = state.store.counts().await?;
    let mut queues: Vec<String> = counts.iter().map(|c| c.queue.clone()).collect();
    queues.sort();
    queues.dedup();

    let now = Registry::new();
    let jobs = Family::<[(&'static str, String); 2], Gauge>::default();
    for queue in &queues {
        for s in JobState::ALL {
            let n = counts.iter().find(|c| &c.queue == queue && c.state == s).map_or(0, |c| c.count);
            let labels = [("queue", queue.clone()), ("state", s.as_str().to_string())];
            jobs.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    now.register("subsync_queue_jobs", "Jobs in the queue database by queue and state.", jobs).map_err(metric)?;
    let age = Family::<[(&'static str, String); 1], Gauge<f64, AtomicU64>>::default();
    for queue in &queues {
        let d = state.store.oldest_due_age(Some(queue)).await?;
        age.get_or_create(&[("queue", queue.clone())]).set(d.as_secs_f64());
    }
    let help = "How long the oldest due pending job has waited, per queue (0 when none is due).";
    now.register("subsync_queue_oldest_due_age_seconds", help, age).map_err(metric)?;
    let groups = Gauge::<i64>::default();
    groups.set(i64::try_from(state.store.running_groups().await?.len()).unwrap_or(i64::MAX));
    let help = "Groups (subscriptions) with a job running now.";
    now.register("subsync_queue_running_groups", help, groups).map_err(metric)?;
    if let Some(view) = &state.entitlements {
        let since = chrono::Utc::now() - chrono::Duration::days(30);
        let rows = view.unmapped_prices(since).await?;
        let unmapped = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        for effect in ["ignored", "free", "dead"] {
            let n = rows.iter().filter(|r| r["effect"] == effect).count();
            unmapped.get_or_create(&[("effect", effect)]).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let help = "Prices seen in the last 30 days that the tier file does not map, by worst effect \
                    (ignored beside a mapped plan, free, dead).";
        now.register("subsync_unmapped_prices_seen", help, unmapped).map_err(metric)?;
    }
    crate::duty_metrics::register(&now, &subsync_duties::store::status(&state.store).await?).map_err(metric)?;
    crate::notifications::register_metrics(&now, &state.store).await?;
    Ok(now)
}
