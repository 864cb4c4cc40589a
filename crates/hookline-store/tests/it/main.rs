//! The store against a real Postgres, one database per test.

use hookline_core::{
    AttemptId, Attempted, DeliveryId, DeliveryState, EventFilters, EventId, EventType, Fence, RetrySchedule,
    SigningToken, TenantId, Trigger, WebhookId, WebhookName, WebhookUrl, classify_status, decide,
    fence::{truncate_ms, unix_ms},
};
use hookline_store::{
    Claim, Created, Decided, DeliveryFilter, Dispatch, NewAttempt, NewEvent, NewWebhook, PgSettings, RecordedEvent,
    RecordedFailure, Store,
};

mod early;
mod headers;
mod health_change;
mod rate;
mod recovery;
mod retention;
mod schedule;
use hookline_testkit::TestDb;
use time::OffsetDateTime;
use uuid::Uuid;

async fn store(db: &TestDb) -> Store {
    Store::connect(&PgSettings { url: db.url().to_owned(), pool_size: 4, ..Default::default() })
        .await
        .expect("store connects and migrates")
}

async fn webhook(store: &Store, tenant: &str, events: &[&str], active: bool) -> WebhookId {
    let new = NewWebhook {
        scheme: Default::default(),
        tenant: TenantId::parse(tenant).expect("tenant"),
        name: WebhookName::parse("w").expect("name"),
        url: WebhookUrl::parse("https://example.com/h").expect("url"),
        token: SigningToken::parse("0123456789abcdef").expect("token"),
        events: EventFilters::parse(events).expect("events"),
        active,
        headers: Default::default(),
        rate_limit: None,
        recovery: Default::default(),
    };
    let id = WebhookId::from_uuid(Uuid::now_v7());
    match store.create_webhook(id, &new, OffsetDateTime::now_utc(), 100).await.expect("create") {
        Created::Webhook(w) => w.id,
        Created::LimitReached => panic!("below the limit"),
    }
}

fn event(tenant: &str, id: &str, event_type: &str) -> NewEvent {
    NewEvent {
        tenant: TenantId::parse(tenant).expect("tenant"),
        id: EventId::parse(id).expect("id"),
        event_type: EventType::parse(event_type).expect("type"),
        body: br#"{"event":"x"}"#.to_vec().into(),
        triggered_at: OffsetDateTime::now_utc(),
        ingested_at: None,
        accepted_at: OffsetDateTime::now_utc(),
    }
}

const LEASE: time::Duration = time::Duration::seconds(30);

fn new_id() -> DeliveryId {
    DeliveryId::from_uuid(Uuid::now_v7())
}

/// Migrations run on an empty database, and running them again (as every
/// service does at start, concurrently) is harmless.
#[tokio::test]
async fn migrations_run_from_empty_and_concurrently() {
    let db = TestDb::new().await;
    let settings = PgSettings { url: db.url().to_owned(), pool_size: 2, ..Default::default() };
    let (a, b, c) = tokio::join!(Store::connect(&settings), Store::connect(&settings), Store::connect(&settings));
    a.expect("first");
    b.expect("second");
    c.expect("third");
    let client = db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 'attempts'", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(n, 1);
}

/// A missing database is created at start, also when several services
/// start at the same moment and race to create it.
#[tokio::test]
async fn missing_database_is_created() {
    let db = TestDb::new().await;
    let settings = PgSettings { url: format!("{}_created", db.url()), pool_size: 1, ..Default::default() };
    let (a, b, c) = tokio::join!(Store::connect(&settings), Store::connect(&settings), Store::connect(&settings));
    for store in [a, b, c] {
        store.expect("creates the database or finds it created").ping().await.expect("usable");
    }
    let admin = db.client().await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}_created WITH (FORCE)", db.name())).await.expect("cleanup");
}

