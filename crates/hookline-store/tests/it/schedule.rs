//! A delivery's next step as the record: fenced claims, hand-offs, replays
//! and reconciliation of what is overdue.

use hookline_core::{DeliveryId, DeliveryState, Fence, Trigger, fence::unix_ms};
use hookline_store::{Claim, Due, RecordedEvent, Store};
use hookline_testkit::TestDb;
use time::{Duration, OffsetDateTime};

use super::{LEASE, event, new_id, store, webhook};

/// `n` fresh deliveries (one event each) to one webhook, as dispatch
/// records them: pending, with no due time yet.
async fn fresh(store: &Store, n: usize) -> Vec<DeliveryId> {
    // A tenant of its own, so earlier webhooks do not subscribe.
    let tenant = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    webhook(store, &tenant, &["*"], true).await;
    let events: Vec<_> = (0..n).map(|i| event(&tenant, &format!("e{i}"), "a.b")).collect();
    let recorded = store.record_events(&events, OffsetDateTime::now_utc(), LEASE).await.expect("record");
    recorded
        .into_iter()
        .flat_map(|r| match r {
            RecordedEvent::Fresh(d) => d.into_iter().map(|d| d.id).collect::<Vec<_>>(),
            RecordedEvent::Seen(_) => panic!("fresh events"),
        })
        .collect()
}

async fn handed_off(store: &Store, n: usize, at: OffsetDateTime) -> Vec<Due> {
    let ids = fresh(store, n).await;
    let steps = store.hand_off(&ids, at).await.expect("hand off");
    assert_eq!(steps.len(), n);
    steps
}

fn due(step: &Due) -> Fence {
    Fence::Due(unix_ms(step.at))
}

/// A message claims its delivery only while the row is due at the time it
/// carries and nobody else holds a claim; a refused message learns whether
/// it is stale or the delivery is busy.
#[tokio::test]
async fn claims_are_fenced_and_exclusive() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = OffsetDateTime::now_utc();
    let step = handed_off(&store, 1, now).await.remove(0);
    assert!(store.hand_off(&[step.id], now).await.expect("again").is_empty(), "a second hand-off finds it due");

    let stale = Fence::Due(unix_ms(step.at) - 1);
    match store.claim(step.id, stale, Trigger::Scheduled, now, LEASE).await.expect("claim") {
        Claim::Refused { row, claimed_until: None } => assert!(!stale.admits(Trigger::Scheduled, &row)),
        other => panic!("a stale message is refused: {other:?}"),
    }
    let Claim::Claimed(job) = store.claim(step.id, due(&step), Trigger::Scheduled, now, LEASE).await.expect("claim")
    else {
        panic!("its own message claims it");
    };
    assert_eq!(job.next_attempt_at, Some(step.at));
    match store.claim(step.id, due(&step), Trigger::Scheduled, now, LEASE).await.expect("claim") {
        Claim::Refused { row, claimed_until: Some(until) } => {
            assert!(due(&step).admits(Trigger::Scheduled, &row), "a copy is admitted but the delivery is busy");
            assert!(until > now);
        }
        other => panic!("a copy finds it claimed: {other:?}"),
    }
    let later = now + LEASE + Duration::seconds(1);
    assert!(
        matches!(store.claim(step.id, due(&step), Trigger::Scheduled, later, LEASE).await, Ok(Claim::Claimed(_))),
        "a claim whose worker died runs out"
    );
    assert!(matches!(store.claim(new_id(), due(&step), Trigger::Scheduled, now, LEASE).await, Ok(Claim::Gone)));
}

