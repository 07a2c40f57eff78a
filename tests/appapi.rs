//! The application's read API through the real `subsync` binary: `serve` with
//! `SUBSYNC_API_LISTEN`/`SUBSYNC_APP_KEYS` answers what a webhook granted, on its own listener,
//! with or without an admin token; bad keys stop the process before anything starts.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, SECRET, Server, TestDb, free_port, now, post, sign, subscription_event};
use subsync_queue::both_backends;

both_backends!(serve_answers_on_its_own_listener_with_app_keys_only);

const KEY_OLD: &str = "app-key-old-0123456789";
const KEY_NEW: &str = "app-key-new-0123456789";
const ADMIN_TOKEN: &str = "appapi-test-admin-token-0123";

async fn get(client: &reqwest::Client, url: &str, key: &str) -> (u16, serde_json::Value) {
    let res = client.get(url).bearer_auth(key).send().await.expect("read API answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

async fn serve(db: &TestDb, api_port: u16, keys: &str, admin: Option<u16>) -> Server {
    let mut env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("SUBSYNC_API_LISTEN", format!("127.0.0.1:{api_port}")),
        ("SUBSYNC_APP_KEYS", keys.to_owned()),
    ];
    if let Some(port) = admin {
        env.push(("SUBSYNC_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()));
        env.push(("SUBSYNC_ADMIN_LISTEN", format!("127.0.0.1:{port}")));
    }
    Server::start(&["serve"], &env).await
}

async fn serve_answers_on_its_own_listener_with_app_keys_only(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let (api_port, admin_port) = (free_port(), free_port());
    let server = serve(&db, api_port, &format!("{KEY_OLD},{KEY_NEW}"), Some(admin_port)).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{api_port}/v1/users/cus_1/entitlements");

    // Before any event: the default answer, not a 404.
    let (status, body) = get(&client, &url, KEY_OLD).await;
    assert_eq!((status, body["source"].as_str(), body["tier"].as_str()), (200, Some("default"), Some("free")));

    let event = subscription_event("evt_api_1", "sub_api_1");
    let (status, answer) = post(&client, &server.base, Some(&sign(SECRET, now(), &event)), event).await;
    assert_eq!(status, 200, "{answer}");
    let mut granted = None;
    for _ in 0..200 {
        let (status, body) = get(&client, &url, KEY_NEW).await;
        assert_eq!(status, 200, "{body}");
        if body["tier"] == "basic" {
            granted = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let granted = granted.expect("the webhook's grant reaches the read API");
    assert_eq!(granted["source"], "stored");
    assert!(granted["version"].as_i64().is_some_and(|v| v > 0), "{granted}");
    let feature = format!("http://127.0.0.1:{api_port}/v1/users/cus_1/features/sources.max");
    let (status, body) = get(&client, &feature, KEY_NEW).await;
    assert_eq!((status, body["allowed"].as_bool(), body["limit"].as_i64()), (200, Some(true), Some(1)), "{body}");

    // The admin token is not an application key, and an application key is not the admin token.
    let (status, body) = get(&client, &url, ADMIN_TOKEN).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{body}");
    let admin = format!("http://127.0.0.1:{admin_port}/api/entitlements/cus_1");
    assert_eq!(get(&client, &admin, KEY_NEW).await.0, 401);
    // The webhook listener does not serve the API.
    let on_webhook_port = format!("{}/v1/users/cus_1/entitlements", server.base);
    assert_eq!(get(&client, &on_webhook_port, KEY_NEW).await.0, 404);
    server.stop().await;

    // Rotation done: restarted with the new key only and no admin token at all.
    let api_port = free_port();
    let server = serve(&db, api_port, KEY_NEW, None).await;
    let url = format!("http://127.0.0.1:{api_port}/v1/users/cus_1/entitlements");
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(res) = client.get(&url).bearer_auth(KEY_NEW).send().await {
            answered = Some(res.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, Some(200), "the API runs without an admin token");
    let (status, body) = get(&client, &url, KEY_OLD).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "the revoked key stops working");
    server.stop().await;

    // A bad key list stops `serve` at once, naming the flag and never echoing the key.
    let out = tokio::process::Command::new(common::binary())
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("SUBSYNC_APP_KEYS", format!("{KEY_NEW},tooshort-secret"))
        .output()
        .await
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("app-keys") || stderr.contains("SUBSYNC_APP_KEYS"), "{stderr}");
    assert!(stderr.contains("key 2") && stderr.contains("at least 16"), "{stderr}");
    assert!(!stderr.contains("tooshort-secret"), "the key is never echoed: {stderr}");
    db.close().await;
}
