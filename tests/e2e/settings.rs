//! Per-webhook delivery settings: extra headers (secret ones write-only and
//! sealed at rest) and their validation.

use std::time::Duration;

use hookline_e2e::{Receiver, TestApp, WAIT, webhook};
use serde_json::json;
use tokio::time::Instant;

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
/// injection) and more than 20 are refused with a field error; keeping a
/// value the webhook does not have is a conflict; nothing is changed.
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
        json!({"headers": (0..21).map(|i| json!({"name": format!("X-{i}"), "value": "v"})).collect::<Vec<_>>()}),
    ];
    for case in &cases {
        let answer = app.patch(&format!("/v1/webhooks/{id}"), case).await;
        assert_eq!(answer.status, 422, "{case}: {:?}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.body["code"], "invalid_field", "{case}");
        assert_eq!(answer.body["field"], "headers", "{case}");
    }
    // Keeping the value of a header the webhook does not have: a conflict
    // with its state (the body itself is valid).
    let keep = app.patch(&format!("/v1/webhooks/{id}"), &json!({"headers": [{"name": "X-New", "secret": true}]})).await;
    assert_eq!((keep.status, keep.body["code"].clone()), (409, json!("header_not_set")), "{:?}", keep.body);
    let mut create = webhook("crm2", &receiver.url(), &["*"]);
    create["headers"] = json!([{"name": "Webhook-Timestamp", "value": "0"}]);
    assert_eq!(app.post("/v1/webhooks", &create).await.status, 422);
    assert_eq!(app.webhook(&id).await["headers"], json!([]));
    app.stop().await;
}

