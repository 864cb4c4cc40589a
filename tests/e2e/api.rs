//! The webhooks API: shapes, validation, paging, and errors as problem+json.

use hookline_e2e::{ADMIN_KEY, TestApp, webhook};
use serde_json::json;

/// Create returns 201 with every field and a masked token; read, patch
/// (token included) and delete behave; a deleted webhook is 404.
#[tokio::test]
async fn webhook_crud() {
    let app = TestApp::spawn().await;
    let created = app.post("/v1/webhooks", &webhook("crm", "https://example.com/hooks", &["license.created"])).await;
    assert_eq!(created.status, 201);
    let w = &created.body;
    for field in ["id", "name", "url", "events", "active", "status", "createdAt", "updatedAt"] {
        assert!(!w[field].is_null(), "field {field} in {w}");
    }
    assert_eq!(w["status"], "healthy");
    assert_eq!(w["tenant"], "default");
    assert_eq!(w["token"], "****cdef", "the token is only ever shown masked");
    let id = w["id"].as_str().expect("id");

    let read = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["name"], "crm");

    let patched = app
        .patch(
            &format!("/v1/webhooks/{id}"),
            &json!({"name": "crm-2", "events": ["license.*", "activation.created"], "active": false, "token": "a-brand-new-token-9876"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["name"], "crm-2");
    assert_eq!(patched.body["events"], json!(["license.*", "activation.created"]));
    assert_eq!(patched.body["active"], false);
    assert_eq!(patched.body["token"], "****9876");
    assert_eq!(patched.body["url"], "https://example.com/hooks", "fields not in the patch are kept");

    assert_eq!(app.delete(&format!("/v1/webhooks/{id}")).await.status, 204);
    let gone = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.content_type, "application/problem+json");
    assert_eq!(gone.body["code"], "not_found");
    assert_eq!(app.delete(&format!("/v1/webhooks/{id}")).await.status, 404);
    app.stop().await;
}

/// Invalid input is refused with problem+json, a stable code and the field's
/// name; nothing is created.
#[tokio::test]
async fn webhook_validation() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"url": "ftp://example.com"}), "url"),
        (json!({"url": "/relative"}), "url"),
        (json!({"token": "short"}), "token"),
        (json!({"events": []}), "events"),
        (json!({"events": ["license..created"]}), "events"),
        (json!({"events": ["lic*"]}), "events"),
        (json!({"name": "   "}), "name"),
    ];
    for (change, field) in cases {
        let mut body = webhook("v", "https://example.com/h", &["license.created"]);
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let response = app.post("/v1/webhooks", &body).await;
        assert_eq!(response.status, 422, "{body} → {:?}", response.body);
        assert_eq!(response.content_type, "application/problem+json");
        assert_eq!(response.body["code"], "invalid_field");
        assert_eq!(response.body["field"], field);
        assert!(response.body["detail"].as_str().expect("detail").starts_with(field));
    }

    let unknown = app.post("/v1/webhooks", &json!({"name": "x", "url": "https://e.com", "token": "0123456789abcdef", "events": ["*"], "colour": "red"})).await;
    assert_eq!(unknown.status, 422);
    assert_eq!(unknown.body["code"], "invalid_body");
    assert!(unknown.body["detail"].as_str().expect("detail").contains("colour"));

    let missing = app.post("/v1/webhooks", &json!({"name": "x"})).await;
    assert_eq!(missing.status, 422);
    assert!(missing.body["detail"].as_str().expect("detail").contains("url"));

    let malformed = app.post_raw("/v1/webhooks", "application/json", "{not json").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["code"], "malformed_json");
    assert_eq!(malformed.content_type, "application/problem+json");

    let listed = app.get("/v1/webhooks").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was created");
    app.stop().await;
}

