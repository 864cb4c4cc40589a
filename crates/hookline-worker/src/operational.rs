//! Operational events: a webhook's health changes, announced to its tenant.
//!
//! A trigger records every change (unhealthy, suspended, recovered,
//! disabled) in `webhook_health_changes`, in the transaction that makes it
//! (`hookline_store::health_change`), so the delivery path does nothing
//! more than write the webhook row it already writes. Each worker runs a
//! relay: every `HOOKLINE_OPERATIONAL_POLL_MS` it claims the changes that
//! are ready (a lease, so workers share them; a webhook's in order), builds
//! one event each and publishes it to the events exchange exactly as the
//! producer publishes an event (confirmed, `mandatory`), then marks them.
//! The event is dispatched like any other, to the webhooks of the tenant
//! that subscribe to it by name (`hookline.*`; `*` does not match it).
//!
//! Postgres is the record: a relay that dies after publishing and before
//! marking leaves the change to be published again once its lease ends, and
//! the event id is derived from the change (`hookline-change-<id>`), so the
//! second copy is a duplicate event id and is ignored at dispatch. A change
//! no active webhook of its tenant subscribes to is marked without an event.
//!
//! Flapping: a change between `healthy` and `unhealthy` waits
//! `HOOKLINE_OPERATIONAL_SETTLE_MS` before it is announced, and one that
//! undoes a change not yet announced cancels it (in the trigger). A receiver
//! failing every other request therefore produces no events while its
//! requests come faster than the settle time, and at most one event per
//! settle time when they come slower; suspensions, disables and recoveries
//! from a suspension are announced at once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use hookline_broker::EventMessage;
use hookline_core::{TenantId, format_timestamp};
use hookline_store::{Announced, ChangeKind, ClaimedChange};
use tokio_util::sync::CancellationToken;

use crate::startup::Context;

/// Most changes one round claims.
pub const BATCH: i64 = 100;

/// How long a claim lasts: longer than a round takes, short enough that a
/// change claimed by a worker that died is announced soon by another.
pub const LEASE: Duration = Duration::from_secs(10);

/// How long announced changes are kept (the webhook's health history).
pub const RETENTION: time::Duration = time::Duration::days(30);

/// How often a relay prunes changes past [`RETENTION`], and how many rows
/// it looks at each time.
const PRUNE: (Duration, i64) = (Duration::from_secs(60), 1000);

/// The longest wait between looks while rounds fail.
const FAULT_WAIT_MAX: Duration = Duration::from_secs(5);