/// A number from the environment (for a bigger run by hand), else `default`.
fn scale(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Posts `n` events of `event_type` (32 at a time); all must be accepted.
async fn burst(app: &TestApp, event_type: &str, n: usize) {
    let http = reqwest::Client::new();
    let posts = (0..n).map(|i| {
        let request = http
            .post(app.url("/v1/events"))
            .bearer_auth(hookline_e2e::ADMIN_KEY)
            .json(&json!({"event": event_type, "data": {"n": i}}));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses: Vec<_> = futures_util::StreamExt::collect(futures_util::StreamExt::buffer_unordered(
        futures_util::stream::iter(posts),
        32,
    ))
    .await;
    assert!(statuses.iter().all(|s| matches!(s, Ok(202))), "every event accepted");
}

/// Waits until `receiver` has `n` requests or `within` ran out; how long
/// since `since` it took.
async fn arrived(receiver: &Receiver, n: usize, since: Instant, within: Duration) -> Duration {
    let deadline = Instant::now() + within;
    while receiver.count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.elapsed()
}

/// Requests received in each calendar second (Unix).
fn per_second(got: &[hookline_testkit::Received]) -> std::collections::BTreeMap<i64, usize> {
    let mut per_second = std::collections::BTreeMap::new();
    for request in got {
        *per_second.entry(request.at.unix_timestamp()).or_default() += 1;
    }
    per_second
}

/// Deliveries waiting for a rate limit are rows in Postgres, not messages:
/// with every worker stopped mid-queue they are still queued, and a worker
/// started afterwards delivers each of them once, at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_queue_outlives_the_workers() {
    let mut app = TestApp::spawn().await;
    let limited = Receiver::start().await;
    let mut body = webhook("limited", &limited.url(), &["license.*"]);
    body["rateLimit"] = json!(5);
    app.create_webhook(&body).await;
    let events = 40;
    burst(&app, "license.created", events).await;
    arrived(&limited, 3, Instant::now(), WAIT).await;
    app.stop_workers().await;
    let before = limited.count();
    let queued: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM deliveries WHERE rate_queued AND next_attempt_at IS NULL", &[])
        .await
        .expect("count")
        .get(0);
    assert!(queued >= 20, "most of the burst waits queued in Postgres: {queued} queued, {before} delivered");

    app.add_worker().await;
    let started = Instant::now();
    let took = arrived(&limited, events, started, WAIT * 4).await;
    let got = limited.requests();
    let ids: std::collections::HashSet<_> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!(got.len(), events, "every delivery arrives after {took:?}");
    assert_eq!(ids.len(), events, "each once");
    let per_second = per_second(&got);
    assert!(per_second.values().all(|n| *n <= 5), "at most 5 in any second: {per_second:?}");
    app.stop().await;
}

/// A rate limit holds across two workers: a burst to a limited webhook
/// arrives evenly, no calendar second seeing more than the limit, every
/// delivery once. Beside it, the tenant's unlimited webhook on the same
/// events and another on other events get theirs; their times are printed
/// (figures for the docs, not asserted) beside three runs first: the
/// other's burst alone; both bursts with the limited webhook already there
/// but limited far above the burst (the same path for its events, nothing
/// waits); and both with it limited to 1/s (every delivery of it waits while
/// the others' go: what waiting costs them).
/// `HOOKLINE_RATE_TEST_LIMIT` / `HOOKLINE_RATE_TEST_EVENTS` (default 20 and
/// 200) scale it: `50` and `5000` is the measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limit_holds_across_two_workers() {
    let limit = scale("HOOKLINE_RATE_TEST_LIMIT", 20);
    let events = scale("HOOKLINE_RATE_TEST_EVENTS", 200);
    let mut app = TestApp::spawn().await;
    app.add_worker().await;
    let unlimited = Receiver::start().await;
    let limited = Receiver::start().await;
    let free = Receiver::start().await;
    let other = Receiver::start().await;
    app.create_webhook(&webhook("free", &free.url(), &["license.*"])).await;
    app.create_webhook(&webhook("other", &other.url(), &["activation.*"])).await;
    let mut body = webhook("limited", &unlimited.url(), &["license.*"]);
    body["rateLimit"] = json!(10_000);
    let limited_id = app.create_webhook(&body).await;

    // Baselines: the other webhook's burst alone, then both bursts with the
    // limit far above them.
    let started = Instant::now();
    burst(&app, "activation.created", events).await;
    let alone = arrived(&other, events, started, WAIT * 6).await;
    assert_eq!(other.count(), events);
    let started = Instant::now();
    tokio::join!(burst(&app, "license.created", events), burst(&app, "activation.created", events));
    let (other_unlimited, free_unlimited) =
        tokio::join!(arrived(&other, 2 * events, started, WAIT * 6), arrived(&free, events, started, WAIT * 6));
    arrived(&unlimited, events, started, WAIT * 6).await;
    assert_eq!((other.count(), free.count(), unlimited.count()), (2 * events, events, events));

    // Limited to 1/s, the same bursts: the limited webhook's deliveries
    // wait while the others' go (what waiting alone costs them); then the
    // limit is raised again and the queue drains at once.
    let changed = app.patch(&format!("/v1/webhooks/{limited_id}"), &json!({"rateLimit": 1})).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let started = Instant::now();
    tokio::join!(burst(&app, "license.created", events), burst(&app, "activation.created", events));
    let (other_held, free_held) =
        tokio::join!(arrived(&other, 3 * events, started, WAIT * 6), arrived(&free, 2 * events, started, WAIT * 6));
    let changed = app.patch(&format!("/v1/webhooks/{limited_id}"), &json!({"rateLimit": 10_000})).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    // Not measured: the queue drains through the deliveries queue, the
    // webhook's in-flight cap deferring most of it.
    let drained = arrived(&unlimited, 2 * events, Instant::now(), WAIT * 10).await;
    assert_eq!(
        (other.count(), free.count(), unlimited.count()),
        (3 * events, 2 * events, 2 * events),
        "the queue drained in {drained:?}"
    );

    // Now limited (to a receiver of its own), the same bursts again.
    let changed =
        app.patch(&format!("/v1/webhooks/{limited_id}"), &json!({"rateLimit": limit, "url": limited.url()})).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(app.webhook(&limited_id).await["rateLimit"], json!(limit));
    let started = Instant::now();
    tokio::join!(burst(&app, "license.created", events), burst(&app, "activation.created", events));
    let posted = started.elapsed();
    let (other_took, free_took) =
        tokio::join!(arrived(&other, 4 * events, started, WAIT * 6), arrived(&free, 3 * events, started, WAIT * 6));
    let expected = Duration::from_secs_f64(events as f64 / limit as f64);
    let limited_took = arrived(&limited, events, started, expected * 2 + WAIT).await;
    let got = limited.requests();
    let ids: std::collections::HashSet<_> = got.iter().filter_map(|r| r.header("webhook-id")).collect();

    let per_second = per_second(&got);
    let mut counts: Vec<usize> = per_second.values().copied().collect();
    counts.sort_unstable();
    // The first and last seconds are partial.
    let full: Vec<usize> = counts.iter().copied().skip(1).take(counts.len().saturating_sub(2)).collect();
    let busiest = counts.last().copied().unwrap_or(0);
    eprintln!(
        "rate limit {limit}/s, {events} events, posted in {posted:?}. Limited webhook: {} in {limited_took:?}, \
         per second min {} / median {} / max {busiest} over {} full seconds. Unlimited webhook on the same \
         events: {free_took:?} beside the limited burst, {free_unlimited:?} with the limit above the burst, \
         {free_held:?} with every limited delivery waiting. Other webhook's {events}: {alone:?} alone, \
         {other_took:?} beside the limited burst, {other_unlimited:?} with the limit above the burst, \
         {other_held:?} with every limited delivery waiting",
        got.len(),
        full.first().unwrap_or(&0),
        full.get(full.len() / 2).unwrap_or(&0),
        full.len(),
    );
    assert_eq!(other.count(), 4 * events, "the other webhook gets every delivery");
    assert_eq!(free.count(), 3 * events, "the unlimited webhook gets every delivery");
    assert_eq!(got.len(), events, "every delivery arrives; per second: {per_second:?}");
    assert_eq!(ids.len(), events, "each delivery once");
    assert!(busiest <= limit, "at most {limit} in any second, got {busiest}: {per_second:?}");
    // The limit is a pace, not a cap reached then idled: it took about as
    // long as the limit says.
    assert!(limited_took >= expected.mul_f64(0.9), "{limited_took:?} for {events} at {limit}/s");
    app.stop().await;
}
