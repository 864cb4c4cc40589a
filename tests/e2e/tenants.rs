//! Tenants: isolation of events and logs, tenant tokens, deletion, limits.

use hookline_broker::lapin::{BasicProperties, options::BasicPublishOptions};
use hookline_core::{TenantId, TokenSecret};
use hookline_e2e::{Receiver, TOKEN_SECRET, TestApp, WAIT, is_sentinel, webhook};
use reqwest::Method;
use serde_json::{Value, json};

fn with_tenant(mut body: Value, tenant: &str) -> Value {
    body["tenant"] = json!(tenant);
    body
}

async fn publish_direct(app: &TestApp, body: &Value) {
    let connection = app.broker.connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let event = body["event"].as_str().expect("event").to_owned();
    channel
        .basic_publish(
            format!("{}.events", app.broker.namespace()).into(),
            event.into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("published");
    let _ = connection.close(200, "done".into()).await;
}

/// Two tenants with identical subscriptions (`*` included) each receive only
/// their own events, over HTTP and over AMQP, and see only their own logs.
#[tokio::test]
async fn tenants_are_isolated() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let a = app.create_webhook(&with_tenant(webhook("a", &receiver.url_for("/a"), &["*"]), "acct-a")).await;
    let b = app.create_webhook(&with_tenant(webhook("b", &receiver.url_for("/b"), &["*"]), "acct-b")).await;
    let d = app.create_webhook(&webhook("d", &receiver.url_for("/default"), &["*"])).await;

    app.post_event(&json!({"event": "license.created", "data": {"for": "a"}, "tenant": "acct-a", "id": "e1"})).await;
    publish_direct(&app, &json!({"event": "license.created", "data": {"for": "b"}, "tenant": "acct-b", "id": "e2"}))
        .await;
    publish_direct(&app, &json!({"event": "license.created", "data": {"for": "a"}, "tenant": "acct-a", "id": "e3"}))
        .await;
    app.post_event(&json!({"event": "license.created", "data": {"for": "default"}, "id": "e4"})).await;

    let got = receiver.wait_for(4, WAIT).await;
    for request in &got {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON");
        let path = request.uri.trim_start_matches('/');
        let expected = match path {
            "a" => "a",
            "b" => "b",
            _ => "default",
        };
        assert_eq!(body["data"]["for"], expected, "{path} got {body}");
    }
    assert_eq!(app.settled_deliveries(&a, 2).await.len(), 2);
    assert_eq!(app.settled_deliveries(&b, 1).await.len(), 1);
    assert_eq!(app.settled_deliveries(&d, 1).await.len(), 1);

    let listed = app.get("/v1/deliveries?tenant=acct-b").await;
    let items = listed.body["data"].as_array().expect("data");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["webhookId"], b.as_str());
    let webhooks = app.get("/v1/webhooks?tenant=acct-a").await;
    assert_eq!(webhooks.body["data"].as_array().expect("data").len(), 1);

    let tenants = app.get("/v1/tenants").await;
    assert_eq!(tenants.status, 200);
    let names: Vec<_> = tenants.body["data"].as_array().expect("data").iter().map(|t| t["tenant"].clone()).collect();
    assert_eq!(names, [json!("acct-a"), json!("acct-b"), json!("default")]);
    assert_eq!(tenants.body["data"][0]["webhooks"], 1);
    assert_eq!(tenants.body["data"][0]["healthy"], 1);

    // Last, as it adds a delivery to `b`: a sentinel of acct-b, carried by
    // its `*` webhook, queued behind the four events. Once it is through,
    // a request of theirs to another tenant's webhook would have arrived.
    app.pass_sentinel(&receiver, Some("acct-b")).await;
    let others = receiver.requests().iter().filter(|r| !is_sentinel(r)).count();
    assert_eq!(others, 4, "no event reached another tenant's webhook");
    app.stop().await;
}

