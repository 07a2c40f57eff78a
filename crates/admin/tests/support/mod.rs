//! Shared fixtures: seeding helpers and an in-process client for the admin router. The
//! throwaway database per test and `both_backends!` come from `subsync_queue::testing`
//! (feature `testing`).
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};

use subsync_admin::{AdminState, AdminToken};
use subsync_queue::Store;
use tower::ServiceExt;

pub use subsync_queue::Backend;
pub use subsync_queue::testing::TestDb;
pub use subsync_queue::testing::seed::*;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub fn state(store: &Store) -> AdminState {
    AdminState::new(store.clone(), AdminToken::new(TOKEN).expect("token"), Arc::new(subsync_metrics::Registry::new()))
}

pub fn app(store: &Store) -> Router {
    subsync_admin::router(state(store))
}

/// One answered request.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request through the router (no network).
pub async fn send(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 16 * 1024 * 1024).await.expect("body");
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    let auth = bearer();
    send(app, Method::GET, uri, &[("authorization", auth.as_str())], "").await
}

pub async fn post_json(app: &Router, uri: &str, body: &str) -> Reply {
    let auth = bearer();
    send(app, Method::POST, uri, &[("authorization", auth.as_str()), ("content-type", "application/json")], body).await
}