/// Twenty copies of one message claiming at once: exactly one wins.
#[tokio::test]
async fn concurrent_copies_claim_once() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = OffsetDateTime::now_utc();
    let step = handed_off(&store, 1, now).await.remove(0);
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let step = step.clone();
            tokio::spawn(async move { store.claim(step.id, due(&step), Trigger::Scheduled, now, LEASE).await })
        })
        .collect();
    let mut won = 0;
    for claim in claims {
        if matches!(claim.await.expect("task").expect("claim"), Claim::Claimed(_)) {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// Overdue steps (past due by more than the grace, not claimed) are taken
/// once, oldest first, given a fresh due time (which fences off the old
/// message) and not taken again before the grace has passed once more.
/// Concurrent reconcilers take disjoint rows.
#[tokio::test]
async fn overdue_steps_are_taken_once() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = OffsetDateTime::now_utc();
    let grace = Duration::seconds(30);
    let old = handed_off(&store, 40, now - Duration::minutes(5)).await;
    let recent = handed_off(&store, 1, now - Duration::seconds(5)).await;
    // One old step is being attempted right now.
    assert!(matches!(
        store.claim(old[0].id, due(&old[0]), Trigger::Scheduled, now, LEASE).await,
        Ok(Claim::Claimed(_))
    ));

    let (a, b) = tokio::join!(store.take_overdue(now, grace, 25), store.take_overdue(now, grace, 25));
    let mut taken: Vec<DeliveryId> = a.expect("a").into_iter().chain(b.expect("b")).map(|(d, _)| d.id).collect();
    taken.sort();
    let mut expected: Vec<DeliveryId> = old[1..].iter().map(|d| d.id).collect();
    expected.sort();
    assert_eq!(taken, expected, "each unclaimed overdue step once, nothing recent, nothing claimed");
    assert!(!taken.contains(&recent[0].id));
    assert!(store.take_overdue(now, grace, 100).await.expect("again").is_empty(), "not again within the grace");

    // The old message is fenced off; one for the new due time claims.
    let moved = &old[1];
    assert!(matches!(
        store.claim(moved.id, due(moved), Trigger::Scheduled, now, LEASE).await,
        Ok(Claim::Refused { .. })
    ));
    let fresh_due = Fence::Due(unix_ms(hookline_core::fence::truncate_ms(now)));
    let long = Duration::minutes(5);
    assert!(matches!(store.claim(moved.id, fresh_due, Trigger::Scheduled, now, long).await, Ok(Claim::Claimed(_))));
    let later = now + grace + Duration::seconds(1);
    let again = store.take_overdue(later, grace, 100).await.expect("later");
    assert_eq!(again.len(), 41 - 1, "what is still not attempted is taken again (expired claims too), live claims not");
}

/// `recover` marks before it publishes: replays are pending with spaced due
/// times and trigger `recover`; undoing restores what each was, but only
/// for replays still waiting for that same due time.
#[tokio::test]
async fn replays_are_marked_and_unmarked() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = OffsetDateTime::now_utc();
    let steps = handed_off(&store, 3, now).await;
    let ids: Vec<DeliveryId> = steps.iter().map(|s| s.id).collect();
    let client = db.client().await;
    let uuids: Vec<uuid::Uuid> = ids.iter().map(DeliveryId::as_uuid).collect();
    client
        .execute(
            "UPDATE deliveries SET state = CASE WHEN id = $2 THEN 'suspended' ELSE 'failed' END, next_attempt_at = NULL
             WHERE id = ANY($1)",
            &[&uuids, &uuids[2]],
        )
        .await
        .expect("fail them");
    let replays = store.mark_replays(&ids, now, Duration::milliseconds(100), now).await.expect("mark");
    assert_eq!(replays.len(), 3);
    assert_eq!(replays[1].due.at - replays[0].due.at, Duration::milliseconds(100));
    assert!(replays.iter().all(|r| r.due.trigger == Trigger::Recover));
    assert_eq!(replays[2].previous, DeliveryState::Suspended);
    assert!(store.mark_replays(&ids, now, Duration::milliseconds(100), now).await.expect("again").is_empty());

    // The first replay was published and is being attempted; the rest are undone.
    assert!(matches!(
        store.claim(ids[0], Fence::Due(unix_ms(replays[0].due.at)), Trigger::Recover, now, LEASE).await,
        Ok(Claim::Claimed(_))
    ));
    assert_eq!(store.unmark_replays(&replays[1..], now).await.expect("unmark"), 2);
    let states: Vec<String> = client
        .query("SELECT state FROM deliveries WHERE id = ANY($1) ORDER BY array_position($1, id)", &[&uuids])
        .await
        .expect("states")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["pending", "failed", "suspended"]);
    let overdue = store.take_overdue(now + Duration::seconds(20), Duration::seconds(10), 10).await.expect("overdue");
    assert!(overdue.is_empty(), "a claimed replay is not overdue, undone ones wait for nothing");
}

/// The scan for unstarted deliveries takes pending ones with no due time
/// created in its window, once, and nothing else.
#[tokio::test]
async fn unstarted_deliveries_are_taken_once() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = OffsetDateTime::now_utc();
    let mut lost = fresh(&store, 3).await;
    // Derived ids order by time, then by hash: not in creation order.
    lost.sort();
    let attempted = handed_off(&store, 2, now).await;
    let from = now - Duration::minutes(1);
    let until = OffsetDateTime::now_utc() + Duration::seconds(1);
    let (steps, next) = store.take_unstarted(from, until, now, 100).await.expect("scan");
    let mut taken: Vec<DeliveryId> = steps.iter().map(|s| s.id).collect();
    taken.sort();
    assert_eq!(taken, lost, "only the pending ones without a due time");
    assert!(!taken.contains(&attempted[0].id));
    assert_eq!(next, until);
    assert!(steps.iter().all(|s| s.at == hookline_core::fence::truncate_ms(now)));
    assert!(store.take_unstarted(from, until, now, 100).await.expect("again").0.is_empty());

    // A limit reached continues where it stopped.
    let more = fresh(&store, 5).await;
    let until = OffsetDateTime::now_utc() + Duration::seconds(1);
    let (first, next) = store.take_unstarted(from, until, now, 2).await.expect("first");
    assert_eq!(first.len(), 2);
    assert!(next < until);
    let (rest, _) = store.take_unstarted(next, until, now, 100).await.expect("rest");
    assert_eq!(first.len() + rest.len(), more.len());
}
