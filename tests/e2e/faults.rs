//! Faults that need no private servers: poison messages.

use hookline_broker::lapin::{
    BasicProperties,
    options::{BasicGetOptions, BasicPublishOptions},
};
use hookline_e2e::{Receiver, TestApp, WAIT, webhook};
use serde_json::json;

/// Messages that can never be processed (not JSON, an invalid event, a
/// malformed delivery message) are parked once in `<ns>.parked`, and the
/// worker carries on delivering the next good event.
#[tokio::test]
async fn poison_messages_are_parked() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("after", &receiver.url(), &["*"])).await;
    let ns = app.broker.namespace().to_owned();
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let huge = format!(r#"{{"event":"license.created","data":{{"blob":"{}"}}}}"#, "x".repeat(300 * 1024));
    let poison: [(&str, &str, &[u8]); 4] = [
        (".events", "license.created", b"not json at all"),
        (".events", "license.created", br#"{"event":"license..bad","data":{}}"#),
        ("", ".deliveries", br#"{"type":"delivery.v9"}"#),
        (".events", "license.created", huge.as_bytes()),
    ];
    for (exchange, key, body) in poison {
        let (exchange, key) = if exchange.is_empty() {
            (String::new(), format!("{ns}{key}"))
        } else {
            (format!("{ns}{exchange}"), key.to_owned())
        };
        channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .expect("publish");
    }
    app.post_event(&json!({"event": "license.created", "data": {"good": true}})).await;
    let delivery = &app.settled_deliveries(&id, 1).await[0];
    assert_eq!(delivery["state"], "delivered");

    // Drain the parking queue until all four arrived (they may trickle in),
    // each with the reason it can never be processed.
    let mut parked = Vec::new();
    let mut reasons = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while parked.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "only {} parked: {reasons:?}", parked.len());
        match channel.basic_get(format!("{ns}.parked").into(), BasicGetOptions { no_ack: true }).await.expect("get") {
            Some(message) => {
                let headers = message.delivery.properties.headers().clone().unwrap_or_default();
                let reason = headers
                    .inner()
                    .iter()
                    .find(|(k, _)| k.as_str() == hookline_broker::publisher::PARKED_REASON_HEADER)
                    .map(|(_, v)| match v {
                        hookline_broker::lapin::types::AMQPValue::LongString(text) => {
                            String::from_utf8_lossy(text.as_bytes()).into_owned()
                        }
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                reasons.push(reason);
                parked.push(String::from_utf8_lossy(&message.delivery.data).into_owned());
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    assert!(parked.contains(&"not json at all".to_owned()));
    assert!(reasons.iter().all(|r| !r.is_empty()), "every parked message says why: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("at most")), "the oversized event says its limit: {reasons:?}");
    assert_eq!(receiver.requests().len(), 1, "only the good event was delivered");
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}

/// RabbitMQ stopped for 10 s during a load: ingestion answers 503 (never a 202 for
/// an unconfirmed publish) and `/readyz` reports not ready; once it is back,
/// producer and worker reconnect by themselves and every event that got a
/// 202 is delivered.
#[tokio::test]
async fn broker_outage_loses_nothing() {
    let rabbit = hookline_testkit::PrivateBroker::start().await;
    let url = rabbit.url();
    let app = TestApp::spawn_with(|producer, worker| {
        producer.amqp.url = url.clone();
        worker.amqp.url = url.clone();
    })
    .await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("steady", &receiver.url(), &["*"])).await;
    let mut accepted = std::collections::BTreeSet::new();
    for i in 0..50 {
        accepted.insert(
            app.post_event(&json!({"event": "license.created", "data": {"i": i}, "id": format!("before-{i}")})).await,
        );
    }

    rabbit.stop().await;
    let outage = std::time::Instant::now();
    let mut refused = 0;
    // Requests keep coming for the whole outage (10 s and more).
    for i in 0..20 {
        let response =
            app.post("/v1/events", &json!({"event": "license.created", "data": {}, "id": format!("during-{i}")})).await;
        match response.status {
            202 => {
                accepted.insert(format!("during-{i}"));
            }
            503 => {
                assert_eq!(response.body["code"], "broker_unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other} during the outage: {:?}", response.body),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(outage.elapsed() >= std::time::Duration::from_secs(10), "the broker stayed down 10 s");
    assert!(refused > 0, "requests during the outage are refused");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{:?}", ready.body);

    rabbit.restart().await;
    hookline_e2e::eventually(WAIT, || async {
        let ready = app.get("/readyz").await;
        if ready.status == 200 { Ok(()) } else { Err(format!("{:?}", ready.body)) }
    })
    .await;
    for i in 0..50 {
        accepted.insert(
            app.post_event(&json!({"event": "license.created", "data": {"i": i}, "id": format!("after-{i}")})).await,
        );
    }
    let n = accepted.len();
    hookline_e2e::eventually(std::time::Duration::from_secs(60), || async {
        let delivered: std::collections::BTreeSet<String> = app
            .deliveries_all(&id)
            .await
            .into_iter()
            .filter(|d| d["state"] == "delivered")
            .map(|d| d["eventId"].as_str().unwrap_or_default().to_owned())
            .collect();
        let missing: Vec<_> = accepted.difference(&delivered).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} of {n} accepted events not delivered: {missing:?}", missing.len()))
        }
    })
    .await;
    app.stop().await;
}

/// PostgreSQL restarted during a load: workers hand messages back while it
/// is down and carry on by themselves; every event is delivered and its log
/// is complete.
#[tokio::test]
async fn database_restart_loses_nothing() {
    let pg = hookline_testkit::PrivatePostgres::start().await;
    let url = pg.url("hookline");
    let app = TestApp::spawn_with(|producer, worker| {
        producer.pg.url = url.clone();
        worker.pg.url = url.clone();
    })
    .await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("steady", &receiver.url(), &["*"])).await;
    for i in 0..100 {
        app.post_event(&json!({"event": "license.created", "data": {"i": i}, "id": format!("e{i}")})).await;
        if i == 30 {
            pg.restart().await;
        }
    }
    let n = 100;
    let deliveries = hookline_e2e::eventually(std::time::Duration::from_secs(60), || async {
        let list = app.deliveries_all(&id).await;
        let delivered = list.iter().filter(|d| d["state"] == "delivered").count();
        if delivered == n { Ok(list) } else { Err(format!("{delivered} of {n} delivered")) }
    })
    .await;
    let events: std::collections::BTreeSet<String> =
        deliveries.iter().map(|d| d["eventId"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(events.len(), n, "one delivery per event");
    for d in deliveries.iter().take(10) {
        let detail = app.get(&format!("/v1/deliveries/{}", d["id"].as_str().expect("id"))).await.body;
        let attempts = detail["attempts"].as_array().expect("attempts");
        assert!(attempts.iter().any(|a| a["statusCode"] == 200), "the successful attempt is logged: {detail}");
    }
    app.stop().await;
}

/// A hanging endpoint holds at most its per-webhook share of a worker's
/// slots; a healthy webhook's deliveries go through meanwhile.
#[tokio::test]
async fn slow_endpoint_does_not_starve_others() {
    let app = TestApp::spawn_with(|_, worker| {
        worker.concurrency = 8;
        worker.max_in_flight_per_webhook = 2;
        worker.request_timeout = std::time::Duration::from_secs(10);
    })
    .await;
    let slow = Receiver::start().await;
    slow.set_delay(std::time::Duration::from_secs(3));
    let fast = Receiver::start().await;
    app.create_webhook(&webhook("slow", &slow.url(), &["slow.*"])).await;
    let healthy = app.create_webhook(&webhook("fast", &fast.url(), &["fast.*"])).await;
    for i in 0..20 {
        app.post_event(&json!({"event": "slow.thing", "data": {"i": i}})).await;
    }
    for i in 0..20 {
        app.post_event(&json!({"event": "fast.thing", "data": {"i": i}})).await;
    }
    let delivered = app.settled_deliveries(&healthy, 20).await;
    assert!(delivered.iter().all(|d| d["state"] == "delivered"));
    assert!(slow.requests().len() < 20, "the healthy webhook did not wait for the slow one to finish");
    assert!(
        slow.max_in_flight() <= 2,
        "at most 2 requests in flight to the slow endpoint, saw {}",
        slow.max_in_flight()
    );
    app.stop().await;
}
