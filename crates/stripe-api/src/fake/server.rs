//! The fake's HTTP side: authentication, faults, routing, Stripe's headers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, Uri};
use serde_json::{Value, json};

use super::params::{FakeError, Params, type_matches};
use super::{FakeFault, RecordedRequest, Shared};

/// Paging parameters every list endpoint takes.
const PAGING: [&str; 4] = ["limit", "starting_after", "ending_before", "expand"];

/// Every request: record, then down/faults, then the key, then the endpoint.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let pairs: Vec<(String, String)> = Query::try_from_uri(&uri).map(|Query(p)| p).unwrap_or_default();
    let key_ok = header("authorization").as_deref() == Some(format!("Bearer {}", shared.key).as_str());
    let version = header("stripe-version");
    shared.lock_requests().push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: pairs.clone(),
        key_ok,
        stripe_version: version.clone(),
        user_agent: header("user-agent"),
    });

    let _in_flight = InFlight::enter(&shared);
    let latency = *super::lock(&shared.latency);
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    if shared.down.load(Ordering::SeqCst) {
        let mut response = Response::new(Body::from("<html><body>503 Service Unavailable</body></html>"));
        *response.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return finish(&shared, response, "text/html", version.as_deref());
    }
    let mut should_retry = None;
    let answer = match shared.take_fault() {
        Some(FakeFault::Delay(wait)) => {
            tokio::time::sleep(wait).await;
            None
        }
        Some(FakeFault::Status { status, should_retry: advice }) => {
            should_retry = advice;
            Some(Err(fault_error(status)))
        }
        None => None,
    };
    let answer = match answer {
        Some(answer) => answer,
        None => match authenticate(&shared.key, header("authorization").as_deref()) {
            Err(error) => Err(error),
            Ok(()) if method != Method::GET => Err(unrecognized(&method, uri.path())),
            Ok(()) => route(&shared, uri.path(), &pairs),
        },
    };
    let (status, body) = match answer {
        Ok(body) => (200, body),
        Err(error) => (error.status, error.body()),
    };
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    if let Some(advice) = should_retry {
        response
            .headers_mut()
            .insert("stripe-should-retry", HeaderValue::from_static(if advice { "true" } else { "false" }));
    }
    finish(&shared, response, "application/json", version.as_deref())
}

