//! Manual retries ("retry now") and `recover`: a failed manual attempt keeps
//! the delivery's schedule, and `recover` leaves nothing stranded.

use std::time::Duration;

use hookline_e2e::{Receiver, Reply, TestApp, WAIT, eventually, webhook};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{at_ms, attempt_count, delivery_when, ms, schedule, states, worker_metric};

/// A failed "retry now" of a retrying delivery leaves its scheduled retry
/// where it was: the delivery stays retrying with the same due time, and
/// the retry happens then.
#[tokio::test]
async fn a_failed_manual_retry_keeps_the_schedule() {
    let app = TestApp::spawn_with(|_, worker| worker.retry_schedule = schedule("3s")).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500), Reply::status(500)]);
    let id = app.create_webhook(&webhook("flaky", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;
    let retrying = delivery_when(&app, &id, |d| d["state"] == "retrying").await;
    let due = ms(&retrying["nextAttemptAt"]);
    let delivery = retrying["id"].as_str().expect("id").to_owned();

    let manual = app.post(&format!("/v1/deliveries/{delivery}/retry"), &json!({})).await;
    assert_eq!(manual.status, 202, "{:?}", manual.body);
    let after_manual = delivery_when(&app, &id, |d| attempt_count(d) == 2).await;
    assert_eq!(after_manual["state"], "retrying");
    assert_eq!(ms(&after_manual["nextAttemptAt"]), due, "the automatic retry keeps its time");
    assert_eq!(after_manual["attempts"][1]["trigger"], "manual");

    let delivered = delivery_when(&app, &id, |d| d["state"] == "delivered").await;
    let triggers: Vec<&Value> =
        delivered["attempts"].as_array().expect("attempts").iter().map(|a| &a["trigger"]).collect();
    assert_eq!(triggers, [&json!("scheduled"), &json!("manual"), &json!("scheduled")]);
    let got = receiver.requests();
    assert_eq!(got.len(), 3);
    assert!(at_ms(got[2].at) >= due, "the scheduled retry came at its time");
    app.stop().await;
}

/// A failed "retry now" of a pending delivery (a replay `recover` queued
/// for later) leaves it pending with its due time; the replay still comes.
#[tokio::test]
async fn a_failed_manual_retry_keeps_a_pending_replay() {
    let app = TestApp::spawn_with(|producer, _| producer.recover_rate_per_sec = 1).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let since = hookline_core::format_timestamp(OffsetDateTime::now_utc() - time::Duration::seconds(1));
    let id = app.create_webhook(&webhook("down", &receiver.url(), &["*"])).await;
    for i in 0..3 {
        app.post_event(&json!({"event": "license.created", "data": {"i": i}, "id": format!("e{i}")})).await;
    }
    let failed = app.settled_deliveries(&id, 3).await;
    assert!(failed.iter().all(|d| d["state"] == "failed"));
    let run = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since})).await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    // The last replay is due two seconds from now.
    let last = failed.iter().find(|d| d["eventId"] == "e2").expect("e2")["id"].as_str().expect("id").to_owned();
    let pending = app.get(&format!("/v1/deliveries/{last}")).await.body;
    assert_eq!(pending["state"], "pending", "{pending}");
    let due = ms(&pending["nextAttemptAt"]);

    let manual = app.post(&format!("/v1/deliveries/{last}/retry"), &json!({})).await;
    assert_eq!(manual.status, 202);
    let after = eventually(WAIT, || async {
        let d = app.get(&format!("/v1/deliveries/{last}")).await.body;
        if attempt_count(&d) == 2 { Ok(d) } else { Err(format!("{d}")) }
    })
    .await;
    assert!(at_ms(OffsetDateTime::now_utc()) < due, "the manual attempt came before the replay");
    assert_eq!(after["state"], "pending");
    assert_eq!(ms(&after["nextAttemptAt"]), due);

    receiver.set_status(200);
    let delivered = eventually(WAIT, || async {
        let d = app.get(&format!("/v1/deliveries/{last}")).await.body;
        if d["state"] == "delivered" { Ok(d) } else { Err(format!("{d}")) }
    })
    .await;
    let triggers: Vec<&Value> =
        delivered["attempts"].as_array().expect("attempts").iter().map(|a| &a["trigger"]).collect();
    assert_eq!(triggers, [&json!("scheduled"), &json!("manual"), &json!("recover")]);
    app.stop().await;
}

/// `recover` over 2,000 failed deliveries to a receiver that still fails:
/// every replay is marked (due) before anything is published, each fails
/// once more, none is left pending, and a second `recover` counts them all.
#[tokio::test]
async fn recover_leaves_nothing_stranded() {
    const N: usize = 2000;
    let app = TestApp::spawn_with(|producer, worker| {
        producer.recover_rate_per_sec = 2000;
        worker.suspend_after_failures = 1_000_000;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let since = hookline_core::format_timestamp(OffsetDateTime::now_utc() - time::Duration::seconds(1));
    let id = app.create_webhook(&webhook("down", &receiver.url(), &["*"])).await;
    for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
        let bodies: Vec<Value> = chunk.iter().map(|i| json!({"event": "license.created", "data": {"i": i}})).collect();
        futures_util::future::join_all(bodies.iter().map(|body| app.post_event(body))).await;
    }
    let client = app.db.client().await;
    eventually(Duration::from_secs(60), || async {
        let s = states(&app).await;
        if s.get("failed").copied() == Some(N as i64) { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await;

    let run = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since})).await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    assert_eq!((run.body["count"].clone(), run.body["queued"].clone()), (json!(N), json!(N)));
    let unmarked: i64 = client
        .query_one(
            "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retrying') AND next_attempt_at IS NULL",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(unmarked, 0, "every waiting delivery has a due time: none pending without a way forward");
    eventually(Duration::from_secs(60), || async {
        let s = states(&app).await;
        let attempts: i64 = client.query_one("SELECT count(*) FROM attempts", &[]).await.expect("q").get(0);
        if s.get("failed").copied() == Some(N as i64) && attempts == 2 * N as i64 {
            Ok(())
        } else {
            Err(format!("{s:?}, {attempts} attempts"))
        }
    })
    .await;
    assert_eq!(receiver.requests().len(), 2 * N, "one replay each");
    let again = app.post(&format!("/v1/webhooks/{id}/recover"), &json!({"since": since, "dryRun": true})).await;
    assert_eq!(again.body["count"], json!(N), "a second recover finds them all again");
    assert_eq!(worker_metric(&app, "hookline_reconciled_total").await, 0.0, "nothing was lost");
    app.stop().await;
}
