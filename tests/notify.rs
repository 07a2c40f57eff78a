//! Change notifications through the real `subsync` binary, received by an application that
//! verifies them with the official Standard Webhooks library: a webhook's change arrives
//! signed with the read API's version; `kill -9` of the process mid-delivery redelivers the
//! same `webhook-id` after a restart; a grant that cancels at its period end lapses on time
//! with no Stripe event — in the view, the read API and a notification. Both backends.

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{Backend, SECRET, Server, TestDb, event, free_port, now, post, sign};
use subsync_notify::testing::{Behaviour, Receiver, SECRET as NOTIFY_SECRET};
use subsync_queue::both_backends;

both_backends!(150; killed_mid_delivery_redelivers_the_same_id, a_lapse_is_on_time_everywhere);

const APP_KEY: &str = "notify-test-app-key-0123";

fn subscription(id: &str, sub: &str, customer: &str, cancel_at_period_end: bool, period_end: i64) -> Vec<u8> {
    event(
        id,
        "customer.subscription.updated",
        serde_json::json!({
            "id": sub, "object": "subscription", "customer": customer, "status": "active",
            "cancel_at_period_end": cancel_at_period_end, "metadata": {},
            "items": { "object": "list", "data": [ { "id": format!("si_{sub}"), "object": "subscription_item",
                "current_period_start": now() - 86_400, "current_period_end": period_end,
                "price": { "id": "price_basic", "object": "price", "lookup_key": "basic_monthly" } } ] }
        }),
    )
}

async fn serve(db: &TestDb, receiver: &Receiver, api_port: u16) -> Server {
    Server::start(
        &["serve"],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
            ("SUBSYNC_NOTIFY_URL", receiver.url.clone()),
            ("SUBSYNC_NOTIFY_SECRET", NOTIFY_SECRET.to_owned()),
            ("SUBSYNC_NOTIFY_TIMEOUT", "60".to_owned()),
            ("SUBSYNC_LEASE", "2".to_owned()),
            ("SUBSYNC_API_LISTEN", format!("127.0.0.1:{api_port}")),
            ("SUBSYNC_APP_KEYS", APP_KEY.to_owned()),
        ],
    )
    .await
}

async fn api(client: &reqwest::Client, api_port: u16, user: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{api_port}/v1/users/{user}/entitlements");
    client.get(url).bearer_auth(APP_KEY).send().await.expect("read API").json().await.expect("json")
}

async fn killed_mid_delivery_redelivers_the_same_id(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    // The application hangs on the first notification: the process is killed while it waits.
    let receiver =
        Receiver::start(NOTIFY_SECRET, &Behaviour { stall_first: Duration::from_secs(20), ..Behaviour::default() });
    let api_port = free_port();
    let server = serve(&db, &receiver, api_port).await;
    let client = reqwest::Client::new();
    let body = subscription("evt_n_1", "sub_n_1", "cus_n", false, now() + 30 * 86_400);
    let (status, answer) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        receiver.wait_for(Duration::from_secs(30), |r| r.iter().any(|x| x.status == "stalling")),
        "no delivery began"
    );
    server.stop().await; // SIGKILL, mid-delivery
    let stalled_id =
        receiver.received().iter().find(|x| x.status == "stalling").and_then(|x| x.id.clone()).expect("id");

    let server = serve(&db, &receiver, api_port).await;
    let redelivered = receiver.wait_for(Duration::from_secs(60), |r| {
        r.iter().any(|x| !x.stalled && x.accepted() && x.id.as_deref() == Some(&stalled_id))
    });
    assert!(redelivered, "not redelivered after the restart: {:?}", receiver.received());
    let delivered = receiver.received().into_iter().find(|x| !x.stalled && x.accepted()).expect("delivered");
    assert_eq!(delivered.user_id.as_deref(), Some("cus_n"));
    let answer = api(&client, api_port, "cus_n").await;
    assert_eq!(answer["tier"], "basic", "{answer}");
    assert_eq!(delivered.version, answer["version"].as_i64(), "the notification carries the read API's version");

    // A later change of the same user comes after it, with a higher version.
    let body = subscription("evt_n_2", "sub_n_1", "cus_n", true, now() + 30 * 86_400);
    let (status, _) = post(&client, &server.base, Some(&sign(SECRET, now() + 1, &body)), body).await;
    assert_eq!(status, 200);
    let second =
        receiver.wait_for(Duration::from_secs(30), |r| r.iter().filter(|x| !x.stalled && x.accepted()).count() >= 2);
    assert!(second, "the second change was not delivered: {:?}", receiver.received());
    let accepted: Vec<_> = receiver.received().into_iter().filter(|x| !x.stalled && x.accepted()).collect();
    assert!(accepted[1].version > accepted[0].version);
    assert!(receiver.received().iter().all(|x| x.verified), "every notification verifies with the official library");
    server.stop().await;
    db.close().await;
}

async fn a_lapse_is_on_time_everywhere(b: Backend) {
    let db = TestDb::unmigrated(b).await;
    let receiver = Receiver::start(NOTIFY_SECRET, &Behaviour::default());
    let api_port = free_port();
    let server = serve(&db, &receiver, api_port).await;
    let client = reqwest::Client::new();
    // Cancels at the end of a period that ends in 4 seconds.
    let until = now() + 4;
    let body = subscription("evt_l_1", "sub_l_1", "cus_l", true, until);
    let (status, _) = post(&client, &server.base, Some(&sign(SECRET, now(), &body)), body).await;
    assert_eq!(status, 200);
    assert!(
        receiver.wait_for(Duration::from_secs(20), |r| r.iter().any(|x| x.accepted())),
        "the grant was not notified"
    );
    let granted = api(&client, api_port, "cus_l").await;
    assert_eq!((granted["tier"].as_str(), granted["access_until"].is_string()), (Some("basic"), true), "{granted}");

    // No Stripe event from here on.
    let lapsed = receiver.wait_for(Duration::from_secs(20), |r| r.iter().filter(|x| x.accepted()).count() >= 2);
    assert!(lapsed, "no lapse notification: {:?}", receiver.received());
    let notified = receiver.received().into_iter().filter(|x| x.accepted()).nth(1).expect("second");
    let late = notified.t - until as f64;
    println!("lapse notified {late:.3} s after access_until");
    assert!(late >= 0.0, "notified before access_until");
    assert!(late < 5.0, "notified {late:.3} s after access_until");
    let after = api(&client, api_port, "cus_l").await;
    assert_eq!((after["tier"].as_str(), after["reason"].as_str()), (Some("free"), Some("period_ended")), "{after}");
    assert_eq!(notified.version, after["version"].as_i64(), "the API's version is the notification's");
    let view = db.text("SELECT tier FROM subsync_effective_entitlements WHERE user_id = 'cus_l'").await;
    assert_eq!(view.as_deref(), Some("free"));
    // And it stays so: the lapse is applied once.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.received().iter().filter(|x| x.accepted()).count(), 2, "one notification per change");
    server.stop().await;
    db.close().await;
}
