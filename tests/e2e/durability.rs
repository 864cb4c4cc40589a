//! Postgres is the record: lost, duplicated and stale broker messages,
//! `recover` and manual retries, and a database outage under load. Retry
//! delays and the reconciler's interval and grace are shrunk by settings.

use std::time::Duration;

use hookline_broker::{DeliveryMessage, Publisher, Topology, lapin::options::QueuePurgeOptions, topology::TIERS_MS};
use hookline_core::{RetrySchedule, Trigger, fence::unix_ms};
use hookline_e2e::{Receiver, Reply, TestApp, WAIT, eventually, webhook};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

fn schedule(text: &str) -> RetrySchedule {
    RetrySchedule::parse(text).expect("valid schedule")
}

/// The sum of a worker metric's samples (all label sets).
async fn worker_metric(app: &TestApp, name: &str) -> f64 {
    let page = reqwest::get(format!("http://{}/metrics", app.worker_addr))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text");
    page.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A timestamp of the API in Unix milliseconds.
fn ms(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp: {value}"));
    unix_ms(OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339"))
}

fn at_ms(at: OffsetDateTime) -> i64 {
    unix_ms(at)
}

/// The one delivery of webhook `id`, as the API shows it, once `ready`.
async fn delivery_when(app: &TestApp, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, || async {
        let list = app.deliveries(id).await;
        let Some(first) = list.first() else { return Err("no delivery yet".to_owned()) };
        let detail = app.get(&format!("/v1/deliveries/{}", first["id"].as_str().expect("id"))).await.body;
        if ready(&detail) { Ok(detail) } else { Err(format!("{detail}")) }
    })
    .await
}

fn attempt_count(delivery: &Value) -> usize {
    delivery["attempts"].as_array().map_or(0, Vec::len)
}

/// A confirm-mode publisher into the test's namespace.
async fn publisher(app: &TestApp) -> (hookline_broker::lapin::Connection, Publisher) {
    let connection = app.broker.connect().await;
    let publisher =
        Publisher::open(&connection, Topology::from_settings(&app.worker_settings.amqp)).await.expect("publisher");
    (connection, publisher)
}

/// State counts straight from Postgres.
async fn states(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let client = app.db.client().await;
    client
        .query("SELECT state, count(*) FROM deliveries GROUP BY state", &[])
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

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

/// Postgres stopped for 30 s under load, with quorum work queues: workers
/// wait for it instead of handing messages back (no redelivery at all),
/// nothing is parked, and every accepted event is delivered.
#[tokio::test]
async fn database_outage_is_waited_out() {
    let pg = hookline_testkit::PrivatePostgres::start().await;
    let url = pg.url("hookline");
    let app = TestApp::spawn_with(|producer, worker| {
        producer.pg.url = url.clone();
        worker.pg.url = url.clone();
        producer.amqp.queue_type = hookline_broker::QueueType::Quorum;
        worker.amqp.queue_type = hookline_broker::QueueType::Quorum;
    })
    .await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("steady", &receiver.url(), &["*"])).await;
    let mut accepted = std::collections::BTreeSet::new();
    let send = async |i: usize| {
        let r = app.post("/v1/events", &json!({"event": "license.created", "data": {}, "id": format!("e{i}")})).await;
        assert_eq!(r.status, 202, "ingestion needs no database: {:?}", r.body);
        format!("e{i}")
    };
    for i in 0..40 {
        accepted.insert(send(i).await);
    }
    pg.stop().await;
    let outage = std::time::Instant::now();
    let mut i = 40;
    while outage.elapsed() < Duration::from_secs(30) {
        accepted.insert(send(i).await);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.start_again().await;
    for j in 0..40 {
        accepted.insert(send(i + j).await);
    }
    let n = accepted.len();
    eventually(Duration::from_secs(90), || async {
        let delivered: std::collections::BTreeSet<String> = app
            .deliveries_all(&id)
            .await
            .into_iter()
            .filter(|d| d["state"] == "delivered")
            .map(|d| d["eventId"].as_str().unwrap_or_default().to_owned())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 { Ok(()) } else { Err(format!("{missing} of {n} accepted events not delivered")) }
    })
    .await;
    let ids: std::collections::BTreeSet<String> =
        receiver.requests().iter().filter_map(|r| r.header("webhook-id").map(str::to_owned)).collect();
    assert_eq!(ids.len(), n, "one Webhook-Id per event");
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let parked = channel
        .basic_get(
            format!("{}.parked", app.broker.namespace()).into(),
            hookline_broker::lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get");
    assert!(parked.is_none(), "nothing parked");
    assert_eq!(worker_metric(&app, "hookline_redeliveries_total").await, 0.0, "no message went round again");
    assert!(worker_metric(&app, "hookline_store_waits_total").await > 0.0, "the worker waited for the database");
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
    // deliveries and then loses the event message: a minute ago.
    let then = OffsetDateTime::now_utc() - time::Duration::minutes(1);
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
