//! Retention: the workers remove events received before the window with
//! their deliveries and attempts, and nothing newer; one worker at a time;
//! `0` keeps everything; a removed delivery is a `404`; `recover` over a
//! window reaching past retention says which part is gone.

use std::time::Duration;

use hookline_core::{format_timestamp, parse_timestamp};
use hookline_e2e::{Receiver, Response, TestApp, WAIT, eventually, webhook};
use hookline_worker::retention::Retention;
use serde_json::{Value, json};
use time::OffsetDateTime;

use openapi_check::Checker;

// `api` keeps its checker private; the recover answer with `expiredBefore`
// set is checked here with a copy of the same module.
#[allow(clippy::duplicate_mod, reason = "the checker is private to `api`")]
#[path = "openapi_check.rs"]
mod openapi_check;

/// A one-hour window, looked at every 20 ms, two events per batch.
fn hour_window(worker: &mut hookline_worker::Settings) {
    worker.retention = Retention {
        window: Duration::from_secs(3600),
        interval: Duration::from_millis(20),
        batch: 2,
        pause: Duration::from_millis(1),
        busy_percent: 100,
    };
}

/// Moves `events` `ago` into the past: their received time, and their
/// deliveries' ids (UUIDv7, whose time places a delivery in its day's
/// partition, V0014) and creation, with the attempts following their
/// delivery. The partitions of that day are made first, as a worker makes
/// the days ahead. Returns the deliveries' new ids, by event id.
async fn backdate(app: &TestApp, events: &[String], ago: time::Duration) -> Vec<String> {
    let at = OffsetDateTime::now_utc() - ago;
    let mut client = app.db.client().await;
    client
        .execute("SELECT hookline_make_partitions($1::timestamptz::date, $1::timestamptz::date)", &[&at])
        .await
        .expect("partitions");
    let tx = client.transaction().await.expect("tx");
    // The id's first 48 bits are its milliseconds; the rest stays.
    let moved = tx
        .query(
            "WITH m AS (
                 SELECT id AS old, event_id,
                        (lpad(to_hex((extract(epoch FROM $2::timestamptz) * 1000)::bigint), 12, '0')
                         || substr(replace(id::text, '-', ''), 13))::uuid AS new
                 FROM deliveries WHERE event_id = ANY($1)
             ), a AS (
                 UPDATE attempts SET delivery_id = m.new FROM m WHERE attempts.delivery_id = m.old
             ), d AS (
                 UPDATE deliveries SET id = m.new, created_at = $2 FROM m WHERE deliveries.id = m.old
             )
             SELECT new::text FROM m ORDER BY event_id",
            &[&events, &at],
        )
        .await
        .expect("deliveries");
    let n = tx.execute("UPDATE events SET received_at = $2 WHERE id = ANY($1)", &[&events, &at]).await.expect("events");
    assert_eq!(n, events.len() as u64, "every event is recorded");
    tx.commit().await.expect("commit");
    moved.iter().map(|r| r.get(0)).collect()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.db.client().await.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
}

/// Waits until `table` has `n` rows.
async fn rows(app: &TestApp, table: &str, n: i64) {
    eventually(WAIT, || async {
        let have = count(app, table).await;
        if have == n { Ok(()) } else { Err(format!("{have} rows in {table}, want {n}")) }
    })
    .await;
}

/// Posts events `<prefix>0`.. and waits until the receiver has them all;
/// returns their ids and their deliveries' ids.
async fn delivered(
    app: &TestApp,
    receiver: &Receiver,
    webhook: &str,
    prefix: &str,
    n: usize,
) -> (Vec<String>, Vec<String>) {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    for id in &ids {
        app.post_event(&json!({"event": "license.created", "id": id, "data": {}})).await;
    }
    let settled = app.settled_deliveries(webhook, n).await;
    receiver.wait_for(n, WAIT).await;
    let mut deliveries: Vec<(String, String)> = settled
        .iter()
        .map(|d| (d["eventId"].as_str().expect("event id").to_owned(), d["id"].as_str().expect("id").to_owned()))
        .collect();
    deliveries.sort();
    (ids, deliveries.into_iter().map(|(_, d)| d).collect())
}

