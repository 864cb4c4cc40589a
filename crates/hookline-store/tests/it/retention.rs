//! Retention: a run removes exactly the events received before its cutoff,
//! in batches, and no reader sees their deliveries any more; it drops the
//! day partitions of deliveries and attempts wholly before the cutoff and
//! deletes the rows before it that no drop removes; one run at a time; the
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
/// first, and their deliveries with them for every reader; everything newer
/// stays, and a batch after the last finds nothing.
#[tokio::test]
async fn removes_what_is_older_than_the_cutoff_with_its_deliveries_and_attempts() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (webhook, ids) = deliveries_for(&store, 10).await;
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
    // Their rows stay until their day's partition is dropped (the ids are
    // today's here: only `received_at` was moved), but no reader shows them.
    let listed = store
        .list_deliveries(&hookline_store::DeliveryFilter { webhook: Some(webhook), ..Default::default() }, None, 100)
        .await
        .expect("list");
    let mut listed: Vec<_> = listed.iter().map(|d| d.id).collect();
    listed.sort();
    let mut kept = ids[6..].to_vec();
    kept.sort();
    assert_eq!(listed, kept, "the event log shows what is left");
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

/// Rows of events accepted `days` ago at `hour`: `n` events, each with one
/// delivery to `webhook` (their ids carry that time) and one failed attempt,
/// which leaves the delivery waiting for its retry.
async fn accepted_at(
    db: &TestDb,
    store: &hookline_store::Store,
    prefix: &str,
    at: OffsetDateTime,
    n: usize,
) -> Vec<hookline_core::DeliveryId> {
    let events: Vec<_> = (0..n)
        .map(|i| hookline_store::NewEvent {
            accepted_at: at,
            ..super::event("default", &format!("{prefix}{i}"), "a.b")
        })
        .collect();
    let mut ids = Vec::new();
    for recorded in store.record_events(&events, OffsetDateTime::now_utc(), super::LEASE).await.expect("record") {
        let hookline_store::RecordedEvent::Fresh(fresh) = recorded else { panic!("fresh events") };
        ids.extend(fresh.into_iter().map(|d| d.id));
    }
    for id in &ids {
        fail(store, *id).await.expect("recorded");
    }
    // Its retry due in a minute, as a worker schedules it.
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    db.client()
        .await
        .execute("UPDATE deliveries SET next_attempt_at = now() + interval '1 minute' WHERE id = ANY($1)", &[&uuids])
        .await
        .expect("due");
    ids
}

async fn partitions(db: &TestDb) -> Vec<String> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent IN ('deliveries'::regclass, 'attempts'::regclass) ORDER BY 1",
            &[],
        )
        .await
        .expect("partitions");
    rows.iter().map(|r| r.get(0)).collect()
}

/// A delivery's row, wherever it is, and its attempts.
async fn rows_of(db: &TestDb, id: hookline_core::DeliveryId) -> (i64, i64) {
    let client = db.client().await;
    let d: i64 =
        client.query_one("SELECT count(*) FROM deliveries WHERE id = $1", &[&id.as_uuid()]).await.expect("d").get(0);
    let a: i64 = client
        .query_one("SELECT count(*) FROM attempts WHERE delivery_id = $1", &[&id.as_uuid()])
        .await
        .expect("a")
        .get(0);
    (d, a)
}

/// Days wholly before the cutoff go by dropping their partitions (rows in
/// them go with them, whatever their state); a day that straddles the
/// cutoff stays, but its deliveries before the cutoff still waiting for a
/// step are deleted, so none is attempted after its event is gone; rows in
/// the default partition before the cutoff are deleted; nothing after the
/// cutoff is touched. Partitions are made ahead, and a day made after rows
/// of it went to the default moves them into its own partition.
#[tokio::test]
async fn drops_the_days_wholly_before_the_cutoff() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let _webhook = super::webhook(&store, "default", &["*"], true).await;
    let today = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let day = |d: i64, h: i64| today - Duration::days(d) + Duration::hours(h);
    let name = |d: i64| format!("{}", (today - Duration::days(d)).date()).replace('-', "");

    // The migration made yesterday, today and the week ahead; a worker
    // makes the same again without harm.
    let made = partitions(&db).await;
    for d in -7..=1 {
        assert!(made.contains(&format!("deliveries_p{}", name(d))), "{} made ahead: {made:?}", name(d));
    }
    assert_eq!(store.make_partitions(day(0, 0), day(-7, 0)).await.expect("make"), 0, "all there");

    // Three days ago: written before its day was made (to the default),
    // then moved into it when it is made.
    let three = accepted_at(&db, &store, "three-", day(3, 1), 2).await;
    assert!(!made.contains(&format!("deliveries_p{}", name(3))));
    assert_eq!(store.make_partitions(day(3, 0), day(2, 0)).await.expect("make"), 2);
    let client = db.client().await;
    let moved: i64 =
        client.query_one(&format!("SELECT count(*) FROM deliveries_p{}", name(3)), &[]).await.expect("moved").get(0);
    assert_eq!(moved, 2, "moved out of the default into its day");
    let two = accepted_at(&db, &store, "two-", day(2, 1), 2).await;
    // Sixty days ago: no partition, so the default.
    let sixty = accepted_at(&db, &store, "sixty-", day(60, 1), 1).await;
    // Yesterday, either side of the cutoff at 02:00; one of each delivered
    // (not waiting), the other waiting for its retry.
    let before = accepted_at(&db, &store, "before-", day(1, 1), 2).await;
    let after = accepted_at(&db, &store, "after-", day(1, 3), 2).await;
    let now = OffsetDateTime::now_utc();
    for id in [before[0], after[0]] {
        store.record_successes(&[super::attempt(id, Some(200))], &[], now).await.expect("success");
    }

    let cutoff = day(1, 2);
    let run = store.retention_run().await.expect("lock").expect("no other run");
    run.begin(cutoff, now).await.expect("begin");
    let dropped = run.drop_expired(cutoff).await.expect("drop");
    run.finish().await;
    assert_eq!(dropped.days, 2, "three and two days ago: {dropped:?}");
    assert_eq!(dropped.deferred, 0);
    let left = partitions(&db).await;
    for d in [3, 2] {
        assert!(!left.iter().any(|p| p.ends_with(&name(d))), "day {} dropped: {left:?}", name(d));
    }
    assert!(left.contains(&format!("deliveries_p{}", name(1))), "the straddling day stays");
    assert!(left.contains(&format!("attempts_p{}", name(1))));
    for id in three.iter().chain(&two).chain(&sixty).chain(&before[1..]) {
        assert_eq!(rows_of(&db, *id).await, (0, 0), "{id} removed with its attempts");
    }
    assert_eq!(rows_of(&db, before[0]).await, (1, 2), "delivered before the cutoff: its day's drop removes it");
    for id in &after {
        assert_eq!(rows_of(&db, *id).await.0, 1, "{id} after the cutoff: kept");
    }
    assert_eq!(rows_of(&db, after[0]).await.1, 2);
    assert_eq!(rows_of(&db, after[1]).await.1, 1);
    assert_eq!(dropped.stragglers, 2, "sixty days ago (default) and yesterday's waiting one: {dropped:?}");

    // Nothing left to drop: a second pass does nothing.
    let run = store.retention_run().await.expect("lock").expect("free");
    assert_eq!(run.drop_expired(cutoff).await.expect("drop"), hookline_store::Dropped::default());
    run.finish().await;
}