/// Event types are validated (camelCase and dashes allowed); data must be an
/// object or array; a bad `triggeredAt` is refused.
#[tokio::test]
async fn event_validation() {
    let app = TestApp::spawn().await;
    for event in ["license.expiresAt.updated", "license.expiring-soon", "activation.created"] {
        app.post_event(&json!({"event": event, "data": {}})).await;
    }
    let cases = [
        (json!({"event": "license..x", "data": {}}), "event"),
        (json!({"event": "license.*", "data": {}}), "event"),
        (json!({"event": "license.created", "data": 5}), "data"),
        (json!({"event": "license.created", "data": {}, "triggeredAt": "yesterday"}), "triggeredAt"),
        (json!({"event": "license.created", "data": {}, "id": "has spaces"}), "id"),
    ];
    for (body, field) in cases {
        let response = app.post("/v1/events", &body).await;
        assert_eq!(response.status, 422, "{body}");
        assert_eq!(response.body["field"], field, "{body}");
    }
    app.stop().await;
}

/// Lists page with a cursor: every webhook once, in creation order.
#[tokio::test]
async fn webhooks_are_paginated() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_webhook(&webhook(&format!("w{i}"), "https://example.com/h", &["*"])).await);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/webhooks?limit=2".to_owned();
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, 200);
        for w in page.body["data"].as_array().expect("data") {
            seen.push(w["id"].as_str().expect("id").to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/webhooks?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(app.get("/v1/webhooks?limit=0").await.status, 422);
    assert_eq!(app.get("/v1/webhooks?cursor=nope").await.status, 422);
    app.stop().await;
}

/// Health endpoints answer; an unknown route is a problem+json 404.
#[tokio::test]
async fn health_and_unknown_routes() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status, 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, json!({"database": true, "broker": true}));
    let missing = app.get("/v2/nothing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type, "application/problem+json");
    let worker = reqwest::get(format!("http://{}/healthz", app.worker_addr)).await.expect("worker health");
    assert_eq!(worker.status(), 200);
    app.stop().await;
}

/// Every `/v1` route refuses a request without credentials or with a wrong
/// key, whatever the method, before looking at the request any further, and
/// says nothing of why.
#[tokio::test]
async fn every_v1_route_needs_credentials() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let id = app.create_webhook(&webhook("w", "https://example.com/h", &["*"])).await;
    let routes = [
        (Method::GET, "/v1/webhooks".to_owned()),
        (Method::POST, "/v1/webhooks".to_owned()),
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::PATCH, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
        (Method::POST, "/v1/events".to_owned()),
        (Method::GET, "/v1/deliveries".to_owned()),
        (Method::GET, format!("/v1/deliveries/{id}")),
        (Method::GET, "/v1/tenants".to_owned()),
        (Method::DELETE, "/v1/tenants/default".to_owned()),
        (Method::POST, "/v1/tenants/default/tokens".to_owned()),
        (Method::POST, format!("/v1/webhooks/{id}/resume")),
        (Method::POST, format!("/v1/webhooks/{id}/recover")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-token")),
        (Method::POST, format!("/v1/deliveries/{id}/retry")),
    ];
    for (method, path) in routes {
        for bearer in [None, Some("wrong-key-0123456789"), Some(&ADMIN_KEY[1..])] {
            let response = app.call(method.clone(), &path, Some(&json!({})), bearer).await;
            assert_eq!(response.status, 401, "{method} {path} {bearer:?}");
            assert_eq!(response.body["code"], "unauthorized");
            assert_eq!(response.content_type, "application/problem+json");
        }
    }
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).await.status, 200, "still there");
    app.stop().await;
}

/// The OpenAPI document is served openly, and every operation it lists is a
/// real route (the router answers it, neither 405 nor "route not found").
#[tokio::test]
async fn openapi_document_matches_the_router() {
    let app = TestApp::spawn().await;
    let doc = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().expect("path item").iter().filter(|(k, _)| *k != "parameters") {
            let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000").replace("{tenant}", "t1");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let response = app.call(method.clone(), &concrete, Some(&json!({})), Some(ADMIN_KEY)).await;
            assert_ne!(response.status, 405, "{method} {path}");
            assert_ne!(response.body["detail"], "route not found", "{method} {path}");
            operations += 1;
        }
    }
    assert_eq!(operations, 19, "every operation is listed");
    app.stop().await;
}