fn removed_total(page: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix("hookline_retention_events_removed_total "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics").text().await.expect("text")
}

/// Events older than the window go, and their deliveries and attempts
/// with them: `GET` of such a delivery is `404` and the event log leaves it
/// out at once, and its row goes when its day's partition is dropped (the
/// day wholly past the window) or, in the day that straddles the cutoff,
/// with that day. Events inside the window stay with theirs, however close
/// to the cutoff; the worker counts what it removed.
#[tokio::test]
async fn removes_exactly_what_is_older_than_the_window() {
    let app = TestApp::spawn_with(|_, worker| hour_window(worker)).await;
    let receiver = Receiver::start().await;
    let hook = app.create_webhook(&webhook("w", &receiver.url(), &["license.*"])).await;
    let (events, _) = delivered(&app, &receiver, &hook, "e", 6).await;
    assert_eq!((count(&app, "deliveries").await, count(&app, "attempts").await), (6, 6));

    // e0, e1: two days old, a day wholly past the window; e2: 65 minutes
    // old, past the window in a day that straddles it; e3: 55 minutes old,
    // inside it; e4, e5: new.
    let mut gone = backdate(&app, &events[..2], time::Duration::days(2)).await;
    gone.extend(backdate(&app, &events[2..3], time::Duration::minutes(65)).await);
    let mut kept = backdate(&app, &events[3..4], time::Duration::minutes(55)).await;
    kept.extend(backdate(&app, &events[4..], time::Duration::ZERO).await);
    rows(&app, "events", 3).await;
    // The two days old are dropped with their day; e2's row waits for its.
    rows(&app, "deliveries", 4).await;
    rows(&app, "attempts", 4).await;
    let left: Vec<String> = app
        .db
        .client()
        .await
        .query("SELECT id FROM events ORDER BY id", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["e3", "e4", "e5"]);
    for id in &gone {
        let gone = app.get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(gone.status, 404, "{id}: {}", gone.body);
        assert_eq!(gone.body["code"], "not_found");
    }
    for id in &kept {
        let kept = app.get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(kept.status, 200, "{id}");
        assert_eq!(kept.body["attempts"].as_array().expect("attempts").len(), 1);
    }
    let mut listed: Vec<String> =
        app.deliveries(&hook).await.iter().map(|d| d["id"].as_str().expect("id").to_owned()).collect();
    listed.sort();
    kept.sort();
    assert_eq!(listed, kept, "the event log shows what is left");
    assert_eq!(removed_total(&metrics(app.worker_addr).await), 3.0);
    app.stop().await;
}

/// With two workers, one removes: a backlog past the window is removed by
/// one run (the other worker's runs find the lock taken, or nothing left),
/// and each event is removed once.
#[tokio::test]
async fn one_worker_removes_at_a_time() {
    let app = TestApp::spawn_with(|_, worker| hour_window(worker)).await;
    let second = hookline_worker::build(&app.worker_settings).await.expect("second worker starts");
    let second_addr = second.local_addr();
    let stop = app.shutdown.child_token();
    let second = tokio::spawn(second.run_until_stopped(stop.clone()));
    let receiver = Receiver::start().await;
    let hook = app.create_webhook(&webhook("w", &receiver.url(), &["license.*"])).await;
    let (events, _) = delivered(&app, &receiver, &hook, "e", 20).await;
    backdate(&app, &events, time::Duration::days(2)).await;
    rows(&app, "events", 0).await;
    rows(&app, "deliveries", 0).await;
    rows(&app, "attempts", 0).await;
    let mut removed = [removed_total(&metrics(app.worker_addr).await), removed_total(&metrics(second_addr).await)];
    removed.sort_by(f64::total_cmp);
    // Twenty events in batches of two: a single run took them all.
    assert_eq!(removed, [0.0, 20.0], "one run removed the backlog");
    stop.cancel();
    second.await.expect("no panic").expect("clean exit");
    app.stop().await;
}

/// `HOOKLINE_RETENTION=0` keeps everything, however old.
#[tokio::test]
async fn zero_keeps_everything() {
    let app = TestApp::spawn_with(|_, worker| {
        hour_window(worker);
        worker.retention.window = Duration::ZERO;
    })
    .await;
    let receiver = Receiver::start().await;
    let hook = app.create_webhook(&webhook("w", &receiver.url(), &["license.*"])).await;
    let (events, _) = delivered(&app, &receiver, &hook, "e", 3).await;
    let deliveries = backdate(&app, &events, time::Duration::days(400)).await;
    // Many intervals of an hour window's worker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (count(&app, "events").await, count(&app, "deliveries").await, count(&app, "attempts").await),
        (3, 3, 3)
    );
    for id in &deliveries {
        assert_eq!(app.get(&format!("/v1/deliveries/{id}")).await.status, 200);
    }
    assert_eq!(
        app.post(&format!("/v1/webhooks/{hook}/recover"), &json!({"since": "2020-01-01T00:00:00Z", "dryRun": true}))
            .await
            .body["expiredBefore"],
        Value::Null
    );
    app.stop().await;
}