/// How often and how patiently.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Between two looks when nothing was ready.
    pub poll: Duration,
    /// How long a change between `healthy` and `unhealthy` must hold.
    pub settle: Duration,
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The changes could not be read or marked.
    #[error(transparent)]
    Store(#[from] hookline_store::Error),
    /// An event could not be published (its change is taken again).
    #[error(transparent)]
    Broker(#[from] hookline_broker::Error),
}

/// Announces health changes until `shutdown` is cancelled.
pub(crate) async fn run(ctx: Arc<Context>, pace: Pace, shutdown: CancellationToken) {
    let mut pruned = tokio::time::Instant::now();
    let mut wait = pace.poll;
    loop {
        loop {
            // A round cut short by a stop leaves its claims to expire; the
            // next relay publishes them again under the same event ids.
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = round(&ctx, pace.settle) => result,
            };
            match result {
                Ok(n) if n == usize::try_from(BATCH).unwrap_or(usize::MAX) => wait = pace.poll,
                Ok(_) => {
                    wait = pace.poll;
                    break;
                }
                Err(e) => {
                    // The database or the broker is away: look again later
                    // and later (up to 5 s), not every poll.
                    wait = (wait * 2).min(FAULT_WAIT_MAX).max(pace.poll);
                    tracing::warn!(error.message = %e, retry_in = ?wait, "announcing health changes failed");
                    break;
                }
            }
        }
        if pruned.elapsed() >= PRUNE.0 {
            pruned = tokio::time::Instant::now();
            let before = time::OffsetDateTime::now_utc() - RETENTION;
            if let Err(e) = ctx.store.prune_health_changes(before, PRUNE.1).await {
                tracing::warn!(error.message = %e, "pruning old health changes failed");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One round: claim what is ready, publish an event for each change some
/// webhook subscribes to, mark them all. Returns how many were claimed.
pub async fn round(ctx: &Context, settle: Duration) -> Result<usize, RelayError> {
    let claimed = ctx.store.claim_health_changes(settle, LEASE, BATCH).await?;
    let mut done: Vec<Announced> = Vec::with_capacity(claimed.len());
    let mut subscribed: HashMap<(TenantId, ChangeKind), bool> = HashMap::new();
    for (i, claim) in claimed.iter().enumerate() {
        let change = &claim.change;
        let reason = reason(ctx, claim).await?;
        let wanted = match subscribed.get(&(change.tenant.clone(), change.kind)) {
            Some(wanted) => *wanted,
            None => {
                let wanted = ctx.store.subscribes(&change.tenant, &change.kind.event_type()).await?;
                subscribed.insert((change.tenant.clone(), change.kind), wanted);
                wanted
            }
        };
        let event_id = if wanted {
            if let Err(e) = ctx.publisher().publish_event(&message(claim, &reason)).await {
                ctx.store.mark_announced(&done).await?;
                let rest: Vec<i64> = claimed[i..].iter().map(|c| c.change.id).collect();
                ctx.store.release_health_changes(&rest).await?;
                return Err(e.into());
            }
            Some(change.derived_event_id())
        } else {
            None
        };
        let outcome = if wanted { "published" } else { "unsubscribed" };
        ctx.metrics.operational_events.inc(&[change.kind.as_str(), outcome]);
        tracing::info!(
            webhook_id = %change.webhook_id,
            tenant = %change.tenant,
            change = change.kind.as_str(),
            outcome,
            "webhook health change"
        );
        done.push(Announced { id: change.id, event_id, reason: change.reason.is_none().then_some(reason) });
    }
    ctx.store.mark_announced(&done).await?;
    Ok(claimed.len())
}

/// Why the change happened: as recorded (a recovery, a disable), else the
/// failed attempt's reason, else the failure count.
async fn reason(ctx: &Context, claim: &ClaimedChange) -> Result<String, hookline_store::Error> {
    let change = &claim.change;
    if let Some(reason) = &change.reason {
        return Ok(reason.clone());
    }
    let found = if change.kind.is_failure() {
        ctx.store.failure_reason(change.webhook_id, change.consecutive_failures, change.at).await?
    } else {
        None
    };
    Ok(found.unwrap_or_else(|| format!("{} consecutive failures", change.consecutive_failures)))
}

/// The event announcing a change: type `hookline.webhook.<kind>`, id
/// `hookline-change-<id>`, the webhook's tenant, the time of the change.
pub fn message(claim: &ClaimedChange, reason: &str) -> EventMessage {
    let change = &claim.change;
    EventMessage {
        event: change.kind.event_type().to_string(),
        data: data(claim, reason),
        id: Some(change.derived_event_id().to_string()),
        triggered_at: Some(format_timestamp(change.at)),
        tenant: Some(change.tenant.to_string()),
    }
}

/// The event's `data`, a public contract (documented in the README; fields
/// may be added, never changed): the webhook (id, name, URL, active), its
/// `status` and `previousStatus`, the `reason`, its `consecutiveFailures`
/// and `changedAt`.
pub fn data(claim: &ClaimedChange, reason: &str) -> serde_json::Value {
    let change = &claim.change;
    serde_json::json!({
        "webhook": {
            "id": change.webhook_id.to_string(),
            "name": claim.name.as_str(),
            "url": claim.url.as_str(),
            "active": claim.active,
        },
        "status": change.to.as_str(),
        "previousStatus": change.from.as_str(),
        "reason": reason,
        "consecutiveFailures": change.consecutive_failures,
        "changedAt": format_timestamp(change.at),
    })
}

#[cfg(test)]
mod tests {
    use hookline_core::{HealthStatus, WebhookId, WebhookName, WebhookUrl};
    use hookline_store::HealthChange;

    use super::*;

    /// The event's shape, byte for byte: type, id, tenant, time and data.
    #[test]
    fn event_shape() {
        let claim = ClaimedChange {
            change: HealthChange {
                id: 42,
                webhook_id: WebhookId::from_uuid(uuid::Uuid::nil()),
                tenant: TenantId::parse("acct-1").expect("valid"),
                kind: ChangeKind::Suspended,
                from: HealthStatus::Unhealthy,
                to: HealthStatus::Suspended,
                consecutive_failures: 50,
                reason: None,
                at: time::macros::datetime!(2026-11-30 10:00:00.25 UTC),
                published_at: None,
                event_id: None,
            },
            name: WebhookName::parse("CRM sync").expect("valid"),
            url: WebhookUrl::parse("https://crm.example.com/hooks").expect("valid"),
            active: true,
        };
        let m = message(&claim, "HTTP 503; webhook suspended after 50 consecutive failures");
        assert_eq!(
            (m.event.as_str(), m.id.as_deref(), m.tenant.as_deref(), m.triggered_at.as_deref()),
            ("hookline.webhook.suspended", Some("hookline-change-42"), Some("acct-1"), Some("2026-11-30T10:00:00.25Z"))
        );
        assert_eq!(
            m.data,
            serde_json::json!({
                "webhook": {
                    "id": "00000000-0000-0000-0000-000000000000",
                    "name": "CRM sync",
                    "url": "https://crm.example.com/hooks",
                    "active": true,
                },
                "status": "suspended",
                "previousStatus": "unhealthy",
                "reason": "HTTP 503; webhook suspended after 50 consecutive failures",
                "consecutiveFailures": 50,
                "changedAt": "2026-11-30T10:00:00.25Z",
            })
        );
        assert!(m.check().expect("a valid event").event_type.is_reserved());
    }
}
