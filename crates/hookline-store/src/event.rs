//! Recording events, the careful way: each new event with one delivery per
//! subscribed, active webhook of its tenant ([`crate::fanout`]), in one
//! transaction per batch (group commit), before anything is attempted.
//!
//! Idempotent: an event id seen before creates no second set of deliveries.
//! `events.dispatched_at` tells a duplicate (already published) from a
//! redelivery after a crash between commit and publish (still to publish).

use std::collections::HashSet;

use hookline_core::{DeliveryId, DeliveryState, EventId, EventType, HealthStatus, TenantId, Trigger, WebhookId, fence};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Due, FreshDelivery, Result, Store, fanout::active_webhooks};

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
        DeliveryId::derive(&self.tenant, &self.id, webhook, fence::unix_ms(self.accepted_at))
    }
}

/// Which event: its tenant and id (the events table's key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventKey {
    /// The account it belongs to.
    pub tenant: TenantId,
    /// Its id within the account.
    pub id: EventId,
}

impl NewEvent {
    /// Its key.
    pub fn key(&self) -> EventKey {
        EventKey { tenant: self.tenant.clone(), id: self.id.clone() }
    }
}

/// What recording one event of a batch gave.
#[derive(Clone, Debug)]
pub enum RecordedEvent {
    /// A new event: its deliveries to attempt now (suspended webhooks'
    /// deliveries are recorded as held and not listed).
    Fresh(Vec<FreshDelivery>),
    /// Seen before: what is left to publish for it.
    Seen(Dispatch),
}

/// What the caller must publish for an event seen before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Publish one delivery message for each step (possibly none), due at
    /// its time, then mark the event dispatched
    /// ([`Store::mark_dispatched`]).
    Publish(Vec<Due>),
    /// The event was recorded and published before: nothing to do.
    Duplicate,
}

/// Inserts events from arrays (one element per event), skipping those
/// recorded already; the one text every path that records events uses.
/// Arguments: the parameter numbers of `received_at` (a timestamptz), of
/// `dispatched_at` (a timestamptz, or `NULL`), and of the first of six
/// arrays: tenants, ids, types, bodies, triggered-at and ingested-at times.
macro_rules! insert_events {
    ($received:literal, $dispatched:literal, $t:literal, $i:literal, $y:literal, $b:literal, $tr:literal, $in:literal) => {
        concat!(
            "INSERT INTO events (tenant, id, event_type, body, triggered_at, received_at, ingested_at, dispatched_at)
             SELECT e.tenant, e.id, e.event_type, e.body, e.triggered_at, ",
            $received,
            ", e.ingested_at, ",
            $dispatched,
            "::timestamptz
             FROM UNNEST(",
            $t,
            "::text[], ",
            $i,
            "::text[], ",
            $y,
            "::text[], ",
            $b,
            "::bytea[], ",
            $tr,
            "::timestamptz[], ",
            $in,
            "::timestamptz[])
                  AS e (tenant, id, event_type, body, triggered_at, ingested_at)
             ON CONFLICT (tenant, id) DO NOTHING"
        )
    };
}
pub(crate) use insert_events;

/// The columns of a batch of events, as [`insert_events!`] takes them.
pub(crate) struct EventColumns<'a> {
    pub(crate) tenants: Vec<&'a str>,
    pub(crate) ids: Vec<&'a str>,
    pub(crate) types: Vec<&'a str>,
    pub(crate) bodies: Vec<&'a [u8]>,
    pub(crate) triggered: Vec<OffsetDateTime>,
    pub(crate) ingested: Vec<Option<OffsetDateTime>>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn of(events: impl Iterator<Item = &'a NewEvent> + Clone) -> Self {
        Self {
            tenants: events.clone().map(|e| e.tenant.as_str()).collect(),
            ids: events.clone().map(|e| e.id.as_str()).collect(),
            types: events.clone().map(|e| e.event_type.as_str()).collect(),
            bodies: events.clone().map(|e| e.body.as_ref()).collect(),
            triggered: events.clone().map(|e| e.triggered_at).collect(),
            ingested: events.map(|e| e.ingested_at).collect(),
        }
    }
}

impl Store {
    /// Records a batch of events in one transaction: each new one with one
    /// delivery per subscribed, active webhook of its tenant, to attempt at
    /// once (pending, no due time: the unacked event message covers them
    /// until the caller marks the event dispatched). An event seen before (a
    /// redelivery, a repeated id, or an id twice in `events`) is handled one
    /// by one afterwards ([`Store::redelivered`]). Results are in the order
    /// of `events`.
    pub async fn record_events(
        &self,
        events: &[NewEvent],
        now: OffsetDateTime,
        in_progress_for: time::Duration,
    ) -> Result<Vec<RecordedEvent>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let c = EventColumns::of(events.iter());
        let inserted = tx
            .query(
                &tx.prepare_cached(concat!(
                    insert_events!("$7", "NULL", "$1", "$2", "$3", "$4", "$5", "$6"),
                    " RETURNING tenant, id"
                ))
                .await?,
                &[&c.tenants, &c.ids, &c.types, &c.bodies, &c.triggered, &c.ingested, &now],
            )
            .await?;
        let mut fresh: HashSet<(String, String)> =
            inserted.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        let by_tenant = active_webhooks(&tx, &c.tenants).await?;

