//! The rate limit's SQL against `hookline_core::rate::admit` and
//! `release`, case by case: the same decisions, times and state from the
//! same inputs; and the queue in Postgres.

use hookline_core::{
    DeliveryId, RateLimit, WebhookId,
    rate::{Admission, RateState, admit, release},
};
use time::OffsetDateTime;

use super::{deliveries_for, store, webhook};

async fn state(db: &hookline_testkit::TestDb, id: WebhookId) -> RateState {
    let row = db
        .client()
        .await
        .query_one("SELECT second, used, next_free FROM webhook_rate WHERE webhook_id = $1", &[&id.as_uuid()])
        .await
        .expect("the row");
    RateState { second: row.get(0), used: u32::try_from(row.get::<_, i32>(1)).expect("small"), next_free: row.get(2) }
}

/// A scripted run of requests (fresh and held, on time, late, in bursts)
/// gets from the SQL exactly what the Rust rule says, step by step.
#[tokio::test]
async fn the_sql_follows_the_rule() {
    let db = hookline_testkit::TestDb::new().await;
    let store = store(&db).await;
    let id = webhook(&store, "t", &["*"], true).await;
    let limit = RateLimit::new(5).expect("valid");
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid");
    let ms = |n: i64| t0 + time::Duration::milliseconds(n);
    // (time, held): a burst of 7 fresh at once, held ones coming back, one
    // late, fresh ones while others wait, a quiet gap, then fresh again.
    let script = [
        (ms(0), false),
        (ms(0), false),
        (ms(0), false),
        (ms(1), false),
        (ms(2), false),
        (ms(3), false),
        (ms(4), false),
        (ms(210), true),
        (ms(420), true),
        (ms(500), false),
        (ms(900), true),
        (ms(990), true),
        (ms(999), true),
        (ms(999), true),
        (ms(1_000), true),
        (ms(1_001), true),
        (ms(1_002), false),
        (ms(5_000), false),
        (ms(5_001), false),
    ];
    let mut expected = RateState::fresh();
    for (i, (now, held)) in script.into_iter().enumerate() {
        let (next, decision) = admit(expected, now, limit, held);
        let got = store.rate_admit_at(id, limit, held, Some(now)).await.expect("admit");
        assert_eq!(got, decision, "step {i} at {now}, held {held}");
        assert_eq!(state(&db, id).await, next, "state after step {i}");
        expected = next;
    }
}

async fn queued(db: &hookline_testkit::TestDb) -> Vec<(DeliveryId, bool, Option<OffsetDateTime>)> {
    db.client()
        .await
        .query("SELECT id, rate_queued, next_attempt_at FROM deliveries ORDER BY id", &[])
        .await
        .expect("deliveries")
        .iter()
        .map(|r| (DeliveryId::from_uuid(r.get(0)), r.get(1), r.get(2)))
        .collect()
}

/// Deliveries that must wait are queued in Postgres (no due time), and
/// releases hand them out in delivery order at the times the Rust rule
/// gives, moving the queue's end as it says; a stale message cannot queue
/// its delivery; a webhook whose limit is removed has its queue handed out
/// at once.
#[tokio::test]
async fn the_queue_is_released_by_the_rule() {
    let db = hookline_testkit::TestDb::new().await;
    let store = store(&db).await;
    let (webhook, ids) = deliveries_for(&store, 12).await;
    let limit = RateLimit::new(5).expect("valid");
    db.client().await.execute("UPDATE webhooks SET rate_limit = 5", &[]).await.expect("limit");
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid");
    let ms = |n: i64| t0 + time::Duration::milliseconds(n);
    // The first goes; the rest of the burst waits and is queued.
    assert_eq!(store.rate_admit_at(webhook, limit, false, Some(ms(0))).await.expect("admit"), Admission::Send);
    for id in &ids[1..] {
        assert_eq!(store.rate_admit_at(webhook, limit, false, Some(ms(0))).await.expect("admit"), Admission::Wait);
        assert!(store.queue_for_rate(*id, None).await.expect("queue"), "a fresh delivery is queued");
        assert!(!store.queue_for_rate(*id, None).await.expect("queue"), "once");
    }
    assert!(
        queued(&db).await.iter().filter(|(id, ..)| *id != ids[0]).all(|(_, q, due)| *q && due.is_none()),
        "queued, no due time"
    );
    // Nothing else takes a queued delivery: not the unstarted scan.
    let (unstarted, _) = store.take_unstarted(ms(-60_000), ms(60_000), ms(0), 100).await.expect("scan");
    assert!(unstarted.is_empty(), "the unstarted scan leaves queued deliveries alone: {unstarted:?}");

    let horizon = time::Duration::milliseconds(500);
    let mut expected = state(&db, webhook).await;
    let mut waiting: Vec<DeliveryId> = ids[1..].to_vec();
    waiting.sort_by_key(DeliveryId::as_uuid);
    let mut first_released = None;
    for (step, now) in [ms(0), ms(100), ms(400), ms(3_000)].into_iter().enumerate() {
        let (next, times) = release(expected, now, limit, horizon, u32::try_from(waiting.len()).expect("few"));
        let got = store.release_rate_queued_at(horizon, 100, Some(now)).await.expect("release");
        let released: Vec<_> = waiting.drain(..times.len()).collect();
        first_released = first_released.or(got.first().map(|d| (d.id, d.at)));
        assert_eq!(got.iter().map(|d| d.id).collect::<Vec<_>>(), released, "step {step}: in delivery order");
        let truncated: Vec<_> = times.iter().map(|t| hookline_core::fence::truncate_ms(*t)).collect();
        assert_eq!(got.iter().map(|d| d.at).collect::<Vec<_>>(), truncated, "step {step}: the rule's times");
        assert!(got.iter().all(|d| d.webhook_id == webhook && d.trigger == hookline_core::Trigger::Scheduled));
        assert_eq!(state(&db, webhook).await, next, "step {step}: the queue's end");
        expected = next;
    }
    assert!(!waiting.is_empty(), "some still queued");
    // A stale message (its due time gone) cannot queue a released delivery;
    // the message it was released with can.
    let (released, due) = first_released.expect("some released");
    let due_ms = hookline_core::fence::unix_ms(due);
    assert!(!store.queue_for_rate(released, Some(due_ms + 1)).await.expect("queue"), "stale");
    assert!(store.queue_for_rate(released, Some(due_ms)).await.expect("queue"), "queued again");
    // The limit removed: the whole queue goes at once.
    db.client().await.execute("UPDATE webhooks SET rate_limit = NULL", &[]).await.expect("no limit");
    let got = store.release_rate_queued_at(horizon, 100, Some(ms(3_100))).await.expect("release");
    assert_eq!(got.len(), waiting.len() + 1);
    assert!(queued(&db).await.iter().all(|(_, q, _)| !q), "nothing left queued");
}
