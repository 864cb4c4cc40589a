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
    let poison: [(&str, &str, &[u8]); 3] = [
        (".events", "license.created", b"not json at all"),
        (".events", "license.created", br#"{"event":"license..bad","data":{}}"#),
        ("", ".deliveries", br#"{"type":"delivery.v9"}"#),
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

    // Drain the parking queue until all three arrived (they may trickle in).
    let mut parked = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while parked.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "only {} parked: {parked:?}", parked.len());
        match channel.basic_get(format!("{ns}.parked").into(), BasicGetOptions { no_ack: true }).await.expect("get") {
            Some(message) => parked.push(String::from_utf8_lossy(&message.delivery.data).into_owned()),
            None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    assert!(parked.contains(&"not json at all".to_owned()));
    assert_eq!(receiver.requests().len(), 1, "only the good event was delivered");
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}
