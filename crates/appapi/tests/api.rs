//! The read API over HTTP on 127.0.0.1, every test on SQLite and PostgreSQL: keys, ETags,
//! the default for unknown users, feature checks, and a lapse seen without any write.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use subsync_appapi::{AppApiState, AppKeys};
use subsync_domain::TierConfig;
use subsync_queue::testing::TestDb;
use subsync_queue::{Backend, Store, both_backends};
use subsync_worker::testing::{Seed, put_entitlement};

both_backends!(60;
    keys_are_required_and_only_app_keys_count,
    a_revoked_key_stops_working,
    etag_round_trip,
    unknown_users_get_the_default_tier,
    feature_checks_for_flags_and_limits,
    a_lapse_shows_once_access_until_passes,
);

const KEY_A: &str = "app-key-aaaaaaaaaaaaaaaa";
const KEY_B: &str = "app-key-bbbbbbbbbbbbbbbb";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

struct Api {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Api {
    async fn start(state: AppApiState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(subsync_appapi::serve(listener, state, async {
            let _ = rx.await;
        }));
        Self { base, client: reqwest::Client::new(), stop: Some(tx), task }
    }

    async fn with_keys(store: &Store, keys: &str) -> Self {
        let keys = AppKeys::parse(keys).expect("keys");
        Self::start(AppApiState::new(store.clone(), keys, &TierConfig::default_config())).await
    }