/// `recover` over a window reaching back past retention counts only what
/// is left and says when the removed part ends (`expiredBefore`, and a
/// sentence); a window inside retention says nothing of it. Both answers
/// are what the OpenAPI document says.
#[tokio::test]
async fn recover_reports_the_expired_part_of_its_window() {
    let app = TestApp::spawn_with(|_, worker| hour_window(worker)).await;
    let doc = app.get("/openapi.json").await.body;
    let checker = Checker::new(&doc);
    let check = |response: &Response| {
        assert_eq!(response.status, 200, "{}", response.body);
        let errors = checker.answer("recoverWebhook", 200, &response.content_type, &response.body);
        assert!(errors.is_empty(), "{errors:#?}\n{}", response.body);
    };
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let hook = app.create_webhook(&webhook("w", &receiver.url(), &["license.*"])).await;
    let ids: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    for id in &ids {
        app.post_event(&json!({"event": "license.created", "id": id, "data": {}})).await;
    }
    let settled = app.settled_deliveries(&hook, 4).await;
    assert!(settled.iter().all(|d| d["state"] == "failed"), "{settled:?}");
    let before = OffsetDateTime::now_utc();
    let _ = backdate(&app, &ids[..2], time::Duration::hours(2)).await;
    rows(&app, "events", 2).await;

    let since = format_timestamp(before - time::Duration::hours(3));
    let window = app.post(&format!("/v1/webhooks/{hook}/recover"), &json!({"since": since, "dryRun": true})).await;
    let after = OffsetDateTime::now_utc();
    check(&window);
    assert_eq!(window.body["count"], 2, "only what is left: {}", window.body);
    let expired = parse_timestamp(window.body["expiredBefore"].as_str().expect("expiredBefore")).expect("a time");
    let hour = time::Duration::hours(1);
    assert!(before - hour - time::Duration::seconds(1) <= expired && expired <= after - hour, "{expired}");
    let message = window.body["message"].as_str().expect("a message");
    assert!(message.contains("past retention") && message.contains("cannot be replayed"), "{message}");

    let inside = format_timestamp(before - time::Duration::minutes(30));
    let recent = app.post(&format!("/v1/webhooks/{hook}/recover"), &json!({"since": inside, "dryRun": true})).await;
    check(&recent);
    assert_eq!(recent.body["count"], 2);
    assert_eq!((&recent.body["expiredBefore"], &recent.body["message"]), (&Value::Null, &Value::Null));

    // Queued for real: the two left are replayed; the answer still says
    // what is gone.
    receiver.set_status(200);
    let queued = app.post(&format!("/v1/webhooks/{hook}/recover"), &json!({"since": since})).await;
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!((queued.body["queued"].as_u64(), queued.body["expiredBefore"].is_string()), (Some(2), true));
    app.stop().await;
}
