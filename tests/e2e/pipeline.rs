//! An event's journey: ingest → fan-out → signed POST → recorded attempt.

use base64::Engine;
use hookline_broker::lapin::{BasicProperties, options::BasicPublishOptions};
use hookline_e2e::{Receiver, SENTINEL, TestApp, WAIT, is_sentinel, sentinel_webhook, webhook};
use serde_json::{Value, json};

/// An event reaches exactly the active webhooks subscribed to it, signed
/// with each webhook's token over the exact body bytes, and each attempt is
/// recorded with its status code and both timestamps.
#[tokio::test]
async fn event_reaches_only_subscribed_active_webhooks() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let wildcard = app.create_webhook(&webhook("wildcard", &receiver.url_for("/wildcard"), &["license.*"])).await;
    let all = app.create_webhook(&webhook("all", &receiver.url_for("/all"), &["*"])).await;
    let other = app.create_webhook(&webhook("other", &receiver.url_for("/other"), &["activation.created"])).await;
    let mut inactive = webhook("inactive", &receiver.url_for("/inactive"), &["*"]);
    inactive["active"] = json!(false);
    let inactive = app.create_webhook(&inactive).await;

    let data = json!({"licenseKey": "ABCD-1234", "seats": 5, "nested": {"k": [1, 2]}});
    let event_id = app
        .post_event(&json!({"event": "license.created", "data": data, "triggeredAt": "2018-04-20T13:11:34.6926949Z"}))
        .await;

    let got = receiver.wait_for(2, WAIT).await;
    let mut paths: Vec<_> = got.iter().map(|r| r.uri.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/all", "/wildcard"]);
    for request in &got {
        let name = request.uri.trim_start_matches('/');
        let token = format!("whsec-{name}-0123456789abcdef");
        let signature = request.header("webhook-signature").expect("signed");
        assert!(hookline_core::verify(&token, &request.body, signature), "signature verifies for {name}");
        let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(token.as_bytes(), &request.body));
        assert_eq!(signature, expected, "Webhook-Signature is base64(HMAC-SHA256(token, body))");
        assert_eq!(request.header("content-type"), Some("application/json; charset=utf-8"));
        assert!(request.header("webhook-id").is_some_and(|id| !id.is_empty()));
        let ts: i64 = request.header("webhook-timestamp").expect("timestamp").parse().expect("unix seconds");
        assert!((ts - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 120);
        let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
        assert_eq!(
            body,
            json!({"event": "license.created", "data": data, "triggeredAt": "2018-04-20T13:11:34.6926949Z"})
        );
        let text = std::str::from_utf8(&request.body).expect("utf-8");
        assert!(
            text.starts_with(r#"{"event":"license.created","data":"#),
            "key order event, data, triggeredAt: {text}"
        );
    }

    for id in [&wildcard, &all] {
        let details = app.settled_deliveries(id, 1).await;
        let d = &details[0];
        assert_eq!(d["state"], "delivered");
        assert_eq!(d["eventId"], event_id.as_str());
        let attempts = d["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1);
        let a = &attempts[0];
        assert_eq!(a["attemptNo"], 1);
        assert_eq!(a["statusCode"], 200);
        let sent = hookline_core::parse_timestamp(a["sentAt"].as_str().expect("sentAt")).expect("RFC 3339");
        let received = hookline_core::parse_timestamp(a["receivedAt"].as_str().expect("receivedAt")).expect("RFC 3339");
        assert!(received >= sent);
        assert!(a["error"].is_null());
        // The Webhook-Id the receiver saw is this delivery's id.
        assert!(got.iter().any(|r| r.header("webhook-id") == d["id"].as_str()));
    }
    // A wrongly routed delivery would be made by the same dispatch as the
    // two above; the sentinel (carried by `all`) follows the event through
    // the same queues, so once it is through, that dispatch is done.
    app.pass_sentinel(&receiver, None).await;
    assert!(app.deliveries(&other).await.is_empty());
    assert!(app.deliveries(&inactive).await.is_empty());
    assert_eq!(receiver.requests().iter().filter(|r| !is_sentinel(r)).count(), 2);
    app.stop().await;
}

/// The same client-chosen id posted twice produces one event, one delivery
/// and one request to the receiver.
#[tokio::test]
async fn same_client_id_twice_yields_one_delivery() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("dedupe", &receiver.url(), &["license.created"])).await;
    app.create_webhook(&sentinel_webhook(&receiver.url_for("/sentinel"), None)).await;
    let event = json!({"event": "license.created", "data": {"n": 1}, "id": "lic-created-42"});
    assert_eq!(app.post_event(&event).await, "lic-created-42");
    assert_eq!(app.post_event(&event).await, "lic-created-42");
    app.settled_deliveries(&id, 1).await;
    // The second copy is in the dispatch queue before the sentinel: once
    // the sentinel is through, the copy has been handled.
    app.pass_sentinel(&receiver, None).await;
    assert_eq!(app.deliveries(&id).await.len(), 1);
    assert_eq!(receiver.requests().iter().filter(|r| !is_sentinel(r)).count(), 1);
    let client = app.db.client().await;
    let row =
        client.query_one("SELECT count(*) FROM events WHERE event_type <> $1", &[&SENTINEL]).await.expect("query");
    assert_eq!(row.get::<_, i64>(0), 1);
    app.stop().await;
}