/// A tenant token reads and writes its own tenant's resources only; other
/// tenants' are 404, writes for them 403, admin operations 403; expired,
/// tampered and missing credentials 401.
#[tokio::test]
async fn tenant_tokens_scope_access() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let theirs = app.create_webhook(&with_tenant(webhook("theirs", &receiver.url(), &["*"]), "acct-b")).await;
    app.post_event(&json!({"event": "a.b", "data": {}, "tenant": "acct-b"})).await;
    let their_delivery = app.settled_deliveries(&theirs, 1).await[0]["id"].as_str().expect("id").to_owned();

    let minted = app.post("/v1/tenants/acct-a/tokens", &json!({"ttlSeconds": 600})).await;
    assert_eq!(minted.status, 201, "{:?}", minted.body);
    assert_eq!(minted.body["tenant"], "acct-a");
    let token = minted.body["token"].as_str().expect("token").to_owned();
    let t = Some(token.as_str());

    // Own resources: create (tenant implied), read, update, list, send, log.
    let created = app.call(Method::POST, "/v1/webhooks", Some(&webhook("mine", &receiver.url(), &["*"])), t).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["tenant"], "acct-a");
    let mine = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(app.call(Method::GET, &format!("/v1/webhooks/{mine}"), None, t).await.status, 200);
    let patch = json!({"name": "renamed"});
    assert_eq!(app.call(Method::PATCH, &format!("/v1/webhooks/{mine}"), Some(&patch), t).await.status, 200);
    let listed = app.call(Method::GET, "/v1/webhooks", None, t).await;
    assert_eq!(listed.body["data"].as_array().expect("data").len(), 1, "only its own webhook is listed");
    let sent = app.call(Method::POST, "/v1/events", Some(&json!({"event": "a.b", "data": {}})), t).await;
    assert_eq!(sent.status, 202);
    assert_eq!(app.settled_deliveries(&mine, 1).await.len(), 1);
    let deliveries = app.call(Method::GET, "/v1/deliveries", None, t).await;
    assert_eq!(deliveries.body["data"].as_array().expect("data").len(), 1);
    assert_eq!(app.call(Method::GET, &format!("/v1/webhooks/{mine}/deliveries"), None, t).await.status, 200);

    // Another tenant's resources do not exist for this token.
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{theirs}")),
        (Method::PATCH, format!("/v1/webhooks/{theirs}")),
        (Method::DELETE, format!("/v1/webhooks/{theirs}")),
        (Method::GET, format!("/v1/webhooks/{theirs}/deliveries")),
        (Method::GET, format!("/v1/deliveries/{their_delivery}")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
        let response = app.call(method.clone(), &path, body.as_ref(), t).await;
        assert_eq!(response.status, 404, "{method} {path}");
        assert_eq!(response.body["code"], "not_found");
    }
    assert_eq!(app.get(&format!("/v1/webhooks/{theirs}")).await.body["name"], "theirs", "untouched");

    // Acting for another tenant, or as an admin, is refused.
    let foreign = with_tenant(webhook("x", &receiver.url(), &["*"]), "acct-b");
    let refused = app.call(Method::POST, "/v1/webhooks", Some(&foreign), t).await;
    assert_eq!((refused.status, refused.body["code"].clone()), (403, json!("tenant_mismatch")));
    let event = json!({"event": "a.b", "data": {}, "tenant": "acct-b"});
    assert_eq!(app.call(Method::POST, "/v1/events", Some(&event), t).await.status, 403);
    assert_eq!(app.call(Method::GET, "/v1/deliveries?tenant=acct-b", None, t).await.status, 403);
    let mint = json!({"ttlSeconds": 60});
    assert_eq!(app.call(Method::POST, "/v1/tenants/acct-a/tokens", Some(&mint), t).await.status, 403);
    assert_eq!(app.call(Method::DELETE, "/v1/tenants/acct-a", None, t).await.status, 403);
    assert_eq!(app.call(Method::GET, "/v1/tenants", None, t).await.status, 403);

    // Bad credentials: expired, tampered, missing, wrong key.
    let secret = TokenSecret::new(TOKEN_SECRET).expect("long enough");
    let acct_a = TenantId::parse("acct-a").expect("valid");
    let expired = secret.mint(&acct_a, time::OffsetDateTime::now_utc() - time::Duration::seconds(1));
    let forged = TokenSecret::new("not-the-server-secret-123")
        .expect("long")
        .mint(&acct_a, time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let mut tampered = token.clone();
    tampered.replace_range(5..6, if &token[5..6] == "Y" { "Z" } else { "Y" });
    for bearer in
        [Some(expired.as_str()), Some(forged.as_str()), Some(tampered.as_str()), None, Some("wrong-key-0123456789")]
    {
        let response = app.call(Method::GET, "/v1/webhooks", None, bearer).await;
        assert_eq!(response.status, 401, "{bearer:?}");
        assert_eq!(response.body["code"], "unauthorized");
        assert_eq!(response.content_type, "application/problem+json");
    }
    assert_eq!(app.call(Method::GET, "/healthz", None, None).await.status, 200, "health stays open");
    assert_eq!(app.post("/v1/tenants/acct-a/tokens", &json!({"ttlSeconds": 0})).await.status, 422);
    app.stop().await;
}

