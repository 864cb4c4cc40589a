//! Health changes: what the trigger records, how flaps cancel, how relays
//! claim and mark them.

use std::time::Duration;

use hookline_core::{EventType, HealthStatus, TenantId, WebhookId};
use hookline_store::{Announced, ChangeKind, ClaimedChange, Store, WebhookPatch};
use hookline_testkit::TestDb;
use time::OffsetDateTime;

use super::{attempt, deliveries_for, fail, store, webhook};

const LEASE: Duration = Duration::from_secs(30);
const NOW: Duration = Duration::ZERO;

async fn set_status(db: &TestDb, webhook: WebhookId, status: &str, failures: i32) {
    db.client()
        .await
        .execute(
            "UPDATE webhooks SET status = $2, consecutive_failures = $3 WHERE id = $1",
            &[&webhook.as_uuid(), &status, &failures],
        )
        .await
        .expect("update");
}

async fn kinds(store: &Store, webhook: WebhookId) -> Vec<(ChangeKind, HealthStatus, HealthStatus)> {
    let mut changes = store.health_changes(None, webhook, 100).await.expect("list");
    changes.reverse();
    changes.into_iter().map(|c| (c.kind, c.from, c.to)).collect()
}

async fn announce(store: &Store, claimed: &[ClaimedChange]) {
    let done: Vec<Announced> = claimed
        .iter()
        .map(|c| Announced { id: c.change.id, event_id: Some(c.change.derived_event_id()), reason: None })
        .collect();
    store.mark_announced(&done).await.expect("mark");
}

/// Every status change and a disable is recorded, by whichever statement
/// makes it, with its kind, statuses, failures and (for a recovery or a
/// disable) its reason; writes that change nothing record nothing.
#[tokio::test]
async fn every_change_is_recorded() {
    use HealthStatus::{Healthy, Suspended, Unhealthy};
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (w, ids) = deliveries_for(&store, 1).await;
    fail(&store, ids[0]).await.expect("recorded");
    fail(&store, ids[0]).await.expect("recorded");
    set_status(&db, w, "suspended", 2).await;
    set_status(&db, w, "suspended", 3).await;
    store.resume_webhook(w, None, OffsetDateTime::now_utc()).await.expect("resume").expect("exists");
    let now = OffsetDateTime::now_utc();
    store
        .update_webhook(w, None, &WebhookPatch { active: Some(false), ..Default::default() }, now)
        .await
        .expect("patch");
    store
        .update_webhook(w, None, &WebhookPatch { active: Some(false), ..Default::default() }, now)
        .await
        .expect("again");
    assert_eq!(
        kinds(&store, w).await,
        [
            (ChangeKind::Unhealthy, Healthy, Unhealthy),
            (ChangeKind::Suspended, Unhealthy, Suspended),
            (ChangeKind::Recovered, Suspended, Healthy),
            (ChangeKind::Disabled, Healthy, Healthy),
        ]
    );
    let changes = store.health_changes(None, w, 10).await.expect("list");
    assert_eq!(changes[0].reason.as_deref(), Some("disabled"));
    assert_eq!(changes[1].reason.as_deref(), Some("resumed by API"));
    assert_eq!((changes[2].consecutive_failures, changes[2].reason.as_deref()), (2, None));
    assert_eq!(changes[3].consecutive_failures, 1);
    assert_eq!(changes[0].tenant.as_str(), "default");
    assert!(changes.iter().all(|c| c.published_at.is_none() && c.event_id.is_none()));
    let other = TenantId::parse("other").expect("valid");
    assert!(store.health_changes(Some(&other), w, 10).await.expect("list").is_empty(), "scoped to the tenant");
    db.client().await.execute("DELETE FROM webhooks WHERE id = $1", &[&w.as_uuid()]).await.expect("delete");
    assert!(store.health_changes(None, w, 10).await.expect("list").is_empty(), "deleted with the webhook");
}

/// A success recovers a webhook with the reason "a delivery succeeded",
/// and a failure change's reason is read from its attempt.
#[tokio::test]
async fn reasons_come_from_what_changed_it() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let (w, ids) = deliveries_for(&store, 2).await;
    fail(&store, ids[0]).await.expect("recorded");
    let claimed = store.claim_health_changes(NOW, LEASE, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let unhealthy = &claimed[0].change;
    assert_eq!(
        store.failure_reason(w, unhealthy.consecutive_failures, unhealthy.at).await.expect("reason").as_deref(),
        Some("HTTP 500")
    );
    assert_eq!(
        (claimed[0].name.as_str(), claimed[0].url.as_str(), claimed[0].active),
        ("w", "https://example.com/h", true)
    );
    announce(&store, &claimed).await;
    store.record_successes(&[attempt(ids[1], Some(200))], &[], OffsetDateTime::now_utc()).await.expect("success");
    let changes = store.health_changes(None, w, 10).await.expect("list");
    assert_eq!((changes[0].kind, changes[0].reason.as_deref()), (ChangeKind::Recovered, Some("a delivery succeeded")));
    assert_eq!(
        changes[1].event_id.as_ref().map(|e| e.as_str().to_owned()),
        Some(format!("hookline-change-{}", changes[1].id))
    );
    assert!(changes[1].published_at.is_some());
    assert_eq!(store.failure_reason(w, 7, OffsetDateTime::now_utc()).await.expect("reason"), None, "no such attempt");
}

