//! A webhook's health changes, the record behind operational events.
//!
//! A trigger on `webhooks` (migration V0010) writes a row whenever a
//! webhook becomes `unhealthy`, `suspended` or `healthy` again, or is
//! disabled, in the transaction that makes the change, whichever code path
//! that is; a change between `healthy` and `unhealthy` that undoes one not
//! yet announced cancels it instead (flapping). Workers' relays claim the
//! rows that are ready ([`Store::claim_health_changes`]), publish one event
//! each and mark them ([`Store::mark_announced`]). The rows stay as the
//! webhook's history ([`Store::health_changes`]) until pruned.

use hookline_core::{EventId, EventType, HealthStatus, TenantId, WebhookId, WebhookName, WebhookUrl};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::{Error, Result, Store};

/// What happened to a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Healthy, now failing.
    Unhealthy,
    /// Suspended: too many failures in a row, or `410 Gone`.
    Suspended,
    /// Healthy again, from unhealthy or suspended.
    Recovered,
    /// Its active flag was set to false.
    Disabled,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Unhealthy, Self::Suspended, Self::Recovered, Self::Disabled];

    /// The name stored (and the last segment of the event type).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unhealthy => "unhealthy",
            Self::Suspended => "suspended",
            Self::Recovered => "recovered",
            Self::Disabled => "disabled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The operational event's type: `hookline.webhook.<kind>`.
    pub fn event_type(self) -> EventType {
        EventType::parse(&format!("hookline.webhook.{}", self.as_str()))
            .expect("`hookline.webhook.` and a lowercase word is a valid event type")
    }

    /// Whether a failed attempt caused it (its reason is that attempt's).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Unhealthy | Self::Suspended)
    }
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthChange {
    /// Its number, increasing (and so in order for one webhook).
    pub id: i64,
    /// The webhook.
    pub webhook_id: WebhookId,
    /// The webhook's account; the event goes to this tenant.
    pub tenant: TenantId,
    /// What happened.
    pub kind: ChangeKind,
    /// The status before.
    pub from: HealthStatus,
    /// The status after (for `disabled`, the status it was disabled in).
    pub to: HealthStatus,
    /// Consecutive failures after the change.
    pub consecutive_failures: i32,
    /// Why, once known (see the table's comment).
    pub reason: Option<String>,
    /// When (the database's clock, in the changing transaction).
    pub at: OffsetDateTime,
    /// When it was announced (or found to have no subscriber).
    pub published_at: Option<OffsetDateTime>,
    /// The event published for it, if one was.
    pub event_id: Option<EventId>,
}

impl HealthChange {
    /// The id of its event, derived from the change so that publishing it
    /// twice (a relay that died before marking it) records one event.
    pub fn derived_event_id(&self) -> EventId {
        EventId::parse(&format!("hookline-change-{}", self.id))
            .expect("`hookline-change-` and digits is a valid event id")
    }
}

/// A change a relay has claimed, with what its event says of the webhook.
#[derive(Clone, Debug)]
pub struct ClaimedChange {
    /// The change.
    pub change: HealthChange,
    /// The webhook's name now.
    pub name: WebhookName,
    /// The webhook's URL now.
    pub url: WebhookUrl,
    /// Whether it is active now.
    pub active: bool,
}

/// A claimed change done with: its event published, or none needed.
#[derive(Clone, Debug)]
pub struct Announced {
    /// The change.
    pub id: i64,
    /// The event published (`None`: no webhook subscribes to it).
    pub event_id: Option<EventId>,
    /// The reason, when the row had none (a failure's).
    pub reason: Option<String>,
}

/// Most deliveries of a webhook, newest first, searched for the failed
/// attempt behind a change (a change is read within a second or so of it,
/// so its attempt is among the latest; the search is bounded all the same).
const REASON_SEARCH: i64 = 2000;

const COLUMNS: &str = "c.id, c.webhook_id, c.tenant, c.kind, c.from_status, c.to_status, c.consecutive_failures, \
     c.reason, c.at, c.published_at, c.event_id";