/// Deleting a tenant removes every row of it from every table, reports the
/// counts, and leaves other tenants untouched.
#[tokio::test]
async fn deleting_a_tenant_removes_all_of_it() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let gone = app.create_webhook(&with_tenant(webhook("gone", &receiver.url(), &["*"]), "closing")).await;
    let kept = app.create_webhook(&with_tenant(webhook("kept", &receiver.url(), &["*"]), "staying")).await;
    for (i, tenant) in ["closing", "closing", "staying"].iter().enumerate() {
        app.post_event(&json!({"event": "a.b", "data": {"i": i}, "tenant": tenant})).await;
    }
    app.settled_deliveries(&gone, 2).await;
    app.settled_deliveries(&kept, 1).await;

    let removed = app.delete("/v1/tenants/closing").await;
    assert_eq!(removed.status, 200);
    assert_eq!(
        removed.body,
        json!({"tenant": "closing", "webhooks": 1, "events": 2, "deliveries": 2, "attempts": 2, "total": 7})
    );
    let client = app.db.client().await;
    for (table, condition) in [
        ("webhooks", "tenant = 'closing'"),
        ("events", "tenant = 'closing'"),
        ("deliveries", "tenant = 'closing'"),
        ("attempts", "delivery_id NOT IN (SELECT id FROM deliveries)"),
    ] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table} WHERE {condition}"), &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(n, 0, "{table} still holds rows of the deleted tenant");
    }
    let n: i64 = client.query_one("SELECT count(*) FROM attempts", &[]).await.expect("query").get(0);
    assert_eq!(n, 1, "the other tenant's attempt is kept");
    assert_eq!(app.get(&format!("/v1/webhooks/{kept}")).await.status, 200);
    assert_eq!(app.get(&format!("/v1/webhooks/{gone}")).await.status, 404);
    app.stop().await;
}

/// A tenant cannot exceed its webhook limit; other tenants are unaffected.
#[tokio::test]
async fn webhooks_per_tenant_are_limited() {
    let app = TestApp::spawn_with(|producer, _| producer.max_webhooks_per_tenant = 2).await;
    for i in 0..2 {
        app.create_webhook(&with_tenant(webhook(&format!("w{i}"), "https://example.com/h", &["*"]), "small")).await;
    }
    let third = app.post("/v1/webhooks", &with_tenant(webhook("w2", "https://example.com/h", &["*"]), "small")).await;
    assert_eq!(third.status, 422);
    assert_eq!(third.body["code"], "tenant_webhook_limit");
    assert!(third.body["detail"].as_str().expect("detail").contains("maximum of 2"));
    app.create_webhook(&webhook("elsewhere", "https://example.com/h", &["*"])).await;
    app.stop().await;
}
