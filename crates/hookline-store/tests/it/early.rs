//! A fresh event's fast path: who it goes to, read before anything is
//! written, then the event, its deliveries and their attempts in one commit.

use hookline_core::{HealthStatus, WebhookId};
use hookline_store::{Delivered, Looked, RecordedEvent, goes_early};
use hookline_testkit::TestDb;
use time::OffsetDateTime;

use super::{LEASE, attempt, event, store, webhook};

fn fresh(looked: &Looked) -> Vec<(hookline_core::DeliveryId, WebhookId)> {
    match looked {
        Looked::Fresh(deliveries) => deliveries.iter().map(|d| (d.id, d.webhook_id)).collect(),
        Looked::Seen => panic!("not recorded yet"),
    }
}

/// The look-up names each subscribed, active webhook of the event's own
/// tenant, with the delivery id the careful path would give it; an event
/// once recorded is `Seen`. Nothing is written by looking.
#[tokio::test]
async fn look_up_reads_who_an_event_goes_to() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let on = webhook(&store, "acme", &["license.*"], true).await;
    webhook(&store, "acme", &["license.*"], false).await;
    webhook(&store, "acme", &["activation.*"], true).await;
    webhook(&store, "globex", &["*"], true).await;
    let e = event("acme", "evt-1", "license.created");
    let looked = store.look_up(std::slice::from_ref(&e)).await.expect("look up");
    let expected = vec![(e.delivery_id(on), on)];
    assert_eq!(fresh(&looked[0]), expected);
    let Looked::Fresh(deliveries) = &looked[0] else { unreachable!() };
    assert!(goes_early(deliveries, OffsetDateTime::now_utc()), "one healthy webhook");
    assert!(!goes_early(&[], OffsetDateTime::now_utc()), "nothing to send early");
    let mut failing = deliveries.clone();
    failing[0].last_failure_at = Some(OffsetDateTime::now_utc() - time::Duration::seconds(5));
    assert!(!goes_early(&failing, OffsetDateTime::now_utc()), "a webhook that just failed takes the careful path");
    failing[0].last_failure_at = Some(OffsetDateTime::now_utc() - time::Duration::minutes(5));
    assert!(goes_early(&failing, OffsetDateTime::now_utc()), "an old failure does not count");
    let client = db.client().await;
    let events: i64 = client.query_one("SELECT count(*) FROM events", &[]).await.expect("count").get(0);
    assert_eq!(events, 0, "looking writes nothing");

    let recorded = store.record_events(std::slice::from_ref(&e), OffsetDateTime::now_utc(), LEASE).await.expect("rec");
    let RecordedEvent::Fresh(careful) = &recorded[0] else { panic!("fresh") };
    assert_eq!(careful.iter().map(|d| (d.id, d.webhook_id)).collect::<Vec<_>>(), expected, "the same ids");
    assert!(matches!(store.look_up(&[e]).await.expect("again")[0], Looked::Seen));
}

/// An event whose first attempts succeeded is written in one statement:
/// dispatched, each delivery delivered after one attempt, each webhook's
/// success noted. A second copy recorded the same way (a repeated message)
/// adds an attempt to the same delivery rather than a second delivery.
#[tokio::test]
async fn delivered_events_are_written_in_one_commit() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let a = webhook(&store, "acme", &["*"], true).await;
    let b = webhook(&store, "acme", &["*"], true).await;
    let e = event("acme", "evt-2", "license.created");
    let Looked::Fresh(deliveries) = store.look_up(std::slice::from_ref(&e)).await.expect("look")[0].clone() else {
        panic!("fresh")
    };
    assert_eq!(deliveries.len(), 2);
    let item = Delivered {
        event: e.clone(),
        attempts: deliveries.iter().map(|d| (d.webhook_id, attempt(d.id, Some(204)))).collect(),
    };
    let now = OffsetDateTime::now_utc();
    let numbers = store.record_delivered(std::slice::from_ref(&item), now).await.expect("record");
    assert_eq!(numbers, vec![vec![Some(1), Some(1)]]);

    let client = db.client().await;
    let row = client
        .query_one("SELECT dispatched_at IS NOT NULL FROM events WHERE tenant = 'acme' AND id = 'evt-2'", &[])
        .await
        .expect("event");
    assert!(row.get::<_, bool>(0), "dispatched");
    let rows = client
        .query(
            "SELECT d.id, d.state, d.attempt_count, d.next_attempt_at IS NULL, count(a.id)
             FROM deliveries d JOIN attempts a ON a.delivery_id = d.id
             GROUP BY d.id ORDER BY d.id",
            &[],
        )
        .await
        .expect("deliveries");
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let id: uuid::Uuid = row.get(0);
        assert!(deliveries.iter().any(|d| d.id.as_uuid() == id), "the looked-up ids");
        assert_eq!(row.get::<_, String>(1), "delivered");
        assert_eq!(row.get::<_, i32>(2), 1);
        assert!(row.get::<_, bool>(3), "no due time");
        assert_eq!(row.get::<_, i64>(4), 1);
    }
    for w in [a, b] {
        let webhook = store.get_webhook(w, None).await.expect("get").expect("exists");
        assert_eq!(webhook.status, HealthStatus::Healthy);
        assert!(webhook.last_success_at.is_some(), "success noted");
    }

    // A second copy of the message, sent and recorded again.
    let again =
        Delivered { event: e, attempts: deliveries.iter().map(|d| (d.webhook_id, attempt(d.id, Some(200)))).collect() };
    let numbers = store.record_delivered(&[again], OffsetDateTime::now_utc()).await.expect("again");
    assert_eq!(numbers, vec![vec![Some(2), Some(2)]]);
    let counts: Vec<i32> = client
        .query("SELECT attempt_count FROM deliveries ORDER BY id", &[])
        .await
        .expect("counts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(counts, [2, 2], "one delivery per (event, webhook), two attempts each");
}