fn from_row(row: &Row) -> Result<HealthChange> {
    let bad = |e: &dyn std::fmt::Display| Error::corrupt("webhook_health_changes", e);
    let kind: &str = row.try_get("kind")?;
    Ok(HealthChange {
        id: row.try_get("id")?,
        webhook_id: WebhookId::from_uuid(row.try_get("webhook_id")?),
        tenant: TenantId::parse(row.try_get("tenant")?).map_err(|e| bad(&e))?,
        kind: ChangeKind::parse(kind).ok_or_else(|| bad(&format!("unknown kind `{kind}`")))?,
        from: HealthStatus::parse(row.try_get("from_status")?).map_err(|e| bad(&e))?,
        to: HealthStatus::parse(row.try_get("to_status")?).map_err(|e| bad(&e))?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        reason: row.try_get("reason")?,
        at: row.try_get("at")?,
        published_at: row.try_get("published_at")?,
        event_id: row.try_get::<_, Option<&str>>("event_id")?.map(EventId::parse).transpose().map_err(|e| bad(&e))?,
    })
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Store {
    /// Claims up to `limit` changes ready to be announced, each for `lease`
    /// (another relay takes it once that has passed), oldest first. Ready:
    /// not announced nor claimed, no earlier change of its webhook waiting
    /// (so a webhook's events go out in order), and either not part of a
    /// flap (`suspended`, `disabled`, recovered from suspended) or held
    /// `settle` (time for a flap to cancel it) or followed by a later
    /// change (it held: the webhook moved on).
    pub async fn claim_health_changes(
        &self,
        settle: std::time::Duration,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<ClaimedChange>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "UPDATE webhook_health_changes c
                         SET claimed_until = clock_timestamp() + $2::float8 * interval '1 millisecond'
                         FROM webhooks w
                         WHERE w.id = c.webhook_id AND c.id IN (
                            SELECT h.id FROM webhook_health_changes h
                            WHERE h.published_at IS NULL
                              AND (h.claimed_until IS NULL OR h.claimed_until < clock_timestamp())
                              AND NOT EXISTS (SELECT 1 FROM webhook_health_changes e
                                              WHERE e.webhook_id = h.webhook_id AND e.published_at IS NULL
                                                AND e.id < h.id)
                              AND (h.kind IN ('suspended', 'disabled') OR h.from_status = 'suspended'
                                   OR h.at <= clock_timestamp() - $1::float8 * interval '1 millisecond'
                                   OR EXISTS (SELECT 1 FROM webhook_health_changes l
                                              WHERE l.webhook_id = h.webhook_id AND l.published_at IS NULL
                                                AND l.id > h.id))
                            ORDER BY h.id
                            LIMIT $3
                            FOR UPDATE SKIP LOCKED)
                         RETURNING c.id, c.webhook_id, c.tenant, c.kind, c.from_status, c.to_status,
                                   c.consecutive_failures, c.reason, c.at, c.published_at, c.event_id,
                                   w.name, w.url, w.active",
                    )
                    .await?,
                &[&millis(settle), &millis(lease), &limit],
            )
            .await?;
        let bad = |e: &dyn std::fmt::Display| Error::corrupt("webhooks", e);
        let mut claimed: Vec<ClaimedChange> = rows
            .iter()
            .map(|row| {
                Ok(ClaimedChange {
                    change: from_row(row)?,
                    name: WebhookName::parse(row.try_get("name")?).map_err(|e| bad(&e))?,
                    url: WebhookUrl::parse_stored(row.try_get("url")?).map_err(|e| bad(&e))?,
                    active: row.try_get("active")?,
                })
            })
            .collect::<Result<_>>()?;
        claimed.sort_by_key(|c| c.change.id);
        Ok(claimed)
    }

    /// Why a failure change happened: the reason recorded with the failed
    /// attempt that brought the webhook to `failures` consecutive failures,
    /// the one recorded nearest `at` (`HTTP 503; webhook suspended after 50
    /// consecutive failures`), else its status code or error. `None` when
    /// it is not among the webhook's latest deliveries.
    pub async fn failure_reason(
        &self,
        webhook: WebhookId,
        failures: i32,
        at: OffsetDateTime,
    ) -> Result<Option<String>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT a.retry_reason, a.status_code, a.error_kind
                         FROM (SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $4) d
                         JOIN attempts a ON a.delivery_id = d.id
                         WHERE a.failure_count = $2
                         ORDER BY abs(extract(epoch FROM a.recorded_at - $3::timestamptz)), a.recorded_at DESC
                         LIMIT 1",
                    )
                    .await?,
                &[&webhook.as_uuid(), &failures, &at, &REASON_SEARCH],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let reason: Option<String> = row.try_get("retry_reason")?;
        let status: Option<i32> = row.try_get("status_code")?;
        let error: Option<String> = row.try_get("error_kind")?;
        Ok(reason.or_else(|| status.map(|s| format!("HTTP {s}"))).or_else(|| error.map(|e| format!("{e} error"))))
    }

    /// Whether an active webhook of `tenant` subscribes to `event_type` (by
    /// core's matching: `*` never takes Hookline's own types). Only
    /// webhooks with a pattern in the `hookline` namespace are read.
    pub async fn subscribes(&self, tenant: &TenantId, event_type: &EventType) -> Result<bool> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT events FROM webhooks
                         WHERE tenant = $1 AND active
                           AND EXISTS (SELECT 1 FROM unnest(events) AS e WHERE lower(e) LIKE 'hookline%')",
                    )
                    .await?,
                &[&tenant.as_str()],
            )
            .await?;
        for row in &rows {
            let events: Vec<String> = row.try_get("events")?;
            let filters = hookline_core::EventFilters::parse(&events).map_err(|e| Error::corrupt("webhooks", e))?;
            if filters.matches(event_type) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Marks claimed changes announced, with their event (if any) and the
    /// reason found for them.
    pub async fn mark_announced(&self, done: &[Announced]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = done.iter().map(|d| d.id).collect();
        let events: Vec<Option<&str>> = done.iter().map(|d| d.event_id.as_ref().map(EventId::as_str)).collect();
        let reasons: Vec<Option<&str>> = done.iter().map(|d| d.reason.as_deref()).collect();
        let client = self.pool.get().await?;
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE webhook_health_changes c
                         SET published_at = clock_timestamp(), claimed_until = NULL, event_id = m.event_id,
                             reason = COALESCE(c.reason, m.reason)
                         FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS m (id, event_id, reason)
                         WHERE c.id = m.id",
                    )
                    .await?,
                &[&ids, &events, &reasons],
            )
            .await?;
        Ok(())
    }

    /// Gives claimed changes back (their event could not be published), so
    /// the next round takes them again without waiting for the lease.
    pub async fn release_health_changes(&self, ids: &[i64]) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE webhook_health_changes SET claimed_until = NULL WHERE id = ANY($1) AND published_at IS NULL",
                &[&ids],
            )
            .await?;
        Ok(())
    }

    /// A webhook's latest health changes, newest first (those a flap
    /// cancelled are not among them); empty when the webhook does not exist
    /// for `tenant`.
    pub async fn health_changes(
        &self,
        tenant: Option<&TenantId>,
        webhook: WebhookId,
        limit: i64,
    ) -> Result<Vec<HealthChange>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM webhook_health_changes c
                     WHERE c.webhook_id = $1 AND ($2::text IS NULL OR c.tenant = $2)
                     ORDER BY c.at DESC, c.id DESC LIMIT $3"
                ),
                &[&webhook.as_uuid(), &tenant.map(TenantId::as_str), &limit],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes announced changes from before `before`, looking at the
    /// `limit` oldest rows only (one bounded statement; called again and
    /// again, it keeps the table to its retention). Returns how many went.
    pub async fn prune_health_changes(&self, before: OffsetDateTime, limit: i64) -> Result<u64> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM webhook_health_changes
                 WHERE id IN (SELECT id FROM webhook_health_changes ORDER BY id LIMIT $2)
                   AND published_at IS NOT NULL AND published_at < $1",
                &[&before, &limit],
            )
            .await?)
    }
}