/// Counts a request as being answered until dropped, keeping the maximum.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Stripe's headers on every answer: `Date` (the fake's clock), `Request-Id`, the version.
fn finish(
    shared: &Shared,
    mut response: Response<Body>,
    content_type: &'static str,
    version: Option<&str>,
) -> Response<Body> {
    let date = chrono::DateTime::from_timestamp(shared.now(), 0).unwrap_or_default();
    let date = date.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let request_id = format!("req_fake{:010}", shared.next_request.fetch_add(1, Ordering::SeqCst));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    for (name, value) in [
        ("date", date),
        ("request-id", request_id),
        ("stripe-version", version.unwrap_or(crate::STRIPE_VERSION).to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn fault_error(status: u16) -> FakeError {
    match status {
        429 => FakeError::with_status(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.",
        )
        .code("rate_limit"),
        409 => FakeError::with_status(409, "invalid_request_error", "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.")
            .code("lock_timeout"),
        s if s >= 500 => FakeError::with_status(s, "api_error", "An unknown error occurred (fake Stripe fault)."),
        s => FakeError::with_status(s, "invalid_request_error", format!("fake Stripe fault: HTTP {s}")),
    }
}

/// Bearer auth with the fake's key, answered like Stripe (the key masked in the message).
fn authenticate(key: &str, authorization: Option<&str>) -> Result<(), FakeError> {
    let Some(given) = authorization.and_then(|a| a.strip_prefix("Bearer ")).filter(|g| !g.is_empty()) else {
        return Err(FakeError::with_status(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ));
    };
    if given == key {
        return Ok(());
    }
    Err(FakeError::with_status(401, "invalid_request_error", format!("Invalid API Key provided: {}", mask(given)))
        .code("api_key_invalid"))
}

/// `sk_test_****abcd`: the prefix up to the mode and the last four characters, as Stripe shows.
fn mask(key: &str) -> String {
    let prefix_len =
        ["sk_live_", "sk_test_", "rk_live_", "rk_test_"].iter().find(|p| key.starts_with(*p)).map_or(0, |p| p.len());
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if key.chars().count() <= prefix_len + 4 {
        return format!("{}****", &key[..prefix_len]);
    }
    format!("{}****{tail}", &key[..prefix_len])
}

fn unrecognized(method: &Method, path: &str) -> FakeError {
    FakeError::with_status(404, "invalid_request_error", format!("Unrecognized request URL ({method}: {path})."))
}

fn not_found(noun: &str, id: &str) -> FakeError {
    FakeError::with_status(404, "invalid_request_error", format!("No such {noun}: '{id}'"))
        .code("resource_missing")
        .param("id")
}

fn list(url: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

/// The endpoints (GET only).
fn route(shared: &Shared, path: &str, pairs: &[(String, String)]) -> Result<Value, FakeError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let data = shared.lock_data();
    let lookup = |id: &str| data.lookup(id);
    match segments.as_slice() {
        ["v1", "events"] => {
            let params =
                Params::new(pairs, &[&PAGING[..], &["created", "types", "type", "delivery_success"]].concat())?;
            let types = params.all("types[]");
            if types.len() > 20 {
                return Err(FakeError::invalid("You may pass at most 20 types.").param("types"));
            }
            let pattern = params.one("type");
            let (page, more) = data.events.page("event", &params.paging()?, &params.created()?, |event| {
                let name = event.get("type").and_then(Value::as_str).unwrap_or_default();
                (types.is_empty() || types.contains(&name)) && pattern.is_none_or(|p| type_matches(p, name))
            })?;
            let page = expand_each(page, &params.expand(), &lookup)?;
            Ok(list("/v1/events", page, more))
        }
        ["v1", "subscriptions"] => {
            let params = Params::new(pairs, &[&PAGING[..], &["created", "status", "customer", "price"]].concat())?;
            let status = params.one("status");
            const STATUSES: [&str; 10] = [
                "active",
                "all",
                "canceled",
                "ended",
                "incomplete",
                "incomplete_expired",
                "past_due",
                "paused",
                "trialing",
                "unpaid",
            ];
            if status.is_some_and(|s| !STATUSES.contains(&s)) {
                return Err(FakeError::invalid(format!("Invalid status: must be one of {}", STATUSES.join(", ")))
                    .param("status"));
            }
            let customer = params.one("customer");
            let (page, more) =
                data.subscriptions.page("subscription", &params.paging()?, &params.created()?, |sub| {
                    let s = sub.get("status").and_then(Value::as_str).unwrap_or_default();
                    let ended = s == "canceled" || s == "incomplete_expired";
                    let status_ok = match status {
                        None => !ended,
                        Some("all") => true,
                        Some("ended") => ended,
                        Some(one) => s == one,
                    };
                    status_ok && customer.is_none_or(|c| customer_id(sub) == Some(c))
                })?;
            let page = expand_each(page, &params.expand(), &lookup)?;
            Ok(list("/v1/subscriptions", page, more))
        }
        ["v1", "checkout", "sessions"] => {
            let params = Params::new(
                pairs,
                &[&PAGING[..], &["created", "subscription", "customer", "status", "payment_intent"]].concat(),
            )?;
            let field = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
            let wanted: Vec<(&str, &str)> = ["subscription", "customer", "status", "payment_intent"]
                .into_iter()
                .filter_map(|name| params.one(name).map(|value| (name, value)))
                .collect();
            let (page, more) =
                data.checkout_sessions.page("checkout session", &params.paging()?, &params.created()?, |s| {
                    wanted.iter().all(|(name, value)| {
                        field(s, name).as_deref() == Some(value)
                            || (*name == "customer" && customer_id(s) == Some(value))
                    })
                })?;
            let page = expand_each(page, &params.expand(), &lookup)?;
            Ok(list("/v1/checkout/sessions", page, more))
        }
        ["v1", "events", id] => retrieve(data.events.get(id), "event", id, pairs, &lookup),
        ["v1", "subscriptions", id] => retrieve(data.subscriptions.get(id), "subscription", id, pairs, &lookup),
        ["v1", "customers", id] => retrieve(data.customers.get(id), "customer", id, pairs, &lookup),
        ["v1", "checkout", "sessions", id] => {
            retrieve(data.checkout_sessions.get(id), "checkout.session", id, pairs, &lookup)
        }
        _ => Err(unrecognized(&Method::GET, path)),
    }
}

/// The customer id of an object whose `customer` is an id or an expanded object.
fn customer_id(value: &Value) -> Option<&str> {
    let customer = value.get("customer")?;
    customer.as_str().or_else(|| customer.get("id").and_then(Value::as_str))
}

fn retrieve(
    found: Option<&Value>,
    noun: &str,
    id: &str,
    pairs: &[(String, String)],
    lookup: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, FakeError> {
    let params = Params::new(pairs, &["expand"])?;
    let mut value = found.cloned().ok_or_else(|| not_found(noun, id))?;
    for path in params.expand() {
        super::store::expand(&mut value, path, lookup)?;
    }
    Ok(value)
}

/// A list's `expand[]`: each path must start with `data.` and applies to every object.
fn expand_each(
    mut page: Vec<Value>,
    paths: &[&str],
    lookup: &dyn Fn(&str) -> Option<Value>,
) -> Result<Vec<Value>, FakeError> {
    for path in paths {
        let inner = path
            .strip_prefix("data.")
            .ok_or_else(|| FakeError::invalid(format!("This property cannot be expanded ({path}).")))?;
        for value in &mut page {
            super::store::expand(value, inner, lookup)?;
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys_like_stripe() {
        assert_eq!(mask("sk_test_wrongkeyabcd"), "sk_test_****abcd");
        assert_eq!(mask("rk_live_12345678"), "rk_live_****5678");
        assert_eq!(mask("sk_test_ab"), "sk_test_****");
        assert_eq!(mask("garbage-key"), "****-key");
    }
}