        let mut d_ids: Vec<Uuid> = Vec::new();
        let mut d_webhooks: Vec<Uuid> = Vec::new();
        let mut d_states: Vec<&'static str> = Vec::new();
        let mut d_events: Vec<&NewEvent> = Vec::new();
        let mut results: Vec<Option<RecordedEvent>> = Vec::with_capacity(events.len());
        for event in events {
            // `remove`: an id twice in one batch is fresh once.
            if !fresh.remove(&(event.tenant.as_str().to_owned(), event.id.as_str().to_owned())) {
                results.push(None);
                continue;
            }
            let mut attempts = Vec::new();
            for delivery in self.fan_out(event, &by_tenant)? {
                let state = if delivery.status == HealthStatus::Suspended {
                    DeliveryState::Suspended
                } else {
                    DeliveryState::Pending
                };
                d_ids.push(delivery.id.as_uuid());
                d_webhooks.push(delivery.webhook_id.as_uuid());
                d_states.push(state.as_str());
                d_events.push(event);
                if state == DeliveryState::Pending {
                    attempts.push(delivery);
                }
            }
            results.push(Some(RecordedEvent::Fresh(attempts)));
        }
        if !d_ids.is_empty() {
            let tenants: Vec<&str> = d_events.iter().map(|e| e.tenant.as_str()).collect();
            let ids: Vec<&str> = d_events.iter().map(|e| e.id.as_str()).collect();
            let types: Vec<&str> = d_events.iter().map(|e| e.event_type.as_str()).collect();
            tx.execute(
                &tx.prepare_cached("INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, created_at, updated_at)
                 SELECT d.id, d.tenant, d.event_id, d.webhook_id, d.event_type, d.state, $7, $7
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[])
                      AS d (id, tenant, event_id, webhook_id, event_type, state)").await?,
                &[&d_ids, &tenants, &ids, &d_webhooks, &types, &d_states, &now],
            )
            .await?;
        }
        tx.commit().await?;
        drop(client);

        let mut out = Vec::with_capacity(events.len());
        for (event, result) in events.iter().zip(results) {
            out.push(match result {
                Some(recorded) => recorded,
                None => RecordedEvent::Seen(self.redelivered(event, now, in_progress_for).await?),
            });
        }
        Ok(out)
    }

    /// What is left to publish for an event recorded before. Dispatched: a
    /// duplicate, nothing. Not yet: a redelivery, and another worker may
    /// still be attempting its pending deliveries straight from the event
    /// (for up to `in_progress_for` after it was received), so each pending
    /// delivery without a due time gets one at the end of that lease (or
    /// `now`, if later); a message published for it then acts only if
    /// nothing else did first.
    async fn redelivered(
        &self,
        event: &NewEvent,
        now: OffsetDateTime,
        in_progress_for: time::Duration,
    ) -> Result<Dispatch> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                &tx.prepare_cached(
                    "SELECT dispatched_at IS NOT NULL AS dispatched, received_at FROM events
                     WHERE tenant = $1 AND id = $2",
                )
                .await?,
                &[&event.tenant.as_str(), &event.id.as_str()],
            )
            .await?
        else {
            // Gone since (the tenant deleted): nothing to publish.
            return Ok(Dispatch::Duplicate);
        };
        if row.try_get::<_, bool>("dispatched")? {
            return Ok(Dispatch::Duplicate);
        }
        let received_at: OffsetDateTime = row.try_get("received_at")?;
        let due = fence::truncate_ms((received_at + in_progress_for).max(now));
        let rows = tx
            .query(
                &tx.prepare_cached(
                    "UPDATE deliveries SET next_attempt_at = $3
                     WHERE tenant = $1 AND event_id = $2 AND state = 'pending' AND next_attempt_at IS NULL AND NOT rate_queued
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
        Ok(Dispatch::Publish(steps))
    }

    /// Notes that every delivery message of these events has been
    /// confirmed by the broker, so a redelivered copy of one is a
    /// duplicate.
    pub async fn mark_dispatched(&self, events: &[EventKey], now: OffsetDateTime) -> Result<()> {
        let client = self.pool.get().await?;
        let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE events SET dispatched_at = $3
                 FROM UNNEST($1::text[], $2::text[]) AS e (tenant, id)
                 WHERE events.tenant = e.tenant AND events.id = e.id AND events.dispatched_at IS NULL",
                    )
                    .await?,
                &[&tenants, &ids, &now],
            )
            .await?;
        Ok(())
    }
}