    async fn get(&self, path: &str, key: Option<&str>, if_none_match: Option<&str>) -> (u16, Option<String>, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(tag) = if_none_match {
            req = req.header("If-None-Match", tag);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let etag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = res.text().await.expect("body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") };
        (status, etag, body)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("join").expect("serve");
    }
}

fn ent(user: &str) -> String {
    format!("/v1/users/{user}/entitlements")
}

async fn keys_are_required_and_only_app_keys_count(b: Backend) {
    let t = TestDb::new(b).await;
    put_entitlement(&t.store, &Seed::active("usr_1", "pro")).await.expect("seed");
    let api = Api::with_keys(&t.store, &format!("{KEY_A},{KEY_B}")).await;
    let (status, _, body) = api.get(&ent("usr_1"), None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Bearer")), "{body}");
    // The admin token is a different secret: never an application key.
    let (status, _, body) = api.get(&ent("usr_1"), Some(ADMIN_TOKEN), None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    let (status, _, _) = api.get(&ent("usr_1"), Some(&KEY_A[..KEY_A.len() - 1]), None).await;
    assert_eq!(status, 401, "a prefix of a key is not a key");
    for key in [KEY_A, KEY_B] {
        let (status, _, body) = api.get(&ent("usr_1"), Some(key), None).await;
        assert_eq!((status, body["tier"].as_str()), (200, Some("pro")), "{body}");
    }
    // Health needs no key; anything else is a JSON 404; the API only reads.
    assert_eq!(api.get("/healthz", None, None).await.0, 200);
    let (status, _, body) = api.get("/v1/nothing", Some(KEY_A), None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let post = api.client.post(format!("{}{}", api.base, ent("usr_1"))).bearer_auth(KEY_A).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405, "no writes");
    api.stop().await;
    t.close().await;
}

async fn a_revoked_key_stops_working(b: Backend) {
    let t = TestDb::new(b).await;
    // During a rotation both keys work; the next start without the old key refuses it.
    let before = Api::with_keys(&t.store, &format!("{KEY_A},{KEY_B}")).await;
    assert_eq!(before.get(&ent("usr_1"), Some(KEY_A), None).await.0, 200);
    before.stop().await;
    let after = Api::with_keys(&t.store, KEY_B).await;
    let (status, _, body) = after.get(&ent("usr_1"), Some(KEY_A), None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    assert_eq!(after.get(&ent("usr_1"), Some(KEY_B), None).await.0, 200);
    after.stop().await;
    t.close().await;
}

async fn etag_round_trip(b: Backend) {
    let t = TestDb::new(b).await;
    let seed = Seed::active("usr_e", "basic");
    put_entitlement(&t.store, &seed).await.expect("seed");
    let api = Api::with_keys(&t.store, KEY_A).await;
    let (status, tag, body) = api.get(&ent("usr_e"), Some(KEY_A), None).await;
    assert_eq!(status, 200);
    let tag = tag.expect("an ETag");
    let (status, again, body304) = api.get(&ent("usr_e"), Some(KEY_A), Some(&tag)).await;
    assert_eq!((status, again.as_deref(), &body304), (304, Some(tag.as_str()), &Value::Null));
    // A write that changes nothing the application acts on keeps the ETag.
    let mut same = seed.clone();
    same.event_id = "evt_noop".into();
    put_entitlement(&t.store, &same).await.unwrap();
    assert_eq!(api.get(&ent("usr_e"), Some(KEY_A), Some(&tag)).await.0, 304);
    // A change: 200, a new ETag and a higher version.
    let mut up = seed.clone();
    up.tier = "pro".into();
    put_entitlement(&t.store, &up).await.unwrap();
    let (status, new_tag, new_body) = api.get(&ent("usr_e"), Some(KEY_A), Some(&tag)).await;
    assert_eq!(status, 200);
    assert_ne!(new_tag.as_deref(), Some(tag.as_str()));
    assert!(new_body["version"].as_i64() > body["version"].as_i64(), "{body} then {new_body}");
    assert_eq!(new_body["tier"], "pro");
    // The feature answer has its own ETag and revalidates too.
    let path = "/v1/users/usr_e/features/vat.returns";
    let (_, ftag, _) = api.get(path, Some(KEY_A), None).await;
    let ftag = ftag.expect("feature ETag");
    assert_ne!(ftag, new_tag.unwrap());
    assert_eq!(api.get(path, Some(KEY_A), Some(&ftag)).await.0, 304);
    api.stop().await;
    t.close().await;
}

async fn unknown_users_get_the_default_tier(b: Backend) {
    let t = TestDb::new(b).await;
    let api = Api::with_keys(&t.store, KEY_A).await;
    let (status, tag, body) = api.get(&ent("usr_never_seen"), Some(KEY_A), None).await;
    assert_eq!(status, 200, "not a 404: {body}");
    assert_eq!(body["source"], "default");
    assert_eq!(body["tier"], "free");
    assert_eq!(body["version"], 0);
    assert_eq!(body["reason"], "no_subscription");
    assert_eq!(body["lapsed"], false);
    let free = serde_json::to_value(TierConfig::default_config().free_features()).unwrap();
    assert_eq!(body["features"], free);
    assert_eq!(api.get(&ent("usr_never_seen"), Some(KEY_A), tag.as_deref()).await.0, 304);
    // Once subsync stores something, the answer is the stored one.
    put_entitlement(&t.store, &Seed::active("usr_never_seen", "agent")).await.unwrap();
    let (status, _, body) = api.get(&ent("usr_never_seen"), Some(KEY_A), tag.as_deref()).await;
    assert_eq!((status, body["source"].as_str(), body["tier"].as_str()), (200, Some("stored"), Some("agent")));
    // Malformed user ids are a JSON 400.
    let (status, _, body) = api.get(&ent("a%0Ab"), Some(KEY_A), None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{body}");
    api.stop().await;
    t.close().await;
}

async fn feature_checks_for_flags_and_limits(b: Backend) {
    let t = TestDb::new(b).await;
    put_entitlement(&t.store, &Seed::active("usr_basic", "basic")).await.unwrap();
    put_entitlement(&t.store, &Seed::active("usr_pro", "pro")).await.unwrap();
    let api = Api::with_keys(&t.store, KEY_A).await;
    let check = |user: &'static str, feature: &'static str| {
        let api = &api;
        async move {
            let (status, _, body) = api.get(&format!("/v1/users/{user}/features/{feature}"), Some(KEY_A), None).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["feature"], feature);
            (body["allowed"].clone(), body["limit"].clone())
        }
    };
    assert_eq!(check("usr_basic", "itsa.quarterly").await, (Value::Bool(true), Value::Null));
    assert_eq!(check("usr_basic", "vat.returns").await, (Value::Bool(false), Value::Null));
    assert_eq!(check("usr_basic", "sources.max").await, (Value::Bool(true), Value::from(1)));
    assert_eq!(check("usr_pro", "sources.max").await, (Value::Bool(true), Value::from("unlimited")));
    assert_eq!(check("usr_pro", "agent.clients").await, (Value::Bool(false), Value::from(0)));
    assert_eq!(check("usr_nobody", "sources.max").await, (Value::Bool(false), Value::from(0)));
    assert_eq!(check("usr_nobody", "records").await, (Value::Bool(true), Value::Null));
    let (status, _, body) = api.get("/v1/users/usr_pro/features/itsa.quaterly", Some(KEY_A), None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("unknown_feature")), "{body}");
    let names = body["features"].as_array().expect("valid names listed");
    assert!(names.contains(&Value::from("itsa.quarterly")) && names.contains(&Value::from("sources.max")), "{body}");
    api.stop().await;
    t.close().await;
}

async fn a_lapse_shows_once_access_until_passes(b: Backend) {
    let t = TestDb::new(b).await;
    // Whole seconds: the test's clock has millisecond steps, PostgreSQL stores microseconds.
    let until = Utc.timestamp_opt(Utc::now().timestamp() + 7 * 86_400, 0).single().expect("in range");
    put_entitlement(&t.store, &Seed::active("usr_l", "pro").until(until, "past_due_grace")).await.unwrap();
    // The API's clock, moved by the test: no write happens between the two reads.
    let clock = Arc::new(AtomicI64::new((until - chrono::Duration::seconds(1)).timestamp_millis()));
    let c = clock.clone();
    let read_clock = move || -> DateTime<Utc> {
        Utc.timestamp_millis_opt(c.load(Ordering::SeqCst)).single().expect("clock in range")
    };
    let state = AppApiState::new(t.store.clone(), AppKeys::parse(KEY_A).unwrap(), &TierConfig::default_config())
        .with_clock(read_clock);
    let api = Api::start(state).await;
    let (_, tag, body) = api.get(&ent("usr_l"), Some(KEY_A), None).await;
    assert_eq!((body["tier"].as_str(), body["lapsed"].as_bool()), (Some("pro"), Some(false)), "{body}");
    assert_eq!(body["reason"], "past_due_grace");
    let (_, _, q) = api.get("/v1/users/usr_l/features/itsa.quarterly", Some(KEY_A), None).await;
    assert_eq!(q["allowed"], true);

    clock.store(until.timestamp_millis(), Ordering::SeqCst);
    let (status, new_tag, body) = api.get(&ent("usr_l"), Some(KEY_A), tag.as_deref()).await;
    assert_eq!(status, 200, "the lapse changes the ETag: {body}");
    assert_ne!(new_tag, tag);
    assert_eq!((body["tier"].as_str(), body["lapsed"].as_bool()), (Some("free"), Some(true)), "{body}");
    assert_eq!(body["reason"], "grace_expired");
    let (_, _, q) = api.get("/v1/users/usr_l/features/itsa.quarterly", Some(KEY_A), None).await;
    assert_eq!((q["allowed"].as_bool(), q["tier"].as_str()), (Some(false), Some("free")), "{q}");
    api.stop().await;
    t.close().await;
}
