//! Broker messages lost, copied or gone: Postgres is the record, so a lost
//! retry or first attempt is reconciled and a copied one is fenced.

use std::time::Duration;

use hookline_broker::{DeliveryMessage, Topology, lapin::options::QueuePurgeOptions, topology::TIERS_MS};
use hookline_core::{Trigger, fence::unix_ms};
use hookline_e2e::{Receiver, Reply, TestApp, WAIT, eventually, webhook};
use serde_json::json;
use time::OffsetDateTime;

use super::{at_ms, attempt_count, delivery_when, ms, publisher, schedule, worker_metric};

/// A retry whose message is lost (the delay tiers purged while it waits) is
/// found by reconciliation once it is overdue by the grace, and delivered
/// with one more attempt, not two.
#[tokio::test]
async fn a_retry_whose_message_is_lost_is_reconciled() {
    let app = TestApp::spawn_with(|_, worker| {
        worker.retry_schedule = schedule("3s");
        worker.reconcile_interval = Duration::from_millis(200);
        worker.reconcile_grace = Duration::from_secs(1);
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    let id = app.create_webhook(&webhook("flaky", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;
    let retrying = delivery_when(&app, &id, |d| d["state"] == "retrying").await;
    let due = ms(&retrying["nextAttemptAt"]);

    // The retry waits in the delay tiers (1,024 ms in the first): purge
    // every tier (and the due queue) until its message is gone.
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let topology = Topology::from_settings(&app.worker_settings.amqp);
    let mut purged = 0;
    while purged == 0 {
        assert!(unix_ms(OffsetDateTime::now_utc()) < due - 200, "the retry's message was never seen waiting");
        for queue in TIERS_MS.iter().map(|t| topology.tier_queue(*t)).chain([topology.retries_queue()]) {
            purged += channel.queue_purge(queue.into(), QueuePurgeOptions::default()).await.expect("purge");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(purged, 1, "the retry's message was waiting in a tier, and is gone");

    let delivered = delivery_when(&app, &id, |d| d["state"] == "delivered").await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "one more request, not two");
    assert_eq!(attempt_count(&delivered), 2);
    let arrived = at_ms(got[1].at);
    assert!(arrived >= due + 1000, "sent by reconciliation once overdue by the grace ({arrived} vs due {due})");
    assert!(arrived <= due + 1000 + 200 + 3000, "within interval + grace (and some slack): {}", arrived - due);
    assert_eq!(worker_metric(&app, "hookline_reconciled_total").await, 1.0);
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}

/// Copies of a retry message (published beside the original, and again
/// after delivery) make one request, one attempt row, at the scheduled
/// time; the copies are counted as fenced.
#[tokio::test]
async fn a_duplicated_delivery_message_is_fenced() {
    let app = TestApp::spawn_with(|_, worker| worker.retry_schedule = schedule("1500ms")).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    let id = app.create_webhook(&webhook("flaky", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;
    let retrying = delivery_when(&app, &id, |d| d["state"] == "retrying").await;
    let due = ms(&retrying["nextAttemptAt"]);
    let delivery = uuid::Uuid::parse_str(retrying["id"].as_str().expect("id")).expect("uuid");
    let webhook_id = uuid::Uuid::parse_str(&id).expect("uuid");

    let (connection, publisher) = publisher(&app).await;
    let copy = DeliveryMessage::due(delivery, webhook_id, due, Trigger::Scheduled);
    let now = unix_ms(OffsetDateTime::now_utc());
    publisher.schedule(&copy, now).await.expect("copy 1");
    publisher.schedule(&copy, now).await.expect("copy 2");

    let delivered = delivery_when(&app, &id, |d| d["state"] == "delivered").await;
    eventually(WAIT, || async {
        let fenced = worker_metric(&app, "hookline_messages_fenced_total").await;
        if fenced >= 2.0 { Ok(()) } else { Err(format!("{fenced} fenced")) }
    })
    .await;
    // A copy arriving after delivery does nothing either.
    publisher.publish_deliveries(&[copy]).await.expect("copy 3");
    eventually(WAIT, || async {
        let fenced = worker_metric(&app, "hookline_messages_fenced_total").await;
        if fenced >= 3.0 { Ok(()) } else { Err(format!("{fenced} fenced")) }
    })
    .await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "the first attempt and one retry");
    assert!(at_ms(got[1].at) >= due, "the retry kept its time");
    let after = app.get(&format!("/v1/deliveries/{}", delivered["id"].as_str().expect("id"))).await.body;
    assert_eq!(attempt_count(&after), 2);
    assert_eq!(after["state"], "delivered");
    assert_eq!(worker_metric(&app, "hookline_messages_fenced_total").await, 3.0);
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}

/// A fresh event's delivery whose event message is gone before its first
/// attempt (pending, no due time, nothing on the broker) is found by the
/// scan for unstarted deliveries and delivered.
#[tokio::test]
async fn a_delivery_whose_event_message_is_gone_is_delivered() {
    let app = TestApp::spawn_with(|_, worker| {
        worker.reconcile_interval = Duration::from_millis(200);
        worker.reconcile_grace = Duration::from_secs(1);
    })
    .await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("steady", &receiver.url(), &["*"])).await;
    // What dispatch leaves behind when it records an event and its
    // deliveries and then loses the event message: 10 s ago. The worker
    // scans new deliveries up to the dispatch lease plus the grace (at
    // least 11 s here) before now, so the row is newer than what it has
    // scanned already, however late it is inserted, and is found about a
    // second later (plus twice the recent lateness, on a loaded machine).
    let then = OffsetDateTime::now_utc() - time::Duration::seconds(10);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, u64::try_from(then.unix_timestamp()).expect("after 1970"), 0);
    let delivery = uuid::Uuid::new_v7(ts);
    let webhook_id = uuid::Uuid::parse_str(&id).expect("uuid");
    let client = app.db.client().await;
    let body = br#"{"event":"license.created","data":{"lost":true},"triggeredAt":"2026-01-01T00:00:00Z"}"#.to_vec();
    client
        .execute(
            "INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at)
             VALUES ('default', 'lost-1', 'license.created', $1, $2, $2)",
            &[&body, &then],
        )
        .await
        .expect("event");
    client
        .execute(
            "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, created_at, updated_at)
             VALUES ($1, 'default', 'lost-1', $2, 'license.created', 'pending', $3, $3)",
            &[&delivery, &webhook_id, &then],
        )
        .await
        .expect("delivery");
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), Some(delivery.to_string().as_str()));
    assert_eq!(got[0].body, body, "the stored body, byte for byte");
    let detail = delivery_when(&app, &id, |d| d["state"] == "delivered").await;
    assert_eq!(attempt_count(&detail), 1);
    assert_eq!(worker_metric(&app, "hookline_reconciled_total").await, 1.0);
    app.stop().await;
}
