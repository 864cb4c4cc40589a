//! The store against a real Postgres, one database per test.

use hookline_core::{
    AttemptId, DeliveryId, DeliveryState, EventFilters, EventId, EventType, SigningToken, TenantId, WebhookId,
    WebhookName, WebhookUrl,
};
use hookline_store::{Created, DeliveryFilter, Dispatch, NewAttempt, NewEvent, NewWebhook, PgSettings, Store};
use hookline_testkit::TestDb;
use time::OffsetDateTime;
use uuid::Uuid;

async fn store(db: &TestDb) -> Store {
    Store::connect(&PgSettings { url: db.url().to_owned(), pool_size: 4 }).await.expect("store connects and migrates")
}

async fn webhook(store: &Store, tenant: &str, events: &[&str], active: bool) -> WebhookId {
    let new = NewWebhook {
        tenant: TenantId::parse(tenant).expect("tenant"),
        name: WebhookName::parse("w").expect("name"),
        url: WebhookUrl::parse("https://example.com/h").expect("url"),
        token: SigningToken::parse("0123456789abcdef").expect("token"),
        events: EventFilters::parse(events).expect("events"),
        active,
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
        body: br#"{"event":"x"}"#.to_vec(),
        triggered_at: OffsetDateTime::now_utc(),
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
    let settings = PgSettings { url: db.url().to_owned(), pool_size: 2 };
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
    let settings = PgSettings { url: format!("{}_created", db.url()), pool_size: 1 };
    let (a, b, c) = tokio::join!(Store::connect(&settings), Store::connect(&settings), Store::connect(&settings));
    for store in [a, b, c] {
        store.expect("creates the database or finds it created").ping().await.expect("usable");
    }
    let admin = db.client().await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}_created WITH (FORCE)", db.name())).await.expect("cleanup");
}

/// Fan-out creates one delivery per matching active webhook of the event's
/// tenant, and a repeated event id creates nothing more.
#[tokio::test]
async fn record_event_fans_out_once() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let a = webhook(&store, "default", &["license.*"], true).await;
    let _inactive = webhook(&store, "default", &["*"], false).await;
    let _other_type = webhook(&store, "default", &["activation.created"], true).await;
    let _other_tenant = webhook(&store, "acme", &["*"], true).await;
    let e = event("default", "e1", "license.created");
    let now = OffsetDateTime::now_utc();

    let Dispatch::Publish(ids) = store.record_event(&e, new_id, now, LEASE).await.expect("record") else {
        panic!("first sighting publishes");
    };
    assert_eq!(ids.len(), 1);
    let job = store.load_job(ids[0]).await.expect("load").expect("exists");
    assert_eq!(job.webhook_id, a);
    assert_eq!(job.state, DeliveryState::Pending);

    // A second copy while the first is still publishing waits for it…
    assert_eq!(store.record_event(&e, new_id, now, LEASE).await.expect("again"), Dispatch::InProgress);
    // …and once the first is presumed dead, publishes the same deliveries.
    let later = now + LEASE + time::Duration::seconds(1);
    assert_eq!(store.record_event(&e, new_id, later, LEASE).await.expect("again"), Dispatch::Publish(ids.clone()));
    store.mark_dispatched(&e.tenant, &e.id, now).await.expect("mark");
    assert_eq!(store.record_event(&e, new_id, now, LEASE).await.expect("dup"), Dispatch::Duplicate);
    assert_eq!(
        store
            .list_deliveries(&DeliveryFilter { webhook: Some(a), ..Default::default() }, None, 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

/// Attempts are numbered in order, move the delivery's state, and drive the
/// webhook's health: failures count up, a success resets.
#[tokio::test]
async fn attempts_are_numbered_and_drive_health() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let w = webhook(&store, "default", &["*"], true).await;
    let Dispatch::Publish(ids) = store
        .record_event(&event("default", "e1", "a.b"), new_id, OffsetDateTime::now_utc(), LEASE)
        .await
        .expect("record")
    else {
        panic!("publishes");
    };
    let attempt = |ok: bool| NewAttempt {
        id: AttemptId::from_uuid(Uuid::now_v7()),
        delivery_id: ids[0],
        sent_at: OffsetDateTime::now_utc(),
        received_at: Some(OffsetDateTime::now_utc()),
        duration_ms: 3,
        status_code: Some(if ok { 200 } else { 500 }),
        error_kind: None,
        error_message: None,
        response_excerpt: Some("nope".into()),
        retry_reason: None,
        next_attempt_at: None,
        succeeded: ok,
        new_state: if ok { DeliveryState::Succeeded } else { DeliveryState::Pending },
    };
    let now = OffsetDateTime::now_utc();
    assert_eq!(store.record_attempt(&attempt(false), now).await.expect("1"), Some(1));
    assert_eq!(store.record_attempt(&attempt(false), now).await.expect("2"), Some(2));
    let hook = store.get_webhook(w, None).await.expect("get").expect("exists");
    assert_eq!(hook.consecutive_failures, 2);
    assert_eq!(hook.status.as_str(), "unhealthy");
    assert_eq!(store.record_attempt(&attempt(true), now).await.expect("3"), Some(3));
    let hook = store.get_webhook(w, None).await.expect("get").expect("exists");
    assert_eq!(hook.consecutive_failures, 0);
    assert_eq!(hook.status.as_str(), "healthy");
    let (delivery, _, attempts) = store.get_delivery(ids[0], None).await.expect("get").expect("exists");
    assert_eq!(delivery.state, DeliveryState::Succeeded);
    assert_eq!(delivery.attempt_count, 3);
    assert_eq!(attempts.iter().map(|a| a.attempt_no).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        store.record_attempt(&NewAttempt { delivery_id: new_id(), ..attempt(true) }, now).await.expect("gone"),
        None
    );
}

/// Concurrent failed attempts on one webhook lose no increment.
#[tokio::test]
async fn concurrent_failures_are_counted_exactly() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let w = webhook(&store, "default", &["*"], true).await;
    let mut deliveries = Vec::new();
    for i in 0..40 {
        let Dispatch::Publish(ids) = store
            .record_event(&event("default", &format!("e{i}"), "a.b"), new_id, OffsetDateTime::now_utc(), LEASE)
            .await
            .expect("record")
        else {
            panic!("publishes");
        };
        deliveries.extend(ids);
    }
    let tasks = deliveries.into_iter().map(|id| {
        let store = store.clone();
        tokio::spawn(async move {
            let a = NewAttempt {
                id: AttemptId::from_uuid(Uuid::now_v7()),
                delivery_id: id,
                sent_at: OffsetDateTime::now_utc(),
                received_at: None,
                duration_ms: 1,
                status_code: None,
                error_kind: Some("connect".into()),
                error_message: Some("refused".into()),
                response_excerpt: None,
                retry_reason: None,
                next_attempt_at: None,
                succeeded: false,
                new_state: DeliveryState::Failed,
            };
            store.record_attempt(&a, OffsetDateTime::now_utc()).await.expect("record")
        })
    });
    for t in tasks {
        t.await.expect("task");
    }
    let hook = store.get_webhook(w, None).await.expect("get").expect("exists");
    assert_eq!(hook.consecutive_failures, 40);
}
