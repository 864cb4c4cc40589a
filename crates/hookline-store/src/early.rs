//! Attempt first, record once: the store's half of a fresh event's fast
//! path. A worker reads who an event goes to ([`Store::look_up`], reads
//! only, no commit), makes the first attempts, and, when every one of them
//! succeeded, writes the event, its deliveries and their attempts in one
//! commit ([`Store::record_delivered`]). Until that commit the unacked event
//! message is the record: a crash redelivers it, and the redelivery takes the
//! careful path ([`Store::record_events`]) with the same derived delivery ids,
//! so a repeated request carries the same `Webhook-Id`.

use std::collections::{HashMap, HashSet};

use hookline_core::{HealthStatus, WebhookId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    FreshDelivery, NewAttempt, NewEvent, Result, Store,
    attempt::AttemptColumns,
    event::{EventColumns, insert_events},
    fanout::active_webhooks,
};

/// Who a fresh event goes to, as read before anything is written.
#[derive(Clone, Debug)]
pub enum Looked {
    /// The event is recorded already (a repeated id, or a copy being
    /// handled elsewhere): the careful path decides what is left to do.
    Seen,
    /// Not recorded yet: its deliveries, one per subscribed, active webhook,
    /// suspended ones included (the caller decides what may go early).
    Fresh(Vec<FreshDelivery>),
}

/// A fresh event whose every first attempt succeeded.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The event.
    pub event: NewEvent,
    /// Its deliveries' attempts, each with the webhook it went to.
    pub attempts: Vec<(WebhookId, NewAttempt)>,
}

/// Which of the given events are recorded: one primary-key probe per event,
/// whatever the planner guesses of the arrays' length (a hash join would
/// read every event, and a cached plan would keep doing so).
const SEEN: &str = "SELECT l.tenant, l.id FROM UNNEST($1::text[], $2::text[]) AS l (tenant, id)
                    CROSS JOIN LATERAL (
                        SELECT 1 FROM events e WHERE e.tenant = l.tenant AND e.id = l.id LIMIT 1
                    ) AS found";

impl Store {
    /// For each event: recorded already, or who it goes to. Two reads on one
    /// connection, sent together; nothing is written.
    pub async fn look_up(&self, events: &[NewEvent]) -> Result<Vec<Looked>> {
        let client = self.pool.get().await?;
        let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let seen = async {
            let rows = client.query(&client.prepare_cached(SEEN).await?, &[&tenants, &ids]).await?;
            Ok(rows)
        };
        let (seen, webhooks) = tokio::try_join!(seen, active_webhooks(&client, &tenants))?;
        let seen: HashSet<(String, String)> =
            seen.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        let mut looked = Vec::with_capacity(events.len());
        for event in events {
            if seen.contains(&(event.tenant.as_str().to_owned(), event.id.as_str().to_owned())) {
                looked.push(Looked::Seen);
                continue;
            }
            let deliveries = self.fan_out(event, &webhooks)?;
            looked.push(Looked::Fresh(deliveries));
        }
        Ok(looked)
    }

