//! Operational events: a webhook's health changes announced as
//! `hookline.webhook.*` events to the webhooks that ask for them by name.

use std::{collections::HashMap, time::Duration};

use hookline_e2e::{Received, Receiver, Reply, TestApp, WAIT, eventually, is_sentinel, sentinel_webhook, webhook};
use serde_json::{Value, json};

fn body(request: &Received) -> Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

/// The operational events `receiver` got, by type.
fn operational(receiver: &Receiver) -> HashMap<String, Vec<Value>> {
    let mut by_type: HashMap<String, Vec<Value>> = HashMap::new();
    for request in receiver.requests().iter().filter(|r| !is_sentinel(r)) {
        let body = body(request);
        let event = body["event"].as_str().expect("an event type").to_owned();
        by_type.entry(event).or_default().push(body);
    }
    by_type
}

fn fast(worker: &mut hookline_worker::Settings) {
    worker.operational_poll = Duration::from_millis(100);
    worker.operational_settle = Duration::from_millis(300);
}

/// A webhook that fails until suspended, is resumed and then disabled sends
/// its operator webhook (`hookline.*`) each of `unhealthy`, `suspended`,
/// `recovered` and `disabled` exactly once, with two workers relaying,
/// and the failing webhook (`*`) none of them.
#[tokio::test]
async fn each_change_reaches_the_operator_once() {
    let mut app = TestApp::spawn_with(|_, worker| {
        worker.suspend_after_failures = 3;
        fast(worker);
    })
    .await;
    app.add_worker().await;
    let failing = Receiver::start().await;
    failing.set_status(500);
    let operator = Receiver::start().await;
    let id = app.create_webhook(&webhook("crm", &failing.url(), &["*"])).await;
    let url = app.webhook(&id).await["url"].clone();
    let ops = app.create_webhook(&webhook("operator", &operator.url(), &["hookline.*"])).await;
    app.create_webhook(&sentinel_webhook(&operator.url(), None)).await;

    for i in 0..3 {
        app.post_event(&json!({"event": "license.created", "data": {"i": i}})).await;
    }
    let got = eventually(WAIT, || async {
        let got = operational(&operator);
        if got.len() == 2 { Ok(got) } else { Err(format!("{got:?}")) }
    })
    .await;
    let unhealthy = &got["hookline.webhook.unhealthy"][0];
    assert_eq!(unhealthy["data"]["webhook"], json!({"id": id, "name": "crm", "url": url, "active": true}));
    assert_eq!(
        (&unhealthy["data"]["status"], &unhealthy["data"]["previousStatus"]),
        (&json!("unhealthy"), &json!("healthy"))
    );
    assert_eq!(unhealthy["data"]["consecutiveFailures"], 1);
    assert!(unhealthy["data"]["reason"].as_str().expect("a reason").starts_with("HTTP 500"), "{unhealthy}");
    let suspended = &got["hookline.webhook.suspended"][0];
    assert_eq!(
        (&suspended["data"]["status"], &suspended["data"]["previousStatus"]),
        (&json!("suspended"), &json!("unhealthy"))
    );
    assert_eq!(suspended["data"]["consecutiveFailures"], 3);
    assert_eq!(suspended["data"]["reason"], "HTTP 500; webhook suspended after 3 consecutive failures");
    assert_eq!(suspended["triggeredAt"], suspended["data"]["changedAt"]);
    assert!(unhealthy["triggeredAt"].as_str() < suspended["triggeredAt"].as_str(), "in the order they happened");

    let resumed = app.post(&format!("/v1/webhooks/{id}/resume"), &json!({})).await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    let disabled = app.patch(&format!("/v1/webhooks/{id}"), &json!({"active": false})).await;
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    let got = eventually(WAIT, || async {
        let got = operational(&operator);
        if got.len() == 4 { Ok(got) } else { Err(format!("{got:?}")) }
    })
    .await;
    let recovered = &got["hookline.webhook.recovered"][0]["data"];
    assert_eq!((&recovered["status"], &recovered["previousStatus"]), (&json!("healthy"), &json!("suspended")));
    assert_eq!((&recovered["reason"], &recovered["consecutiveFailures"]), (&json!("resumed by API"), &json!(0)));
    let off = &got["hookline.webhook.disabled"][0]["data"];
    assert_eq!(
        (&off["reason"], &off["webhook"]["active"], &off["status"]),
        (&json!("disabled"), &json!(false), &json!("healthy"))
    );

    // Past everything sent so far: nothing more, nothing twice.
    app.pass_sentinel(&operator, None).await;
    let got = operational(&operator);
    assert_eq!(got.values().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1, 1], "{got:?}");
    let ids: std::collections::HashSet<_> = operator
        .requests()
        .iter()
        .filter(|r| !is_sentinel(r))
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 4, "one delivery each");
    assert!(
        failing.requests().iter().all(|r| body(r)["event"] == "license.created"),
        "the failing webhook subscribes to `*` and gets no operational event"
    );
    assert_eq!(failing.count(), 3);
    let deliveries = app.deliveries(&ops).await;
    assert_eq!(deliveries.len(), 4);
    assert!(deliveries.iter().all(|d| d["state"] == "delivered"), "{deliveries:?}");
    let client = app.db.client().await;
    let rows = client.query("SELECT kind, event_id FROM webhook_health_changes ORDER BY id", &[]).await.expect("query");
    let recorded: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        recorded.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["unhealthy", "suspended", "recovered", "disabled"]
    );
    assert!(recorded.iter().all(|(_, e)| e.as_deref().is_some_and(|e| e.starts_with("hookline-change-"))));
    app.stop().await;
}

