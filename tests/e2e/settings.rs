//! Per-webhook delivery settings: extra headers (secret ones write-only and
//! sealed at rest) and their validation.

use hookline_e2e::{Receiver, TestApp, WAIT, webhook};
use serde_json::json;

/// Extra headers reach the receiver beside Hookline's own; a secret value
/// is never shown again nor stored in plaintext, and an update that leaves
/// it out keeps it.
#[tokio::test]
async fn extra_headers_are_sent_and_secrets_stay_secret() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let mut body = webhook("crm", &receiver.url(), &["license.*"]);
    body["headers"] = json!([
        {"name": "X-Api-Key", "value": "public-key-1"},
        {"name": "Authorization", "value": "Bearer s3cret-value", "secret": true},
    ]);
    let id = app.create_webhook(&body).await;

    let shown = app.webhook(&id).await;
    assert_eq!(
        shown["headers"],
        json!([
            {"name": "X-Api-Key", "value": "public-key-1", "secret": false},
            {"name": "Authorization", "value": "****", "secret": true},
        ])
    );
    let stored: String = app
        .db
        .client()
        .await
        .query_one("SELECT headers::text FROM webhooks WHERE id = $1::text::uuid", &[&id])
        .await
        .expect("the row")
        .get(0);
    assert!(!stored.contains("s3cret-value"), "a secret header value is sealed at rest: {stored}");
    assert!(stored.contains("public-key-1"));

    app.post_event(&json!({"event": "license.created", "data": {"n": 1}})).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), Some("public-key-1"));
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cret-value"));
    assert!(got[0].header("webhook-signature").is_some());
    assert_eq!(got[0].header("content-type"), Some("application/json; charset=utf-8"));

    // Changing the public header and leaving the secret's value out keeps it.
    let patched = app
        .patch(
            &format!("/v1/webhooks/{id}"),
            &json!({"headers": [
                {"name": "X-Api-Key", "value": "public-key-2"},
                {"name": "authorization", "secret": true},
            ]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    app.post_event(&json!({"event": "license.created", "data": {"n": 2}})).await;
    let got = receiver.wait_for(2, WAIT).await;
    let second = got.iter().find(|r| r.body.windows(5).any(|w| w == b"\"n\":2")).expect("the second event");
    assert_eq!(second.header("x-api-key"), Some("public-key-2"));
    assert_eq!(second.header("authorization"), Some("Bearer s3cret-value"));

    // An empty list removes them all.
    assert_eq!(app.patch(&format!("/v1/webhooks/{id}"), &json!({"headers": []})).await.status, 200);
    assert_eq!(app.webhook(&id).await["headers"], json!([]));
    app.stop().await;
}

/// Hookline's own headers, hop-by-hop headers, bad names and values (CR/LF
/// injection), repeats and more than 20 are refused with a field error;
/// nothing is changed.
#[tokio::test]
async fn header_overrides_and_bad_headers_are_refused() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("crm", &receiver.url(), &["*"])).await;
    let refused = |header: serde_json::Value| json!({"headers": [header]});
    let cases = [
        refused(json!({"name": "Webhook-Signature", "value": "forged"})),
        refused(json!({"name": "webhook-id", "value": "x"})),
        refused(json!({"name": "Content-Type", "value": "text/plain"})),
        refused(json!({"name": "Transfer-Encoding", "value": "chunked"})),
        refused(json!({"name": "Host", "value": "evil.example"})),
        refused(json!({"name": "X Bad", "value": "x"})),
        refused(json!({"name": "X-Ok", "value": "a\r\nX-Injected: 1"})),
        refused(json!({"name": "X-New", "secret": true})),
        json!({"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]}),
        json!({"headers": (0..21).map(|i| json!({"name": format!("X-{i}"), "value": "v"})).collect::<Vec<_>>()}),
    ];
    for case in &cases {
        let answer = app.patch(&format!("/v1/webhooks/{id}"), case).await;
        assert_eq!(answer.status, 422, "{case}: {:?}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.body["code"], "invalid_field", "{case}");
        assert_eq!(answer.body["field"], "headers", "{case}");
    }
    let mut create = webhook("crm2", &receiver.url(), &["*"]);
    create["headers"] = json!([{"name": "Webhook-Timestamp", "value": "0"}]);
    assert_eq!(app.post("/v1/webhooks", &create).await.status, 422);
    assert_eq!(app.webhook(&id).await["headers"], json!([]));
    app.stop().await;
}
