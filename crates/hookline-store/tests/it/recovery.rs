//! Recovery probes as the record: due webhooks claimed under a lease, a
//! probe's outcome resuming (and replaying) or scheduling the next.

use std::time::Duration;

use hookline_core::{AttemptId, Probed, Trigger, WebhookId, fence::truncate_ms};
use hookline_store::{NewAttempt, ProbeMade, ProbeRecorded, ProbeTarget, RecordedEvent, ReplayPace, Store};
use hookline_testkit::TestDb;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{LEASE, event, store, webhook};

const FIRST: Duration = Duration::from_secs(60);

const PACE: ReplayPace = ReplayPace { spacing: time::Duration::milliseconds(100), lookback: Duration::from_secs(3600) };

/// A webhook of its own tenant, suspended `ago` before now, with
/// `recovery: {probe, replay}`.
async fn suspended(db: &TestDb, store: &Store, probe: bool, replay: bool, ago: time::Duration) -> (WebhookId, String) {
    let tenant = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
    let id = webhook(store, &tenant, &["*"], true).await;
    db.client()
        .await
        .execute(
            "UPDATE webhooks SET status = 'suspended', consecutive_failures = 50, suspended_at = now() - $2::bigint * interval '1 millisecond',
                                 recovery_probe = $3, recovery_replay = $4
             WHERE id = $1",
            &[&id.as_uuid(), &i64::try_from(ago.whole_milliseconds()).expect("small"), &probe, &replay],
        )
        .await
        .expect("suspend");
    (id, tenant)
}

fn probe_attempt(target: &ProbeTarget, status: u16) -> NewAttempt {
    NewAttempt {
        id: AttemptId::from_uuid(Uuid::now_v7()),
        delivery_id: target.delivery_id,
        trigger: Trigger::Probe,
        sent_at: OffsetDateTime::now_utc(),
        received_at: Some(OffsetDateTime::now_utc()),
        duration_ms: 2,
        status_code: Some(i32::from(status)),
        error_kind: None,
        error_message: None,
        response_excerpt: None,
        trace_id: None,
    }
}

async fn record(store: &Store, target: &ProbeTarget, probed: &Probed, now: OffsetDateTime) -> ProbeRecorded {
    let status = if matches!(probed, Probed::Resume) { 204 } else { 503 };
    let attempt = probe_attempt(target, status);
    store
        .record_probe(&ProbeMade { target, attempt: &attempt, probed, pace: PACE, now })
        .await
        .expect("record the probe")
}

/// Now, in whole milliseconds (what Postgres stores comes back equal).
fn now() -> OffsetDateTime {
    truncate_ms(OffsetDateTime::now_utc())
}

fn again(interval: Duration) -> Probed {
    Probed::Again { interval, reason: "HTTP 503; next probe in …".into() }
}

/// A suspended webhook with probing on is due one first wait after its
/// suspension and claimed by exactly one of many concurrent claims, which
/// pushes its due time one lease ahead; once that runs out (the worker
/// died) it is claimed again. Probing off, inactive or not suspended: never.
#[tokio::test]
async fn due_probes_are_claimed_once_under_a_lease() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = now();
    let (fresh, _) = suspended(&db, &store, true, false, time::Duration::seconds(10)).await;
    let (due, _) = suspended(&db, &store, true, false, time::Duration::minutes(2)).await;
    let (off, _) = suspended(&db, &store, false, false, time::Duration::minutes(2)).await;
    let (inactive, _) = suspended(&db, &store, true, false, time::Duration::minutes(2)).await;
    let client = db.client().await;
    client.execute("UPDATE webhooks SET active = false WHERE id = $1", &[&inactive.as_uuid()]).await.expect("off");
    let healthy = webhook(&store, "default", &["*"], true).await;
    client
        .execute("UPDATE webhooks SET recovery_probe = true WHERE id = $1", &[&healthy.as_uuid()])
        .await
        .expect("probe on");

    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_probes(now, FIRST, LEASE, 10).await })
    });
    let mut claimed = Vec::new();
    for claim in claims {
        claimed.extend(claim.await.expect("no panic").expect("claim"));
    }
    let ids: Vec<WebhookId> = claimed.iter().map(|t| t.webhook_id).collect();
    assert_eq!(ids, [due], "only the due one, once: not {fresh} (not yet), {off}, {inactive}, {healthy}");
    let target = &claimed[0];
    assert_eq!(target.interval, FIRST);
    assert_eq!(target.lease, now + LEASE);
    assert!(target.event_id.as_str().starts_with("hookline-probe-"));
    let body: serde_json::Value = serde_json::from_slice(&target.body).expect("JSON");
    assert_eq!(body["event"], "hookline.probe");
    assert_eq!(body["data"]["webhookId"], due.to_string());

    assert!(
        store.claim_probes(now + LEASE - time::Duration::SECOND, FIRST, LEASE, 10).await.expect("claim").is_empty()
    );
    let after_lease = now + LEASE + time::Duration::SECOND;
    let again = store.claim_probes(after_lease, FIRST, LEASE, 10).await.expect("claim");
    let again_ids: Vec<WebhookId> = again.iter().map(|t| t.webhook_id).collect();
    assert_eq!(again_ids, [due], "the lease ran out: probed again, as the same event and delivery (Webhook-Id)");
    assert_eq!((again[0].event_id.clone(), again[0].delivery_id), (target.event_id.clone(), target.delivery_id));
}

