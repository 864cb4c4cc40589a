//! Retries, health and the event log under failure, with retry delays
//! shrunk to milliseconds by configuration.

use std::time::Duration;

use hookline_core::RetrySchedule;
use hookline_e2e::{Receiver, Reply, TestApp, WAIT, eventually, sentinel_webhook, webhook};
use serde_json::{Value, json};

fn schedule(text: &str) -> RetrySchedule {
    RetrySchedule::parse(text).expect("valid schedule")
}

fn attempts_of(delivery: &Value) -> Vec<Value> {
    delivery["attempts"].as_array().expect("attempts").clone()
}

/// A receiver that fails three times then succeeds gets four attempts with
/// the same Webhook-Id; each failure's retry reason and due time is logged;
/// the delivery ends delivered and the webhook healthy.
#[tokio::test]
async fn fails_then_succeeds() {
    let app = TestApp::spawn_with(|_, worker| worker.retry_schedule = schedule("30ms,30ms,30ms,30ms")).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500), Reply::status(503), Reply::status(302)]);
    let id = app.create_webhook(&webhook("flaky", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;

    let delivery = &app.settled_deliveries(&id, 1).await[0];
    assert_eq!(delivery["state"], "delivered");
    let attempts = attempts_of(delivery);
    let statuses: Vec<_> = attempts.iter().map(|a| a["statusCode"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(503), json!(302), json!(200)]);
    let reasons: Vec<_> = attempts.iter().map(|a| a["retryReason"].clone()).collect();
    assert_eq!(reasons, [json!("HTTP 500"), json!("HTTP 503"), json!("HTTP 302"), Value::Null]);
    for a in &attempts[..3] {
        assert!(a["nextAttemptAt"].is_string(), "a failed attempt says when the next is due: {a}");
        assert_eq!(a["trigger"], "scheduled");
    }
    let got = receiver.requests();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|r| r.header("webhook-id") == delivery["id"].as_str()), "Webhook-Id is stable");
    let w = app.webhook(&id).await;
    assert_eq!((w["status"].clone(), w["consecutiveFailures"].clone()), (json!("healthy"), json!(0)));
    assert!(w["lastSuccessAt"].is_string() && w["lastFailureAt"].is_string());
    app.stop().await;
}

/// When the schedule is exhausted the delivery is failed and its log keeps
/// every attempt.
#[tokio::test]
async fn exhausted_schedule_fails() {
    let app = TestApp::spawn_with(|_, worker| worker.retry_schedule = schedule("20ms,20ms")).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let id = app.create_webhook(&webhook("down", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;
    let delivery = &app.settled_deliveries(&id, 1).await[0];
    assert_eq!(delivery["state"], "failed");
    let attempts = attempts_of(delivery);
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[2]["retryReason"], "HTTP 500; retry schedule exhausted after 3 attempts");
    assert!(attempts[2]["nextAttemptAt"].is_null());
    let failed = app.get(&format!("/v1/deliveries?state=failed&event=license.created&webhookId={id}")).await;
    assert_eq!(failed.body["data"].as_array().expect("data").len(), 1);
    assert_eq!(app.get("/v1/deliveries?state=delivered").await.body["data"], json!([]));
    app.stop().await;
}

/// `Retry-After` on 429/503 is honoured within [delay, 2 × delay]; `410`
/// suspends the webhook at once.
#[tokio::test]
async fn retry_after_and_gone() {
    let app = TestApp::spawn_with(|_, worker| worker.retry_schedule = schedule("200ms")).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503).header("Retry-After", "1")]);
    let polite = app.create_webhook(&webhook("polite", &receiver.url_for("/polite"), &["a.*"])).await;
    app.post_event(&json!({"event": "a.b", "data": {}})).await;
    let delivery = &app.settled_deliveries(&polite, 1).await[0];
    let attempts = attempts_of(delivery);
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(attempts[0]["retryReason"], "HTTP 503; Retry-After: 400ms honoured", "1 s clamped to 2 × 200 ms");
    let got = receiver.requests();
    let gap = got[1].at - got[0].at;
    assert!(gap >= time::Duration::milliseconds(390), "retried after {gap}, not before the honoured delay");

    let gone = app.create_webhook(&webhook("gone", &receiver.url_for("/gone"), &["b.*"])).await;
    receiver.script([Reply::status(410)]);
    app.post_event(&json!({"event": "b.c", "data": {}})).await;
    let delivery = &app.settled_deliveries(&gone, 1).await[0];
    assert_eq!(delivery["state"], "suspended");
    assert_eq!(attempts_of(delivery).len(), 1, "no retry after 410");
    let w = app.webhook(&gone).await;
    assert_eq!(w["status"], "suspended");
    assert!(w["suspendedAt"].is_string());
    app.stop().await;
}

