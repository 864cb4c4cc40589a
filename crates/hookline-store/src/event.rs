//! Recording an event and fanning it out into one delivery per subscribed,
//! active webhook of the event's tenant.
//!
//! Idempotent: an event id seen before creates no second set of deliveries.
//! `events.dispatched_at` tells a duplicate (already published) from a
//! redelivery after a crash between commit and publish (still to publish).

use hookline_core::{
    DeliveryId, DeliveryState, EventFilters, EventId, EventType, HealthStatus, TenantId, Trigger, WebhookId,
    fence::truncate_ms,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Due, Error, Result, Store};

/// An event about to be recorded.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The account it belongs to.
    pub tenant: TenantId,
    /// Its id: client-chosen, or generated at ingestion.
    pub id: EventId,
    /// Its type, which webhooks subscribe to.
    pub event_type: EventType,
    /// The exact bytes to POST and sign (shared, never copied per delivery).
    pub body: bytes::Bytes,
    /// When the producer says it happened.
    pub triggered_at: OffsetDateTime,
    /// When the producer accepted it (none for events published straight
    /// to the exchange).
    pub ingested_at: Option<OffsetDateTime>,
    /// The time its delivery ids carry: when the producer accepted it, or
    /// (published straight to the exchange) when it was first seen.
    pub accepted_at: OffsetDateTime,
}

impl NewEvent {
    /// Its delivery to `webhook`: the same id whichever worker fans it out,
    /// and however often ([`DeliveryId::derive`]).
    pub fn delivery_id(&self, webhook: WebhookId) -> DeliveryId {
        DeliveryId::derive(&self.tenant, &self.id, webhook, hookline_core::fence::unix_ms(self.accepted_at))
    }
}

/// What the caller must publish after [`Store::record_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Publish one delivery message for each step (possibly none), due at
    /// its time, then call [`Store::mark_dispatched`].
    Publish(Vec<Due>),
    /// The event was recorded and published before: nothing to do.
    Duplicate,
}

impl Store {
    /// Records the event and its deliveries in one transaction and says which
    /// deliveries still need a message. Delivery ids are derived
    /// ([`NewEvent::delivery_id`]).
    ///
    /// A new event's deliveries are due at `now`. An event seen before and
    /// not yet dispatched is a redelivery: another worker may still be
    /// attempting its pending deliveries straight from the event (for up to
    /// `in_progress_for` after it was received), so each pending delivery
    /// without a due time gets one at the end of that lease (or `now`, if
    /// later); a message published for it then acts only if nothing else
    /// did first.
    pub async fn record_event(
        &self,
        event: &NewEvent,
        now: OffsetDateTime,
        in_progress_for: time::Duration,
    ) -> Result<Dispatch> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(
                &tx.prepare_cached(
                    "INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at, ingested_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, id) DO NOTHING",
                )
                .await?,
                &[
                    &event.tenant.as_str(),
                    &event.id.as_str(),
                    &event.event_type.as_str(),
                    &event.body.as_ref(),
                    &event.triggered_at,
                    &now,
                    &event.ingested_at,
                ],
            )
            .await?;

        if inserted == 0 {
            let row = tx
                .query_one(
                    &tx.prepare_cached(
                        "SELECT dispatched_at IS NOT NULL AS dispatched, received_at FROM events
                     WHERE tenant = $1 AND id = $2",
                    )
                    .await?,
                    &[&event.tenant.as_str(), &event.id.as_str()],
                )
                .await?;
            if row.try_get::<_, bool>("dispatched")? {
                return Ok(Dispatch::Duplicate);
            }
            let received_at: OffsetDateTime = row.try_get("received_at")?;
            let due = truncate_ms((received_at + in_progress_for).max(now));
            let rows = tx
                .query(
                    &tx.prepare_cached(
                        "UPDATE deliveries SET next_attempt_at = $3
                     WHERE tenant = $1 AND event_id = $2 AND state = 'pending' AND next_attempt_at IS NULL
                     RETURNING id, webhook_id",
                    )
                    .await?,
                    &[&event.tenant.as_str(), &event.id.as_str(), &due],
                )
                .await?;
            tx.commit().await?;
            let mut steps = rows
                .iter()
                .map(|r| {
                    Ok(Due {
                        id: DeliveryId::from_uuid(r.try_get("id")?),
                        webhook_id: WebhookId::from_uuid(r.try_get("webhook_id")?),
                        at: due,
                        trigger: Trigger::Scheduled,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            steps.sort_by_key(|d| d.id);
            return Ok(Dispatch::Publish(steps));
        }

        let rows = tx
            .query(
                &tx.prepare_cached("SELECT id, events, status FROM webhooks WHERE tenant = $1 AND active").await?,
                &[&event.tenant.as_str()],
            )
            .await?;
        let due = truncate_ms(now);
        let mut ids: Vec<Uuid> = Vec::new();
        let mut webhooks: Vec<Uuid> = Vec::new();
        let mut states: Vec<&'static str> = Vec::new();
        let mut to_publish = Vec::new();
        for row in &rows {
            let events: Vec<String> = row.try_get("events")?;
            let filters = EventFilters::parse(&events).map_err(|e| Error::corrupt("webhooks", e))?;
            if !filters.matches(&event.event_type) {
                continue;
            }
            let status = HealthStatus::parse(row.try_get("status")?).map_err(|e| Error::corrupt("webhooks", e))?;
            let webhook: Uuid = row.try_get("id")?;
            let id = event.delivery_id(WebhookId::from_uuid(webhook));
            let state = if status == HealthStatus::Suspended {
                DeliveryState::Suspended
            } else {
                to_publish.push(Due {
                    id,
                    webhook_id: WebhookId::from_uuid(webhook),
                    at: due,
                    trigger: Trigger::Scheduled,
                });
                DeliveryState::Pending
            };
            ids.push(id.as_uuid());
            webhooks.push(webhook);
            states.push(state.as_str());
        }
        if !ids.is_empty() {
            tx.execute(
                &tx.prepare_cached("INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, next_attempt_at, created_at,
                                         updated_at)
                 SELECT d.id, $4, $5, d.webhook_id, $6, d.state, CASE WHEN d.state = 'pending' THEN $8::timestamptz END, $7, $7
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS d (id, webhook_id, state)").await?,
                &[
                    &ids,
                    &webhooks,
                    &states,
                    &event.tenant.as_str(),
                    &event.id.as_str(),
                    &event.event_type.as_str(),
                    &now,
                    &due,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Dispatch::Publish(to_publish))
    }

    /// Notes that every delivery message of the event has been confirmed by
    /// the broker, so a redelivered copy of the event is a duplicate.
    pub async fn mark_dispatched(&self, tenant: &TenantId, id: &EventId, now: OffsetDateTime) -> Result<()> {
        self.mark_dispatched_many(&[(tenant.clone(), id.clone())], now).await
    }
}