/// A failed probe is an attempt with trigger `probe` of the suspension's one
/// probe delivery, counts a failure and sets the next due time; the next
/// probe sends the stored bytes under the same id. A success resumes the
/// webhook as `resume` does and clears its schedule.
#[tokio::test]
async fn failures_reschedule_and_a_success_resumes() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = now();
    let (id, _) = suspended(&db, &store, true, false, time::Duration::minutes(2)).await;
    let first = store.claim_probes(now, FIRST, LEASE, 10).await.expect("claim").remove(0);
    let next = now + time::Duration::minutes(2);
    assert_eq!(record(&store, &first, &again(FIRST * 2), now).await, ProbeRecorded::Again(next));
    assert!(store.claim_probes(next - time::Duration::SECOND, FIRST, LEASE, 10).await.expect("claim").is_empty());
    let second = store.claim_probes(next, FIRST, LEASE, 10).await.expect("claim").remove(0);
    assert_eq!(second.interval, FIRST * 2, "the wait that led to it");
    assert_eq!((second.delivery_id, &second.body), (first.delivery_id, &first.body), "the stored probe, resent");

    // A probe recorded under a lease no longer current changes nothing of
    // the schedule.
    assert_eq!(record(&store, &first, &again(FIRST * 2), next).await, ProbeRecorded::Superseded);
    assert_eq!(record(&store, &second, &Probed::Resume, next).await, ProbeRecorded::Resumed(Vec::new()));

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT status, consecutive_failures, suspended_at IS NULL, recovery_next_at IS NULL,
                    recovery_interval_ms IS NULL, last_success_at
             FROM webhooks WHERE id = $1",
            &[&id.as_uuid()],
        )
        .await
        .expect("webhook");
    assert_eq!(row.get::<_, &str>(0), "healthy");
    assert_eq!(row.get::<_, i32>(1), 0);
    assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3) && row.get::<_, bool>(4));
    assert_eq!(row.get::<_, Option<OffsetDateTime>>(5), Some(next));
    let attempts = client
        .query(
            "SELECT a.attempt_no, a.trigger, a.status_code, a.failure_count, a.next_attempt_at, d.state, d.event_type
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id ORDER BY a.attempt_no",
            &[],
        )
        .await
        .expect("attempts");
    let seen: Vec<(i32, String, Option<i32>, Option<i32>)> =
        attempts.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        seen,
        [
            (1, "probe".to_owned(), Some(503), Some(51)),
            (2, "probe".to_owned(), Some(503), Some(51)),
            (3, "probe".to_owned(), Some(204), None),
        ]
    );
    assert_eq!(attempts[0].get::<_, Option<OffsetDateTime>>(4), Some(next));
    assert_eq!(attempts[2].get::<_, &str>(5), "delivered");
    assert_eq!(attempts[2].get::<_, &str>(6), "hookline.probe");
    assert!(store.claim_probes(next + time::Duration::DAY, FIRST, LEASE, 10).await.expect("claim").is_empty());
}