/// 50 consecutive failures suspend the webhook; later events are logged as
/// suspended with no request; a manual retry against a recovered receiver
/// makes it healthy; `recover` replays the held deliveries oldest first.
#[tokio::test]
async fn suspension_manual_retry_and_recover() {
    // 100 ms between replays: more than the scheduling jitter of a test
    // machine, nearly always (see the order check below).
    let app = TestApp::spawn_with(|producer, _| producer.recover_rate_per_sec = 10).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let since = hookline_core::format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    // `license.*`, not `*`: the sentinel below must not be held for it too.
    let id = app.create_webhook(&webhook("fragile", &receiver.url(), &["license.*"])).await;
    // The sentinel's own receiver keeps the counts below exact; its webhook
    // is in the same tenant and goes through the same queues and worker.
    let sentinels = Receiver::start().await;
    app.create_webhook(&sentinel_webhook(&sentinels.url(), None)).await;
    for i in 0..50 {
        app.post_event(&json!({"event": "license.created", "data": {"i": i}, "id": format!("e{i:02}")})).await;
    }
    app.settled_deliveries(&id, 50).await;
    let w = app.webhook(&id).await;
    assert_eq!((w["status"].clone(), w["consecutiveFailures"].clone()), (json!("suspended"), json!(50)));
    assert_eq!(receiver.requests().len(), 50);

    app.post_event(&json!({"event": "license.created", "data": {"i": 50}, "id": "held"})).await;
    let held = eventually(WAIT, || async {
        let list = app.get("/v1/deliveries?state=suspended").await.body["data"].clone();
        let held: Vec<Value> =
            list.as_array().expect("data").iter().filter(|d| d["eventId"] == "held").cloned().collect();
        if held.len() == 1 { Ok(held[0].clone()) } else { Err(format!("{list}")) }
    })
    .await;
    // The held event's dispatch is recorded; the sentinel, queued behind
    // it, shows nothing it left in the queues sends a request.
    app.pass_sentinel(&sentinels, None).await;
    assert_eq!(receiver.requests().len(), 50, "no request while suspended");
    assert_eq!(held["attemptCount"], 0);

    receiver.set_status(200);
    let retried = app.post(&format!("/v1/deliveries/{}/retry", held["id"].as_str().expect("id")), &json!({})).await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    eventually(WAIT, || async {
        let w = app.webhook(&id).await;
        if w["status"] == "healthy" { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    let detail = app.get(&format!("/v1/deliveries/{}", held["id"].as_str().expect("id"))).await.body;
    assert_eq!(detail["state"], "delivered");
    assert_eq!(detail["attempts"][0]["trigger"], "manual");

    let dry = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since, "dryRun": true})).await;
    assert_eq!(dry.status, 200);
    assert_eq!(dry.body["count"], 50);
    assert_eq!(receiver.requests().len(), 51, "a dry run sends nothing");
    let run = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since})).await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    assert_eq!(run.body["queued"], 50);
    let got = receiver.wait_for(101, WAIT).await;
    let replayed: Vec<i64> = got[51..]
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).expect("JSON")["data"]["i"].as_i64().expect("i"))
        .collect();
    let mut sorted = replayed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "each held delivery replayed once");
    // Oldest first: replays are sent 100 ms apart in creation order; a
    // worker stalled for longer on a loaded machine can let the next one
    // overtake, so a neighbour may swap, nothing more.
    for (at, i) in replayed.iter().enumerate() {
        let at = i64::try_from(at).expect("small");
        assert!((i - at).abs() <= 1, "replayed oldest first (a neighbour may swap): {replayed:?}");
    }
    eventually(WAIT, || async {
        let left = app.get("/v1/deliveries?state=failed").await.body["data"].as_array().expect("data").len()
            + app.get("/v1/deliveries?state=suspended").await.body["data"].as_array().expect("data").len();
        if left == 0 { Ok(()) } else { Err(format!("{left} not yet recovered")) }
    })
    .await;
    let again = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since, "dryRun": true})).await;
    assert_eq!(again.body["count"], 0);
    let resumed = app.post(&format!("/v1/webhooks/{id}/resume"), &json!({})).await;
    assert_eq!(resumed.status, 200);
    app.stop().await;
}

/// Three workers against one always-failing webhook: it is suspended by
/// exactly its 50th failed attempt, however the attempts interleave.
#[tokio::test]
async fn three_workers_count_failures_exactly() {
    let mut app = TestApp::spawn().await;
    app.add_worker().await;
    app.add_worker().await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let id = app.create_webhook(&webhook("busy", &receiver.url(), &["*"])).await;
    for i in 0..70 {
        app.post_event(&json!({"event": "license.created", "data": {"i": i}})).await;
    }
    app.settled_deliveries(&id, 70).await;
    let w = app.webhook(&id).await;
    assert_eq!(w["status"], "suspended");
    let client = app.db.client().await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE a.recorded_at <= w.suspended_at),
                    count(*) FILTER (WHERE a.failure_count = 50)
             FROM attempts a, webhooks w",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, i64>(0), 50, "exactly 50 failed attempts up to the suspension");
    assert_eq!(row.get::<_, i64>(1), 1, "one attempt took the count to 50");
    let held: i64 =
        client.query_one("SELECT count(*) FROM deliveries WHERE state = 'suspended'", &[]).await.expect("query").get(0);
    assert!(held >= 1, "deliveries after the suspension are held, not sent");
    app.stop().await;
}

/// Retries wait in the broker: with every worker stopped while a retry is
/// pending, a worker started later still makes it.
#[tokio::test]
async fn retries_survive_workers_stopping() {
    let mut app = TestApp::spawn_with(|_, worker| worker.retry_schedule = schedule("1s")).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    let id = app.create_webhook(&webhook("patient", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;
    receiver.wait_for(1, WAIT).await;
    eventually(WAIT, || async {
        let list = app.deliveries(&id).await;
        if list.first().is_some_and(|d| d["state"] == "retrying") { Ok(()) } else { Err(format!("{list:?}")) }
    })
    .await;
    app.stop_workers().await;
    // A time-based wait, not a sentinel (no worker runs to carry one): past
    // the retry's due time (1 s after the failure, up to 20 % jitter), a
    // running worker would have made it by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests().len(), 1, "no worker, no attempt");
    app.add_worker().await;
    let delivery = &app.settled_deliveries(&id, 1).await[0];
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(attempts_of(delivery).len(), 2);
    app.stop().await;
}