/// A licensing service may publish the envelope straight to the events
/// exchange with the event type as routing key; it is delivered like any other.
#[tokio::test]
async fn event_published_to_exchange_is_delivered() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("direct", &receiver.url(), &["activation.*"])).await;
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let body = json!({"event": "activation.created", "data": {"activationId": "a-1"}, "id": "act-1"});
    channel
        .basic_publish(
            format!("{}.events", app.broker.namespace()).into(),
            "activation.created".into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()),
        )
        .await
        .expect("publish");
    let got = receiver.wait_for(1, WAIT).await;
    let payload: Value = serde_json::from_slice(&got[0].body).expect("JSON");
    assert_eq!(payload["event"], "activation.created");
    assert_eq!(payload["data"], json!({"activationId": "a-1"}));
    assert!(payload["triggeredAt"].is_string(), "triggeredAt defaults to dispatch time");
    let details = app.settled_deliveries(&id, 1).await;
    assert_eq!(details[0]["eventId"], "act-1");
    assert_eq!(details[0]["state"], "delivered");
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}

/// A receiver's error is an outcome: the attempt is recorded with the
/// status and a bounded excerpt of the response body.
#[tokio::test]
async fn failed_attempt_is_recorded() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let id = app.create_webhook(&webhook("failing", &receiver.url(), &["*"])).await;
    app.post_event(&json!({"event": "license.deleted", "data": {}})).await;
    let details = app.settled_deliveries(&id, 1).await;
    let attempt = &details[0]["attempts"][0];
    assert_eq!(details[0]["state"], "failed");
    assert_eq!(attempt["statusCode"], 500);
    assert!(attempt["receivedAt"].is_string());
    let webhook = app.get(&format!("/v1/webhooks/{id}")).await.body;
    assert_eq!(webhook["status"], "unhealthy");
    assert_eq!(webhook["consecutiveFailures"], 1);
    app.stop().await;
}

/// An endpoint that cannot be reached is recorded as a transport error with
/// no status code and no response time.
#[tokio::test]
async fn unreachable_endpoint_is_recorded_as_transport_error() {
    let app = TestApp::spawn().await;
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let id = app.create_webhook(&webhook("down", &format!("http://127.0.0.1:{port}/hook"), &["*"])).await;
    app.post_event(&json!({"event": "license.created", "data": {}})).await;
    let details = app.settled_deliveries(&id, 1).await;
    let attempt = &details[0]["attempts"][0];
    assert!(attempt["statusCode"].is_null());
    assert!(attempt["receivedAt"].is_null());
    assert_eq!(attempt["error"]["kind"], "connect");
    app.stop().await;
}

fn hmac_sha256(key: &[u8], body: &[u8]) -> Vec<u8> {
    // An independent HMAC (RFC 2104) over SHA-256, so the test does not only
    // check our signer against itself.
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(body).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
}