/// With replay on, a success marks what the suspension held for replay,
/// oldest first at the recover pace: the deliveries logged `suspended`
/// since it (the one whose failure suspended it included), not a failed
/// one nor one a previous suspension held.
#[tokio::test]
async fn a_success_replays_what_the_suspension_held() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (id, tenant) = suspended(&db, &store, true, true, time::Duration::minutes(2)).await;
    let events: Vec<_> = (0..4).map(|i| event(&tenant, &format!("e{i}"), "a.b")).collect();
    let recorded = store.record_events(&events, OffsetDateTime::now_utc(), LEASE).await.expect("record");
    assert!(recorded.iter().all(|r| matches!(r, RecordedEvent::Fresh(_))));
    // Logged `suspended`, as fan-out logs a suspended webhook's deliveries.
    let client = db.client().await;
    let deliveries: Vec<Uuid> = client
        .query("SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY event_id", &[&id.as_uuid()])
        .await
        .expect("deliveries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(deliveries.len(), 4);
    let set = |i: usize, state: &'static str, updated: &'static str| {
        let client = &client;
        let delivery = deliveries[i];
        async move {
            client
                .execute(
                    &format!("UPDATE deliveries SET state = $2, updated_at = {updated} WHERE id = $1"),
                    &[&delivery, &state],
                )
                .await
                .expect("set")
        }
    };
    set(0, "suspended", "now() - interval '150 seconds'").await; // its failure suspended the webhook
    set(1, "suspended", "now()").await; // logged while suspended
    set(2, "failed", "now()").await;
    set(3, "suspended", "now() - interval '1 hour'").await; // held by an earlier suspension

    let now = now();
    let target = store.claim_probes(now, FIRST, LEASE, 10).await.expect("claim").remove(0);
    let ProbeRecorded::Resumed(replays) = record(&store, &target, &Probed::Resume, now).await else {
        panic!("resumed")
    };
    let replayed: Vec<Uuid> = replays.iter().map(|r| r.due.id.as_uuid()).collect();
    assert_eq!(replayed, [deliveries[0], deliveries[1]]);
    assert!(replays.iter().all(|r| r.due.trigger == Trigger::Recover && r.due.webhook_id == id));
    assert_eq!(replays[1].due.at - replays[0].due.at, PACE.spacing);
    let states: Vec<String> = client
        .query("SELECT state FROM deliveries WHERE event_type = 'a.b' ORDER BY event_id", &[])
        .await
        .expect("states")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["pending", "pending", "failed", "suspended"]);
}

/// The schedule belongs to one suspension: any statement that ends it (a
/// success recorded the usual way here) clears it, so the next suspension
/// gets its first probe one first wait after it.
#[tokio::test]
async fn the_schedule_ends_with_the_suspension() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let now = now();
    let (id, _) = suspended(&db, &store, true, false, time::Duration::minutes(2)).await;
    let target = store.claim_probes(now, FIRST, LEASE, 10).await.expect("claim").remove(0);
    record(&store, &target, &again(FIRST * 2), now).await;
    let client = db.client().await;
    client
        .execute("UPDATE webhooks SET status = 'healthy', consecutive_failures = 0 WHERE id = $1", &[&id.as_uuid()])
        .await
        .expect("a success");
    let cleared: bool = client
        .query_one(
            "SELECT recovery_next_at IS NULL AND recovery_interval_ms IS NULL FROM webhooks WHERE id = $1",
            &[&id.as_uuid()],
        )
        .await
        .expect("webhook")
        .get(0);
    assert!(cleared);
    client
        .execute("UPDATE webhooks SET status = 'suspended', suspended_at = $2 WHERE id = $1", &[&id.as_uuid(), &now])
        .await
        .expect("suspended again");
    let later = now + FIRST - time::Duration::SECOND;
    assert!(store.claim_probes(later, FIRST, LEASE, 10).await.expect("claim").is_empty(), "not before the first wait");
    let claimed = store.claim_probes(now + FIRST, FIRST, LEASE, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].interval, FIRST);
    assert_ne!(claimed[0].event_id, target.event_id, "a new suspension, a new probe event");
}
