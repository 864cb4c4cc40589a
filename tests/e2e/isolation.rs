//! One bad receiver or one noisy tenant hurts no one else: odd bytes in
//! answers, exactly-N suspension under concurrency, no request after a
//! `410`, and hostile query values on every route.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use hookline_core::RetrySchedule;
use hookline_e2e::{Receiver, TestApp, WAIT, eventually, is_sentinel, sentinel_webhook, webhook};
use serde_json::{Value, json};

/// A receiver that answers every request with a fixed status and body,
/// counting requests per `Webhook-Id`.
struct Answering {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Answering {
    async fn start(status: u16, body: &'static [u8]) -> Self {
        let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let counted = seen.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let counted = counted.clone();
            async move {
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                *counted.lock().expect("not poisoned").entry(id).or_default() += 1;
                (axum::http::StatusCode::from_u16(status).expect("a status"), body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        self.seen.lock().expect("not poisoned").clone()
    }

    fn total(&self) -> usize {
        self.counts().values().sum()
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn with_tenant(mut body: Value, tenant: &str) -> Value {
    body["tenant"] = json!(tenant);
    body
}

/// A receiver answering `200` with a NUL in its body: each delivery is
/// requested once and recorded (the NUL shown as U+FFFD); another tenant's
/// deliveries, group-committed beside them, are requested once each. A
/// receiver answering `500` with a NUL is counted like any failure and
/// suspended after exactly 50.
#[tokio::test]
async fn a_nul_in_an_answer_changes_nothing_for_anyone() {
    let app = TestApp::spawn().await;
    let nul_ok = Answering::start(200, b"ok\0ok").await;
    let nul_fail = Answering::start(500, b"no\0pe").await;
    let other = Receiver::start().await;
    let a = app.create_webhook(&with_tenant(webhook("nul", &nul_ok.url(), &["a.*"]), "acme")).await;
    let failing = app.create_webhook(&with_tenant(webhook("nul-fail", &nul_fail.url(), &["f.*"]), "acme")).await;
    let b = app.create_webhook(&with_tenant(webhook("other", &other.url(), &["*"]), "globex")).await;
    app.create_webhook(&sentinel_webhook(&other.url_for("/sentinel"), Some("acme"))).await;

    let mut posts = Vec::new();
    for i in 0..10 {
        posts.push(with_tenant(json!({"event": "a.thing", "data": {"i": i}}), "acme"));
    }
    for i in 0..100 {
        posts.push(with_tenant(json!({"event": "b.thing", "data": {"i": i}}), "globex"));
    }
    futures_util::future::join_all(posts.iter().map(|p| app.post_event(p))).await;
    let delivered = app.settled_deliveries(&a, 10).await;
    assert!(delivered.iter().all(|d| d["state"] == "delivered"), "{delivered:?}");
    let excerpt = delivered[0]["attempts"][0]["responseExcerpt"].as_str().expect("an excerpt");
    assert_eq!(excerpt, "ok\u{FFFD}ok");
    let b_delivered = eventually(WAIT, || async {
        let list = app.deliveries_all(&b).await;
        let done = list.iter().filter(|d| d["state"] == "delivered").count();
        if done == 100 { Ok(list) } else { Err(format!("{done} of 100")) }
    })
    .await;
    // Every event above went through the dispatch queue before the
    // sentinel (carried by globex's `*` webhook): a second request for any
    // of them would come from a copy handled before it.
    app.pass_sentinel(&other, Some("globex")).await;
    assert!(nul_ok.counts().values().all(|&n| n == 1), "each NUL delivery requested once: {:?}", nul_ok.counts());
    assert_eq!(nul_ok.total(), 10);
    let per_id =
        other.requests().iter().filter(|r| !is_sentinel(r)).fold(BTreeMap::<String, usize>::new(), |mut m, r| {
            *m.entry(r.header("webhook-id").unwrap_or_default().to_owned()).or_default() += 1;
            m
        });
    assert_eq!(per_id.len(), b_delivered.len());
    assert!(per_id.values().all(|&n| n == 1), "the other tenant's deliveries were requested once each");

    for i in 0..60 {
        app.post_event(&with_tenant(json!({"event": "f.thing", "data": {"i": i}}), "acme")).await;
    }
    eventually(WAIT, || async {
        let w = app.webhook(&failing).await;
        if w["status"] == "suspended" { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    let settled = app.settled_deliveries(&failing, 60).await;
    // No retries are configured: a request after the suspension could only
    // come from a message still queued (an event, or a delivery handed to
    // the deliveries queue while the webhook was at its cap). The sentinel,
    // in the same tenant, goes through both queues behind them.
    app.pass_sentinel(&other, Some("acme")).await;
    assert_eq!(nul_fail.total(), 50, "suspended after exactly 50 failed requests");
    assert_eq!(app.webhook(&failing).await["consecutiveFailures"], 50);
    let held = settled.iter().filter(|d| d["state"] == "suspended" && d["attemptCount"] == 0).count();
    assert_eq!(held, 10, "the rest are held, not sent");
    app.stop().await;
}

/// Two workers, 40 events to a webhook that always answers `500`, a retry
/// schedule of 50 ms steps: exactly 50 requests reach it before it settles
/// suspended (an unhealthy webhook gets one request at a time).
#[tokio::test]
async fn suspension_after_exactly_fifty_under_two_workers() {
    let mut app = TestApp::spawn_with(|_, worker| {
        worker.retry_schedule = RetrySchedule::parse(&vec!["50ms"; 40].join(",")).expect("valid");
    })
    .await;
    app.add_worker().await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let id = app.create_webhook(&webhook("down", &receiver.url(), &["*"])).await;
    let bodies: Vec<Value> = (0..40).map(|i| json!({"event": "license.created", "data": {"i": i}})).collect();
    futures_util::future::join_all(bodies.iter().map(|b| app.post_event(b))).await;
    let settled = app.settled_deliveries(&id, 40).await;
    assert!(settled.iter().all(|d| d["state"] == "suspended"), "{settled:?}");
    // A time-based wait, not a sentinel: retries scheduled before the
    // suspension (50 ms, plus jitter and the tier hops) may still be in the
    // delay tiers, where no sentinel can overtake them; they come due well
    // within this second and must be fenced, not sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = app.webhook(&id).await;
    assert_eq!((w["status"].clone(), w["consecutiveFailures"].clone()), (json!("suspended"), json!(50)));
    assert_eq!(receiver.requests().len(), 50, "exactly the threshold of requests");
    app.stop().await;
}

/// Deliveries waiting for their retries when the receiver starts answering
/// `410 Gone`: one request gets the `410`, the webhook is suspended, and no
/// other request is made.
#[tokio::test]
async fn nothing_is_sent_after_a_410() {
    let app =
        TestApp::spawn_with(|_, worker| worker.retry_schedule = RetrySchedule::parse("1s,1s").expect("valid")).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let id = app.create_webhook(&webhook("going", &receiver.url(), &["*"])).await;
    let bodies: Vec<Value> = (0..10).map(|i| json!({"event": "license.created", "data": {"i": i}})).collect();
    futures_util::future::join_all(bodies.iter().map(|b| app.post_event(b))).await;
    let before = receiver.wait_for(10, WAIT).await.len();
    receiver.set_status(410);
    eventually(WAIT, || async {
        let w = app.webhook(&id).await;
        if w["status"] == "suspended" { Ok(()) } else { Err(format!("{w}")) }
    })
    .await;
    let settled = app.settled_deliveries(&id, 10).await;
    // A time-based wait, not a sentinel: the retries scheduled by the 500s
    // (1 s each, up to 20 % jitter) wait in the delay tiers, where no
    // sentinel can overtake them; after 2 s every one has come due and must
    // have been fenced by the suspension, not sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Requests answered 500 may still arrive between the count above and
    // the switch to 410 (retries, deliveries handed to the queue): what
    // must hold is that exactly one request got the 410, and it was the last.
    let got = receiver.requests();
    assert!(got.len() > before, "a request got the 410");
    let gone: Vec<usize> = got.iter().enumerate().filter(|(_, r)| r.status == 410).map(|(i, _)| i).collect();
    assert_eq!(gone, [got.len() - 1], "one request got the 410, none after it");
    assert_eq!(settled.iter().filter(|d| d["state"] == "suspended").count(), 10);
    app.stop().await;
}

/// Extreme and malformed values in every query parameter and in the
/// recover body never crash a handler: each answer is a 2xx or a 4xx
/// problem, never a 5xx or a dropped connection.
#[tokio::test]
async fn hostile_values_get_clear_errors() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let id = app.create_webhook(&webhook("w", &receiver.url(), &["*"])).await;
    let long = "x".repeat(10_000);
    let values = [
        "%00",
        "a%00b",
        "",
        "-1",
        "0",
        "99999999999999999999",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "%F0%9F%92%A5",
        "%FF%FE",
        "..",
        "*",
        long.as_str(),
    ];
    let routes = [
        ("/v1/webhooks".to_owned(), &["limit", "cursor", "tenant"][..]),
        (
            "/v1/deliveries".to_owned(),
            &["limit", "cursor", "tenant", "webhookId", "state", "event", "since", "until"][..],
        ),
        (
            format!("/v1/webhooks/{id}/deliveries"),
            &["limit", "cursor", "tenant", "webhookId", "state", "event", "since", "until"][..],
        ),
        ("/v1/tenants".to_owned(), &["limit", "cursor", "tenant"][..]),
    ];
    for (path, params) in &routes {
        for param in *params {
            for value in values {
                let response = app.get(&format!("{path}?{param}={value}")).await;
                assert!(
                    (200..500).contains(&response.status),
                    "GET {path}?{param}={} answered {}: {:?}",
                    &value[..value.len().min(40)],
                    response.status,
                    response.body
                );
                if response.status >= 400 {
                    assert_eq!(response.content_type, "application/problem+json", "{path}?{param}");
                }
            }
        }
    }
    for (since, until) in [
        ("2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:58Z", "9999-12-31T23:59:59Z"),
        ("2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
    ] {
        for dry_run in [true, false] {
            let response = app
                .post(
                    &format!("/v1/webhooks/{id}/recover"),
                    &json!({"since": since, "until": until, "dryRun": dry_run}),
                )
                .await;
            assert!((200..500).contains(&response.status), "recover {since}..{until}: {response:?}");
        }
    }
    let response = app.get(&format!("/v1/deliveries?event=%00&webhookId={id}")).await;
    assert_eq!(response.status, 422);
    assert_eq!(response.body["code"], "invalid_field", "{:?}", response.body);
    app.stop().await;
}

/// Tenant A's six webhooks answer after 3 s while it sends 20 events/s;
/// tenant B's one fast webhook gets 10 events/s beside it: B's ingest →
/// delivery p99 stays under a second (A holds at most its share of the
/// worker's attempts, and its excess waits in the broker).
#[tokio::test]
async fn a_slow_tenant_does_not_delay_another() {
    let app = TestApp::spawn_with(|_, worker| {
        worker.request_timeout = Duration::from_secs(10);
    })
    .await;
    let slow = Receiver::start().await;
    slow.set_delay(Duration::from_secs(3));
    let fast = Receiver::start().await;
    for i in 0..6 {
        app.create_webhook(&with_tenant(webhook(&format!("slow-{i}"), &slow.url(), &["*"]), "acme")).await;
    }
    let b = app.create_webhook(&with_tenant(webhook("fast", &fast.url(), &["*"]), "globex")).await;
    let started = std::time::Instant::now();
    let a_load = async {
        for i in 0..100 {
            app.post_event(&with_tenant(json!({"event": "a.thing", "data": {"i": i}}), "acme")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let b_load = async {
        let mut sent = BTreeMap::new();
        tokio::time::sleep(Duration::from_secs(1)).await;
        for i in 0..40u64 {
            sent.insert(i, time::OffsetDateTime::now_utc());
            app.post_event(&with_tenant(json!({"event": "b.thing", "data": {"i": i}}), "globex")).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    };
    let ((), sent) = tokio::join!(a_load, b_load);
    let got = fast.wait_for(40, WAIT).await;
    let mut latencies: Vec<f64> = got
        .iter()
        .map(|r| {
            let i = serde_json::from_slice::<Value>(&r.body).expect("JSON")["data"]["i"].as_u64().expect("i");
            (r.at - sent[&i]).as_seconds_f64()
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(p99 < 1.0, "B's p99 beside the slow tenant: {p99:.3} s ({latencies:?})");
    assert!(slow.requests().len() < 600, "A's slow endpoints did not get everything at once");
    assert_eq!(app.settled_deliveries(&b, 40).await.len(), 40);
    assert!(started.elapsed() < Duration::from_secs(60));
    app.stop().await;
}
