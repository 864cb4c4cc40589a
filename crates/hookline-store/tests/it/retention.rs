//! Retention: a run removes exactly the events received before its cutoff,
//! with their deliveries and attempts, in batches; one run at a time; the
//! cutoff is recorded for `recover`.

use hookline_testkit::TestDb;
use time::{Duration, OffsetDateTime};

use super::{attempt, deliveries_for, fail, store};

/// Moves the received time of events `e<from>`..`e<to>` (and their
/// deliveries' creation) `ago` into the past.
async fn backdate(db: &TestDb, ids: std::ops::Range<usize>, ago: Duration) {
    let names: Vec<String> = ids.map(|i| format!("e{i}")).collect();
    let at = OffsetDateTime::now_utc() - ago;
    let client = db.client().await;
    client
        .execute("UPDATE events SET received_at = $2 WHERE id = ANY($1)", &[&names, &at])
        .await
        .expect("backdate events");
    client
        .execute("UPDATE deliveries SET created_at = $2 WHERE event_id = ANY($1)", &[&names, &at])
        .await
        .expect("backdate deliveries");
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.client().await.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
}

/// Event ids left, sorted.
async fn events_left(db: &TestDb) -> Vec<String> {
    let rows = db.client().await.query("SELECT id FROM events ORDER BY id", &[]).await.expect("events");
    rows.iter().map(|r| r.get(0)).collect()
}

/// Events received before the cutoff go, in batches of the limit, oldest
/// first, with their deliveries and attempts; everything newer stays, and
/// a batch after the last finds nothing.
#[tokio::test]
async fn removes_what_is_older_than_the_cutoff_with_its_deliveries_and_attempts() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (_, ids) = deliveries_for(&store, 10).await;
    for id in &ids {
        fail(&store, *id).await.expect("recorded");
    }
    let now = OffsetDateTime::now_utc();
    store.record_successes(&[attempt(ids[0], Some(200))], &[], now).await.expect("success");
    // e0..e5 are two days old (e0 oldest), e6 a minute older than the
    // cutoff's other side, e7..e9 are fresh.
    for (i, minutes) in (0..6).zip((5..=10).rev()) {
        backdate(&db, i..i + 1, Duration::days(2) + Duration::minutes(minutes)).await;
    }
    backdate(&db, 6..7, Duration::hours(23)).await;
    assert_eq!(
        (count(&db, "events").await, count(&db, "deliveries").await, count(&db, "attempts").await),
        (10, 10, 11)
    );

    let cutoff = now - Duration::days(1);
    let run = store.retention_run().await.expect("lock").expect("no other run");
    run.begin(cutoff, now).await.expect("begin");
    let first = run.remove(None, cutoff, 4).await.expect("batch");
    assert_eq!(first.events, 4);
    assert_eq!(events_left(&db).await, ["e4", "e5", "e6", "e7", "e8", "e9"], "the oldest first");
    let second = run.remove(first.through, cutoff, 4).await.expect("batch");
    assert_eq!(second.events, 2);
    let third = run.remove(second.through, cutoff, 4).await.expect("batch");
    assert_eq!((third.events, third.through), (0, None));
    run.finish().await;

    assert_eq!(events_left(&db).await, ["e6", "e7", "e8", "e9"]);
    assert_eq!((count(&db, "deliveries").await, count(&db, "attempts").await), (4, 4), "cascaded");
    let client = db.client().await;
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM deliveries d WHERE NOT EXISTS
                 (SELECT 1 FROM events e WHERE e.tenant = d.tenant AND e.id = d.event_id)",
            &[],
        )
        .await
        .expect("orphans")
        .get(0);
    assert_eq!(orphans, 0);
    for id in &ids[..6] {
        assert!(store.get_delivery(*id, None).await.expect("read").is_none(), "{id} removed");
    }
    for id in &ids[6..] {
        assert!(store.get_delivery(*id, None).await.expect("read").is_some(), "{id} kept");
    }
}

/// While one run holds the lock, another (another worker's) gets none;
/// once it finishes, or its connection is gone, the next one can start.
#[tokio::test]
async fn one_run_at_a_time() {
    let db = TestDb::new().await;
    let a = store(&db).await;
    let b = store(&db).await;
    let run = a.retention_run().await.expect("lock").expect("first");
    assert!(b.retention_run().await.expect("lock").is_none(), "a second worker waits its turn");
    assert!(a.retention_run().await.expect("lock").is_none(), "so does a second run on the same worker");
    run.finish().await;
    let run = b.retention_run().await.expect("lock").expect("free again");
    // Dropped without finishing (a run cut short): its connection closes
    // and the lock goes with it.
    drop(run);
    hookline_testkit::eventually(std::time::Duration::from_secs(5), || async {
        match a.retention_run().await.expect("lock") {
            Some(run) => {
                run.finish().await;
                Ok(())
            }
            None => Err("still locked"),
        }
    })
    .await;
}

/// The latest cutoff any run applied is what `recover` reads; an earlier
/// one (a window made longer) does not move it back.
#[tokio::test]
async fn the_cutoff_is_recorded() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    assert_eq!(store.expired_before().await.expect("read"), None, "nothing removed yet");
    let now = time::macros::datetime!(2026-12-01 12:00 UTC);
    let run = store.retention_run().await.expect("lock").expect("free");
    run.begin(now - Duration::days(30), now).await.expect("begin");
    run.finish().await;
    assert_eq!(store.expired_before().await.expect("read"), Some(now - Duration::days(30)));
    let later = now + Duration::hours(1);
    let run = store.retention_run().await.expect("lock").expect("free");
    run.begin(later - Duration::days(60), later).await.expect("begin");
    run.finish().await;
    assert_eq!(store.expired_before().await.expect("read"), Some(now - Duration::days(30)), "kept");
}
