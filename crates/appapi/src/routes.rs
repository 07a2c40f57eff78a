//! The HTTP surface: routes, the application-key check, conditional GETs, JSON errors.

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;
use subsync_domain::Features;

use crate::AppApiState;
use crate::error::ApiError;

/// The longest user id accepted (Stripe's and our ids are far shorter).
const MAX_USER_ID: usize = 255;

/// Every route; `/v1/…` behind the application keys, `/healthz` open (for load balancers).
pub(crate) fn router(state: AppApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/users/{user_id}/entitlements", get(entitlements))
        .route("/v1/users/{user_id}/features/{feature}", get(feature))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_app_key));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(v1)
        .fallback(not_found)
        .layer(middleware::from_fn(headers))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "ok": true }))
}

async fn not_found() -> Response {
    ApiError::NotFound("no such endpoint; see docs/integrating.md".into()).into_response()
}

/// Answers must be revalidated (`ETag`), never reused blindly, and never shared by proxies.
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

/// `Authorization: Bearer <application key>`, or 401. Only application keys count: the admin
/// token is a different secret and is never consulted here.
async fn require_app_key(State(state): State<AppApiState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(key) if state.keys.matches(key) => next.run(req).await,
        Some(_) => ApiError::Unauthorized("the application key is not valid (revoked, or not an application key)")
            .into_response(),
        None => ApiError::Unauthorized("send an application key: `Authorization: Bearer <key>`").into_response(),
    }
}

async fn entitlements(
    State(state): State<AppApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(user_id) = path.map_err(|e| ApiError::BadRequest(format!("malformed path: {e}")))?;
    let answer = state.answer(checked_user(&user_id)?).await?;
    Ok(conditional(&headers, answer.etag("entitlements"), &answer))
}

async fn feature(
    State(state): State<AppApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((user_id, name)) = path.map_err(|e| ApiError::BadRequest(format!("malformed path: {e}")))?;
    let user_id = checked_user(&user_id)?;
    // Unknown names are refused before any database read.
    if Features::none().get(&name).is_none() {
        return Err(ApiError::UnknownFeature(name));
    }
    let answer = state.answer(user_id).await?;
    let etag = answer.etag(&format!("feature:{name}"));
    let feature = answer.feature(&name).ok_or(ApiError::UnknownFeature(name))?;
    Ok(conditional(&headers, etag, &feature))
}

fn checked_user(user_id: &str) -> Result<&str, ApiError> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID || user_id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "user id must be 1 to {MAX_USER_ID} bytes without control characters"
        )));
    }
    Ok(user_id)
}

/// 304 when `If-None-Match` names this ETag (weak comparison, lists and `*` included), else
/// 200 with the body; the ETag is sent either way.
fn conditional(headers: &HeaderMap, etag: String, body: &impl Serialize) -> Response {
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|tag| tag == "*" || opaque(tag) == opaque(&etag)));
    let mut res = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Json(body).into_response() };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, value);
    }
    res
}

/// An entity tag without its weakness marker.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let etag = "W/\"abc\"".to_owned();
        let check = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            conditional(&h, etag.clone(), &json!({})).status()
        };
        assert_eq!(check("W/\"abc\""), StatusCode::NOT_MODIFIED);
        assert_eq!(check("\"abc\""), StatusCode::NOT_MODIFIED);
        assert_eq!(check("\"x\", W/\"abc\""), StatusCode::NOT_MODIFIED);
        assert_eq!(check("*"), StatusCode::NOT_MODIFIED);
        assert_eq!(check("W/\"abd\""), StatusCode::OK);
        assert_eq!(conditional(&HeaderMap::new(), etag.clone(), &json!({})).status(), StatusCode::OK);
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(checked_user("usr_1").is_ok());
        assert!(checked_user("").is_err());
        assert!(checked_user("a\nb").is_err());
        assert!(checked_user(&"x".repeat(256)).is_err());
    }
}