/// healthy → unhealthy → healthy before the first change is announced
/// leaves nothing; once a relay has claimed a change, the change back is
/// recorded (it will be announced too).
#[tokio::test]
async fn a_flap_cancels_an_unannounced_change() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let w = webhook(&store, "default", &["*"], true).await;
    for _ in 0..3 {
        set_status(&db, w, "unhealthy", 1).await;
        set_status(&db, w, "healthy", 0).await;
    }
    assert!(kinds(&store, w).await.is_empty(), "flaps cancel out");
    set_status(&db, w, "unhealthy", 1).await;
    let claimed = store.claim_health_changes(NOW, LEASE, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    set_status(&db, w, "healthy", 0).await;
    assert_eq!(kinds(&store, w).await.len(), 2, "a claimed change is not cancelled");
    announce(&store, &claimed).await;
    // Announced unhealthy, then healthy pending: failing again cancels the
    // pending recovery (the webhook is unhealthy, as announced).
    set_status(&db, w, "unhealthy", 1).await;
    let changes = store.health_changes(None, w, 10).await.expect("list");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Unhealthy);
    // A suspension is never cancelled, nor a recovery from it.
    set_status(&db, w, "suspended", 50).await;
    set_status(&db, w, "healthy", 0).await;
    set_status(&db, w, "unhealthy", 1).await;
    assert_eq!(kinds(&store, w).await.len(), 4);
}

/// A change waits for the settle time unless it is a suspension or a
/// disable or a later change follows it; a webhook's changes are claimed
/// one at a time in order; a claim excludes other relays until released
/// or expired.
#[tokio::test]
async fn claims_settle_keep_order_and_lease() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let settle = Duration::from_secs(3600);
    let a = webhook(&store, "default", &["*"], true).await;
    let b = webhook(&store, "default", &["*"], true).await;
    set_status(&db, a, "unhealthy", 1).await;
    set_status(&db, b, "suspended", 1).await;
    let claimed = store.claim_health_changes(settle, LEASE, 10).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|c| (c.change.webhook_id, c.change.kind)).collect::<Vec<_>>(),
        [(b, ChangeKind::Suspended)]
    );
    announce(&store, &claimed).await;
    set_status(&db, a, "suspended", 50).await;
    let first = store.claim_health_changes(settle, LEASE, 10).await.expect("claim");
    assert_eq!(first.iter().map(|c| c.change.kind).collect::<Vec<_>>(), [ChangeKind::Unhealthy], "followed: ready");
    assert!(store.claim_health_changes(settle, LEASE, 10).await.expect("claim").is_empty(), "claimed, then in order");
    store.release_health_changes(&[first[0].change.id]).await.expect("release");
    let again = store.claim_health_changes(settle, Duration::from_millis(1), 10).await.expect("claim");
    assert_eq!(again.len(), 1, "released");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let expired = store.claim_health_changes(settle, LEASE, 10).await.expect("claim");
    assert_eq!(expired.iter().map(|c| c.change.id).collect::<Vec<_>>(), [first[0].change.id], "lease expired");
    announce(&store, &expired).await;
    let next = store.claim_health_changes(settle, LEASE, 10).await.expect("claim");
    assert_eq!(next.iter().map(|c| c.change.kind).collect::<Vec<_>>(), [ChangeKind::Suspended]);
    announce(&store, &next).await;
    assert!(store.claim_health_changes(NOW, LEASE, 10).await.expect("claim").is_empty());
    assert_eq!(
        store.prune_health_changes(OffsetDateTime::now_utc() - time::Duration::hours(1), 100).await.expect("prune"),
        0
    );
    assert_eq!(
        store.prune_health_changes(OffsetDateTime::now_utc() + time::Duration::hours(1), 100).await.expect("prune"),
        3
    );
}

/// Only an active webhook of the tenant whose patterns name the type
/// subscribes to an operational event; `*` does not.
#[tokio::test]
async fn subscribers_are_explicit() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let tenant = |t: &str| TenantId::parse(t).expect("valid");
    let suspended = EventType::parse("hookline.webhook.suspended").expect("valid");
    webhook(&store, "a", &["*"], true).await;
    webhook(&store, "b", &["hookline.*"], false).await;
    webhook(&store, "c", &["*", "hookline.webhook.disabled"], true).await;
    webhook(&store, "d", &["license.*", "hookline.webhook.*"], true).await;
    for (t, expected) in [("a", false), ("b", false), ("c", false), ("d", true), ("e", false)] {
        assert_eq!(store.subscribes(&tenant(t), &suspended).await.expect("read"), expected, "{t}");
    }
    let disabled = ChangeKind::Disabled.event_type();
    assert!(store.subscribes(&tenant("c"), &disabled).await.expect("read"));
    assert_eq!(disabled.as_str(), "hookline.webhook.disabled");
}