    /// Records events whose first attempts all succeeded, in one statement
    /// (one commit): each event marked dispatched, each delivery delivered
    /// with its attempt logged, each webhook's success noted (its row
    /// written only when that changes something or its `last_success_at` is
    /// over a second old, as [`Store::record_successes`] does). An event
    /// recorded meanwhile by another copy of its message is left as that
    /// copy wrote it (that copy marks it dispatched); a delivery recorded
    /// meanwhile counts one more attempt. An event may appear once per call.
    ///
    /// "The same delivery" is the same id (V0014: the primary key is the
    /// only unique one on the partitioned table). Every copy of one event
    /// message derives the same ids; two copies of an event id accepted
    /// twice (two `POST`s, each with its own acceptance time) do not, and
    /// if both take this path at the same moment, each writes its own
    /// delivery. Only this race can: an event seen recorded takes the
    /// careful path, which writes deliveries only with the event it inserts.
    /// Returns each attempt's number, per event, in the order given
    /// (`None` for one not written).
    pub async fn record_delivered(&self, items: &[Delivered], now: OffsetDateTime) -> Result<Vec<Vec<Option<i32>>>> {
        let client = self.pool.get().await?;
        let e = EventColumns::of(items.iter().map(|d| &d.event));

        let attempts = || items.iter().flat_map(|d| d.attempts.iter().map(move |(w, a)| (&d.event, *w, a)));
        let tenants: Vec<&str> = attempts().map(|(e, _, _)| e.tenant.as_str()).collect();
        let events: Vec<&str> = attempts().map(|(e, _, _)| e.id.as_str()).collect();
        let types: Vec<&str> = attempts().map(|(e, _, _)| e.event_type.as_str()).collect();
        let webhooks: Vec<Uuid> = attempts().map(|(_, w, _)| w.as_uuid()).collect();
        let c = AttemptColumns::of(attempts().map(|(_, _, a)| a));
        let rows = client
            .query(
                &client
                    .prepare_cached(concat!(
                        "WITH e AS (",
                        insert_events!("$1", "$1", "$2", "$3", "$4", "$5", "$6", "$7"),
                        "
                 ), i AS (
                    SELECT * FROM UNNEST($8::text[], $9::text[], $10::text[], $11::uuid[], $12::uuid[], $13::uuid[],
                                         $14::text[], $15::timestamptz[], $16::timestamptz[], $17::int[], $18::int[],
                                         $19::text[], $20::text[])
                           AS i (tenant, event_id, event_type, webhook_id, delivery_id, attempt_id, trigger, sent_at,
                                 received_at, duration_ms, status_code, response_excerpt, trace_id)
                 ), d AS (
                    INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, attempt_count,
                                            created_at, updated_at)
                    SELECT i.delivery_id, i.tenant, i.event_id, i.webhook_id, i.event_type, 'delivered', 1, $1, $1
                    FROM i
                    ON CONFLICT (id) DO UPDATE
                    SET attempt_count = deliveries.attempt_count + 1, state = 'delivered', next_attempt_at = NULL,
                        next_trigger = NULL, claimed_until = NULL, awaits_probe = false, rate_queued = false, updated_at = $1
                    RETURNING deliveries.id, deliveries.tenant, deliveries.event_id, deliveries.webhook_id,
                              deliveries.attempt_count
                 ), a AS (
                    INSERT INTO attempts (id, delivery_id, attempt_no, trigger, sent_at, received_at, duration_ms,
                                          status_code, response_excerpt, trace_id)
                    SELECT i.attempt_id, d.id, d.attempt_count, i.trigger, i.sent_at, i.received_at, i.duration_ms,
                           i.status_code, i.response_excerpt, i.trace_id
                    FROM d JOIN i ON i.tenant = d.tenant AND i.event_id = d.event_id AND i.webhook_id = d.webhook_id
                    RETURNING delivery_id, attempt_no
                 ), w AS (",
                        crate::attempt::webhooks_succeeded!("$1"),
                        ")
                 SELECT d.tenant, d.event_id, d.webhook_id, a.attempt_no FROM a JOIN d ON d.id = a.delivery_id",
                    ))
                    .await?,
                &[
                    &now,
                    &e.tenants,
                    &e.ids,
                    &e.types,
                    &e.bodies,
                    &e.triggered,
                    &e.ingested,
                    &tenants,
                    &events,
                    &types,
                    &webhooks,
                    &c.deliveries,
                    &c.ids,
                    &c.triggers,
                    &c.sent,
                    &c.received,
                    &c.durations,
                    &c.statuses,
                    &c.excerpts,
                    &c.traces,
                ],
            )
            .await?;
        let mut numbers: HashMap<(String, String, Uuid), i32> = HashMap::with_capacity(rows.len());
        for row in &rows {
            numbers.insert((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?), row.try_get(3)?);
        }
        Ok(items
            .iter()
            .map(|d| {
                d.attempts
                    .iter()
                    .map(|(w, _)| {
                        let key = (d.event.tenant.as_str().to_owned(), d.event.id.as_str().to_owned(), w.as_uuid());
                        numbers.get(&key).copied()
                    })
                    .collect()
            })
            .collect())
    }
}

/// How long after a failed attempt a webhook's deliveries take the careful
/// path: recorded before they are attempted, so a failing endpoint's
/// attempts are recorded one step at a time, as before the early path.
pub const RECENT_FAILURE: time::Duration = time::Duration::minutes(1);

/// Whether every delivery of a fresh event may be attempted before it is
/// recorded: there is at least one, and every webhook is healthy (an
/// unhealthy one takes probes, a suspended one holds its delivery: both
/// need the record first) and has not failed within [`RECENT_FAILURE`] of
/// `now` (a failing endpoint's first attempts would each be recorded the
/// careful way after a request already made, its webhook row locked by
/// every one of them at once), and none is rate-limited (a delivery that
/// must wait for its slot waits in the broker, which needs the record).
pub fn goes_early(deliveries: &[FreshDelivery], now: OffsetDateTime) -> bool {
    !deliveries.is_empty()
        && deliveries.iter().all(|d| {
            d.status == HealthStatus::Healthy
                && d.rate_limit.is_none()
                && d.last_failure_at.is_none_or(|at| now - at > RECENT_FAILURE)
        })
}