#[path = "openapi_check.rs"]
mod openapi_check;

/// The API's answers are what `/openapi.json` says they are: each main
/// operation, and its errors, checked against the served document (closed:
/// a field the document does not list fails), so a DTO that drifts from its
/// schema fails here.
#[tokio::test]
async fn answers_match_the_openapi_document() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let receiver = hookline_e2e::Receiver::start().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await.body;
    let checker = openapi_check::Checker::new(&doc);
    let check = |operation: &str, response: &hookline_e2e::Response, status: u16| {
        assert_eq!(response.status, status, "{operation}: {}", response.body);
        let errors = checker.answer(operation, response.status, &response.content_type, &response.body);
        assert!(errors.is_empty(), "{operation} {}: {errors:#?}\n{}", response.status, response.body);
    };

    let created =
        app.post("/v1/webhooks", &json!({"name": "drift", "url": receiver.url(), "events": ["license.*"]})).await;
    check("createWebhook", &created, 201);
    let id = created.body["id"].as_str().expect("an id").to_owned();
    check("getWebhook", &app.get(&format!("/v1/webhooks/{id}")).await, 200);
    check("listWebhooks", &app.get("/v1/webhooks?limit=1").await, 200);
    check("updateWebhook", &app.patch(&format!("/v1/webhooks/{id}"), &json!({"name": "drift-2"})).await, 200);
    check("rotateWebhookToken", &app.post(&format!("/v1/webhooks/{id}/rotate-token"), &json!({})).await, 200);
    check("resumeWebhook", &app.post(&format!("/v1/webhooks/{id}/resume"), &json!({})).await, 200);
    let ingested = app.post("/v1/events", &json!({"event": "license.created", "data": {"key": "K-1"}})).await;
    check("ingestEvent", &ingested, 202);

    let delivered = app.settled_deliveries(&id, 1).await;
    let delivery = delivered[0]["id"].as_str().expect("a delivery id").to_owned();
    check("listDeliveries", &app.get("/v1/deliveries?state=delivered").await, 200);
    check("listWebhookDeliveries", &app.get(&format!("/v1/webhooks/{id}/deliveries")).await, 200);
    let detail = app.get(&format!("/v1/deliveries/{delivery}")).await;
    check("getDelivery", &detail, 200);
    assert!(!detail.body["attempts"].as_array().expect("attempts").is_empty(), "an attempt is shown");
    check("retryDelivery", &app.post(&format!("/v1/deliveries/{delivery}/retry"), &json!({})).await, 202);
    let window = json!({"since": "2020-01-01T00:00:00Z", "dryRun": true});
    check("recoverWebhook", &app.post(&format!("/v1/webhooks/{id}/recover"), &window).await, 200);
    check("listTenants", &app.get("/v1/tenants").await, 200);
    check("mintTenantToken", &app.post("/v1/tenants/t1/tokens", &json!({"ttlSeconds": 60})).await, 201);

    // Errors: problem+json with a listed code, at the statuses documented.
    let missing = "/v1/webhooks/00000000-0000-0000-0000-000000000000";
    check("getWebhook", &app.get(missing).await, 404);
    check("createWebhook", &app.post("/v1/webhooks", &json!({"name": "x"})).await, 422);
    check("createWebhook", &app.post_raw("/v1/webhooks", "application/json", "{not json").await, 400);
    check("createWebhook", &app.post_raw("/v1/webhooks", "text/plain", "{}").await, 415);
    check("listWebhooks", &app.get("/v1/webhooks?limit=0").await, 422);
    check("listDeliveries", &app.get("/v1/deliveries?colour=red").await, 400);
    check("ingestEvent", &app.post("/v1/events", &json!({"event": "a..b", "data": {}})).await, 422);
    check("listWebhooks", &app.call(Method::GET, "/v1/webhooks", None, None).await, 401);
    check("deleteWebhook", &app.delete(&format!("/v1/webhooks/{id}")).await, 204);
    check("readyz", &app.get("/readyz").await, 200);
    check("healthz", &app.get("/healthz").await, 200);
    app.stop().await;
}