/// A receiver failing every other request, faster than the settle time,
/// makes its webhook flap without a single event announcing it unless it
/// ends unhealthy (then one); every flap back cancels the change before.
#[tokio::test]
async fn a_flapping_webhook_is_not_an_event_storm() {
    let app = TestApp::spawn_with(|_, worker| {
        fast(worker);
        worker.operational_settle = Duration::from_secs(3);
    })
    .await;
    let flapping = Receiver::start().await;
    flapping.script((0..20).map(|i| Reply::status(if i % 2 == 0 { 500 } else { 200 })));
    let operator = Receiver::start().await;
    let id = app.create_webhook(&webhook("flaky", &flapping.url(), &["license.*"])).await;
    app.create_webhook(&webhook("operator", &operator.url(), &["hookline.webhook.*"])).await;
    app.create_webhook(&sentinel_webhook(&operator.url(), None)).await;
    for i in 0..20 {
        app.post_event(&json!({"event": "license.updated", "data": {"i": i}})).await;
    }
    app.settled_deliveries(&id, 20).await;
    let client = app.db.client().await;
    let failures: i64 =
        client.query_one("SELECT count(*) FROM attempts WHERE status_code = 500", &[]).await.expect("count").get(0);
    assert_eq!(failures, 10, "ten failures among twenty attempts");
    tokio::time::sleep(Duration::from_secs(4)).await;
    app.pass_sentinel(&operator, None).await;
    let status = app.webhook(&id).await["status"].clone();
    let expected = usize::from(status == "unhealthy");
    let got = operational(&operator);
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), expected, "final status {status}: {got:?}");
    let rows: i64 = client.query_one("SELECT count(*) FROM webhook_health_changes", &[]).await.expect("count").get(0);
    assert_eq!(rows, i64::try_from(expected).expect("small"), "cancelled flaps leave no rows");
    app.stop().await;
}

/// A tenant may not send an event in Hookline's namespace (`422
/// reserved_event_type`) nor take an operational event's id.
#[tokio::test]
async fn tenants_cannot_forge_operational_events() {
    let app = TestApp::spawn().await;
    for event in ["hookline.webhook.suspended", "Hookline.webhook.recovered", "hookline"] {
        let response = app.post("/v1/events", &json!({"event": event, "data": {}})).await;
        assert_eq!(response.status, 422, "{event}: {:?}", response.body);
        assert_eq!(response.content_type, "application/problem+json");
        assert_eq!((&response.body["code"], &response.body["field"]), (&json!("reserved_event_type"), &json!("event")));
    }
    let squat =
        app.post("/v1/events", &json!({"event": "license.created", "data": {}, "id": "hookline-change-1"})).await;
    assert_eq!((squat.status, &squat.body["code"], &squat.body["field"]), (422, &json!("invalid_field"), &json!("id")));
    assert_eq!(app.post("/v1/events", &json!({"event": "hooklines.created", "data": {}})).await.status, 202);
    app.stop().await;
}