/// Fan-out creates one delivery per matching active webhook of the event's
/// tenant, and a repeated event id creates nothing more: a redelivery
/// before the event is marked dispatched schedules its pending delivery
/// once (a message for it may then claim it), a copy after is a duplicate.
#[tokio::test]
async fn record_events_fans_out_once() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let a = webhook(&store, "default", &["license.*"], true).await;
    let _inactive = webhook(&store, "default", &["*"], false).await;
    let _other_type = webhook(&store, "default", &["activation.created"], true).await;
    let _other_tenant = webhook(&store, "acme", &["*"], true).await;
    let e = event("default", "e1", "license.created");
    let now = OffsetDateTime::now_utc();

    let recorded = store.record_events(std::slice::from_ref(&e), now, LEASE).await.expect("record");
    let [RecordedEvent::Fresh(fresh)] = recorded.as_slice() else { panic!("fresh: {recorded:?}") };
    assert_eq!(fresh.len(), 1);
    assert_eq!((fresh[0].id, fresh[0].webhook_id), (e.delivery_id(a), a), "derived id, matching webhook only");

    let later = now + LEASE + time::Duration::seconds(1);
    let again = store.record_events(std::slice::from_ref(&e), later, LEASE).await.expect("again");
    let [RecordedEvent::Seen(Dispatch::Publish(steps))] = again.as_slice() else { panic!("seen: {again:?}") };
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].at, truncate_ms(later), "the lease is over: due now, in whole milliseconds");
    let Claim::Claimed(job) = store
        .claim(steps[0].id, Fence::Due(unix_ms(steps[0].at)), Trigger::Scheduled, later, LEASE)
        .await
        .expect("claim")
    else {
        panic!("its message may claim it");
    };
    assert_eq!(job.webhook_id, a);
    assert_eq!(job.state, DeliveryState::Pending);

    store.mark_dispatched(&[e.key()], later).await.expect("mark");
    let dup = store.record_events(std::slice::from_ref(&e), later, LEASE).await.expect("dup");
    assert!(matches!(dup.as_slice(), [RecordedEvent::Seen(Dispatch::Duplicate)]), "{dup:?}");
    assert_eq!(
        store
            .list_deliveries(&DeliveryFilter { webhook: Some(a), ..Default::default() }, None, 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

/// A redelivered event whose first copy is still attempting (its pending
/// deliveries have no due time) gives each one the end of the dispatch
/// lease as due time, once: the redelivery publishes them due then.
#[tokio::test]
async fn redelivered_event_waits_out_the_lease() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let a = webhook(&store, "default", &["*"], true).await;
    let e = event("default", "e1", "license.created");
    let now = OffsetDateTime::now_utc();
    let recorded = store.record_events(std::slice::from_ref(&e), now, LEASE).await.expect("record");
    let [RecordedEvent::Fresh(fresh)] = recorded.as_slice() else { panic!("fresh: {recorded:?}") };
    assert_eq!(fresh.len(), 1);
    let later = now + time::Duration::seconds(2);
    let again = store.record_events(std::slice::from_ref(&e), later, LEASE).await.expect("again");
    let [RecordedEvent::Seen(Dispatch::Publish(steps))] = again.as_slice() else { panic!("seen: {again:?}") };
    assert_eq!(steps.len(), 1);
    assert_eq!((steps[0].id, steps[0].webhook_id), (fresh[0].id, a));
    let received: OffsetDateTime =
        db.client().await.query_one("SELECT received_at FROM events", &[]).await.expect("event").get(0);
    assert_eq!(steps[0].at, truncate_ms(received + LEASE), "due when the first copy's lease ends");
    let third = store.record_events(std::slice::from_ref(&e), later, LEASE).await.expect("third");
    assert!(matches!(third.as_slice(), [RecordedEvent::Seen(Dispatch::Publish(s))] if s.is_empty()));
}

fn attempt(delivery_id: DeliveryId, status: Option<i32>) -> NewAttempt {
    NewAttempt {
        id: AttemptId::from_uuid(Uuid::now_v7()),
        delivery_id,
        trigger: Trigger::Scheduled,
        sent_at: OffsetDateTime::now_utc(),
        received_at: status.map(|_| OffsetDateTime::now_utc()),
        duration_ms: 3,
        status_code: status,
        error_kind: status.is_none().then(|| "connect".to_owned()),
        error_message: None,
        response_excerpt: None,
        trace_id: None,
    }
}

/// Records a failure, deciding with core's rules and a 50-failure threshold.
async fn fail(store: &Store, id: DeliveryId) -> Option<RecordedFailure> {
    fail_as(store, id, false).await
}

/// [`fail`], saying whether the attempt was its webhook's probe.
async fn fail_as(store: &Store, id: DeliveryId, probe: bool) -> Option<RecordedFailure> {
    let schedule = RetrySchedule::parse("1s,1s").expect("valid");
    let outcome = classify_status(500);
    store
        .record_failure(&attempt(id, Some(500)), OffsetDateTime::now_utc(), |facts| {
            let health = facts.health.after(&outcome, 50);
            let next = decide(
                &Attempted {
                    outcome: &outcome,
                    attempt_no: facts.attempt_no,
                    trigger: Trigger::Scheduled,
                    takes_step: true,
                    previous_state: facts.previous_state,
                    health_after: health,
                    retry_after: None,
                    jitter: 0.0,
                    request_timeout: std::time::Duration::from_secs(1),
                },
                &schedule,
            );
            Decided { health, next, next_attempt_at: None, probe }
        })
        .await
        .expect("record")
}

async fn deliveries_for(store: &Store, n: usize) -> (WebhookId, Vec<DeliveryId>) {
    let w = webhook(store, "default", &["*"], true).await;
    let mut ids = Vec::new();
    let events: Vec<_> = (0..n).map(|i| event("default", &format!("e{i}"), "a.b")).collect();
    for recorded in store.record_events(&events, OffsetDateTime::now_utc(), LEASE).await.expect("record") {
        let RecordedEvent::Fresh(fresh) = recorded else { panic!("fresh events") };
        ids.extend(fresh.into_iter().map(|d| d.id));
    }
    (w, ids)
}

/// Attempts are numbered in order; failures retry on schedule and count up
/// the webhook's failures; a success delivers and resets its health.
#[tokio::test]
async fn attempts_are_numbered_and_drive_health() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (w, ids) = deliveries_for(&store, 1).await;
    let healthy = Some((hookline_core::HealthStatus::Healthy, true));
    assert_eq!(store.standing(w).await.expect("read"), healthy, "a new webhook");
    let first = fail(&store, ids[0]).await.expect("exists");
    assert_eq!(first.attempt_no, 1);
    assert_eq!(store.standing(w).await.expect("read"), Some((hookline_core::HealthStatus::Unhealthy, true)));
    assert_eq!(first.decided.next.state(), DeliveryState::Retrying);
    assert_eq!(fail(&store, ids[0]).await.expect("exists").attempt_no, 2);
    let hook = store.get_webhook(w, None).await.expect("get").expect("exists");
    assert_eq!(hook.consecutive_failures, 2);
    assert_eq!(hook.status.as_str(), "unhealthy");
    assert!(hook.last_failure_at.is_some());
    let now = OffsetDateTime::now_utc();
    assert_eq!(store.record_successes(&[attempt(ids[0], Some(200))], &[], now).await.expect("3"), [Some(3)]);
    let hook = store.get_webhook(w, None).await.expect("get").expect("exists");
    assert_eq!((hook.consecutive_failures, hook.status.as_str()), (0, "healthy"));
    assert!(hook.last_success_at.is_some());
    assert_eq!(store.standing(w).await.expect("read"), healthy);
    assert_eq!(store.standing(WebhookId::from_uuid(Uuid::now_v7())).await.expect("read"), None, "gone");
    let (delivery, _, attempts) = store.get_delivery(ids[0], None).await.expect("get").expect("exists");
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(delivery.attempt_count, 3);
    assert_eq!(attempts.iter().map(|a| a.attempt_no).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(attempts[0].retry_reason.as_deref(), Some("HTTP 500"));
    assert_eq!(store.record_successes(&[attempt(new_id(), Some(200))], &[], now).await.expect("gone"), [None]);
    assert!(fail(&store, new_id()).await.is_none());
}

/// Concurrent failed attempts on one webhook lose no increment, and the
/// webhook is suspended by exactly the 50th.
#[tokio::test]
async fn concurrent_failures_are_counted_exactly() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (w, ids) = deliveries_for(&store, 60).await;
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move { fail(&store, id).await.expect("exists") })
        })
        .collect();
    let mut suspending = 0;
    for t in tasks {
        let recorded = t.await.expect("task");
        if recorded.decided.health.consecutive_failures == 50 {
            assert_eq!(recorded.decided.next.state(), DeliveryState::Suspended);
            suspending += 1;
        }
    }
    assert_eq!(suspending, 1);
    let hook = store.get_webhook(w, None).await.expect("get").expect("exists");
    assert_eq!(hook.consecutive_failures, 60);
    assert_eq!(hook.status.as_str(), "suspended");
    let client = db.client().await;
    let before: i64 = client
        .query_one(
            "SELECT count(*) FROM attempts WHERE recorded_at <= (SELECT suspended_at FROM webhooks WHERE id = $1)",
            &[&w.as_uuid()],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(before, 50, "exactly 50 failures were recorded up to the suspension");
}

/// An unhealthy webhook has one probe at a time across workers: a second
/// taker finds it busy until the first is recorded (given back) or its
/// lease runs out; a healthy webhook needs none.
#[tokio::test]
async fn one_probe_at_a_time() {
    use hookline_store::Probe;
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (w, ids) = deliveries_for(&store, 2).await;
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        store.take_probe(w, now, LEASE).await.expect("take"),
        Probe::Status(hookline_core::HealthStatus::Healthy)
    );
    fail(&store, ids[0]).await.expect("exists");
    assert_eq!(store.take_probe(w, now, LEASE).await.expect("take"), Probe::Taken);
    for _ in 0..3 {
        assert!(matches!(store.take_probe(w, now, LEASE).await.expect("take"), Probe::Busy(Some(_))));
    }
    // The lease ran out (its worker died): the next taker gets it.
    assert_eq!(store.take_probe(w, now + LEASE, LEASE).await.expect("take"), Probe::Taken);
    // Its failure recorded as a probe gives it back.
    fail_as(&store, ids[1], true).await.expect("exists");
    assert_eq!(store.take_probe(w, now + LEASE, LEASE).await.expect("take"), Probe::Taken);
}
