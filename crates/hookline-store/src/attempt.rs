//! Recording attempts: a batch of successes in one statement, a failure
//! with its health decision under the webhook's row lock. (A fresh event's
//! successful first attempts are recorded with the event itself:
//! [`crate::early`].)

use std::collections::HashMap;

use hookline_core::{AttemptId, DeliveryId, DeliveryState, Health, HealthStatus, Next, Trigger};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result, Store};

/// An attempt to record.
#[derive(Clone, Debug)]
pub struct NewAttempt {
    /// A fresh id.
    pub id: AttemptId,
    /// The delivery attempted.
    pub delivery_id: DeliveryId,
    /// What caused it.
    pub trigger: Trigger,
    /// When the request was sent.
    pub sent_at: OffsetDateTime,
    /// When the response arrived.
    pub received_at: Option<OffsetDateTime>,
    /// Milliseconds from sending to the response or the error.
    pub duration_ms: i32,
    /// The HTTP status, when a response arrived.
    pub status_code: Option<i32>,
    /// The kind of transport error, when none did.
    pub error_kind: Option<String>,
    /// The transport error's message.
    pub error_message: Option<String>,
    /// The first bytes of the response body.
    pub response_excerpt: Option<String>,
    /// The attempt's trace id (32 hex digits), when tracing was on.
    pub trace_id: Option<String>,
}

impl NewAttempt {
    /// The same attempt without the text the receiver controls (the
    /// response excerpt, the transport error's message) or the trace id:
    /// what is recorded when the attempt as received cannot be.
    pub fn stripped(&self) -> Self {
        Self {
            response_excerpt: self.response_excerpt.as_ref().map(|_| "[the response could not be stored]".to_owned()),
            error_message: self.error_message.as_ref().map(|_| "[the error text could not be stored]".to_owned()),
            trace_id: None,
            ..self.clone()
        }
    }
}

/// What a failure decision is made from, read under the row locks.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// This attempt's number.
    pub attempt_no: u32,
    /// The delivery's state before it.
    pub previous_state: DeliveryState,
    /// The webhook's health before it.
    pub health: Health,
    /// When the delivery's own step is due (kept by an attempt that is not
    /// that step, e.g. a manual one).
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// What was decided for a failed attempt.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The webhook's health after it.
    pub health: Health,
    /// The delivery's next step.
    pub next: Next,
    /// When the next attempt is due, if one is scheduled.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Whether the attempt was one of its webhook's probes (given back now).
    pub probe: bool,
}

/// A recorded failed attempt and what follows it.
#[derive(Clone, Debug)]
pub struct RecordedFailure {
    /// Its number.
    pub attempt_no: u32,
    /// The decision.
    pub decided: Decided,
}

/// The `UPDATE` that notes successes on the webhooks of the deliveries in
/// the CTE `d` (a `webhook_id` column), `$now` being the statement's
/// parameter for the time: healthy, no failures, probes given back. The row
/// is written only when that changes something or its `last_success_at` is
/// over a second old, so concurrent successes to one webhook do not queue
/// on its lock. One text for every statement that records successes.
macro_rules! webhooks_succeeded {
    ($now:literal) => {
        concat!(
            "UPDATE webhooks SET status = 'healthy', consecutive_failures = 0, suspended_at = NULL,
                                 probe_until = NULL, probes = 0, last_success_at = ",
            $now,
            "
             WHERE webhooks.id IN (SELECT webhook_id FROM d)
               AND (webhooks.status <> 'healthy' OR webhooks.consecutive_failures <> 0
                    OR webhooks.last_success_at IS NULL OR webhooks.last_success_at < ",
            $now,
            " - interval '1 second')"
        )
    };
}
pub(crate) use webhooks_succeeded;

fn corrupt(table: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    move |e| Error::corrupt(table, e)
}

/// The columns of a batch of attempts, as the statements that record them
/// take them (one array per column, one element per attempt).
pub(crate) struct AttemptColumns<'a> {
    pub(crate) deliveries: Vec<Uuid>,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) triggers: Vec<&'a str>,
    pub(crate) sent: Vec<OffsetDateTime>,
    pub(crate) received: Vec<Option<OffsetDateTime>>,
    pub(crate) durations: Vec<i32>,
    pub(crate) statuses: Vec<Option<i32>>,
    pub(crate) excerpts: Vec<Option<&'a str>>,
    pub(crate) traces: Vec<Option<&'a str>>,
}

impl<'a> AttemptColumns<'a> {
    pub(crate) fn of(attempts: impl Iterator<Item = &'a NewAttempt> + Clone) -> Self {
        Self {
            deliveries: attempts.clone().map(|a| a.delivery_id.as_uuid()).collect(),
            ids: attempts.clone().map(|a| a.id.as_uuid()).collect(),
            triggers: attempts.clone().map(|a| a.trigger.as_str()).collect(),
            sent: attempts.clone().map(|a| a.sent_at).collect(),
            received: attempts.clone().map(|a| a.received_at).collect(),
            durations: attempts.clone().map(|a| a.duration_ms).collect(),
            statuses: attempts.clone().map(|a| a.status_code).collect(),
            excerpts: attempts.clone().map(|a| a.response_excerpt.as_deref()).collect(),
            traces: attempts.map(|a| a.trace_id.as_deref()).collect(),
        }
    }
}

impl Store {
    /// Records a batch of successful attempts in one statement: each
    /// delivery delivered, its attempt
    /// logged, its webhook healthy — the webhook row written only when that
    /// changes something or its `last_success_at` is over a second old, so
    /// concurrent successes do not queue on its lock. Returns each attempt's number
    /// (`None` for a delivery that no longer exists), in the order given.
    /// A delivery may appear once per batch. The events in `dispatched` are
    /// marked dispatched in the same statement (a single-delivery event's
    /// success completes its dispatch: one commit instead of two).
    pub async fn record_successes(
        &self,
        attempts: &[NewAttempt],
        dispatched: &[crate::EventKey],
        now: OffsetDateTime,
    ) -> Result<Vec<Option<i32>>> {
        let client = self.pool.get().await?;
        let c = AttemptColumns::of(attempts.iter());
        let mark_tenants: Vec<&str> = dispatched.iter().map(|e| e.tenant.as_str()).collect();
        let mark_ids: Vec<&str> = dispatched.iter().map(|e| e.id.as_str()).collect();
        let (least, greatest) = crate::delivery::id_range(&c.deliveries);
        let rows = client
            .query(
                &client
                    .prepare_cached(concat!(
                        "WITH i AS (
                    SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                                         $6::int[], $7::int[], $8::text[], $9::text[])
                           AS i (delivery_id, attempt_id, trigger, sent_at, received_at, duration_ms, status_code,
                                 response_excerpt, trace_id)
                 ), d AS (
                    UPDATE deliveries
                    SET attempt_count = attempt_count + 1, state = 'delivered', next_attempt_at = NULL,
                        next_trigger = NULL, claimed_until = NULL, awaits_probe = false, rate_queued = false, updated_at = $10
                    FROM i WHERE deliveries.id = i.delivery_id AND deliveries.id BETWEEN $13 AND $14
                    RETURNING deliveries.id, deliveries.webhook_id, deliveries.attempt_count
                 ), a AS (
                    INSERT INTO attempts (id, delivery_id, attempt_no, trigger, sent_at, received_at, duration_ms,
                                          status_code, response_excerpt, trace_id)
                    SELECT i.attempt_id, d.id, d.attempt_count, i.trigger, i.sent_at, i.received_at, i.duration_ms,
                           i.status_code, i.response_excerpt, i.trace_id
                    FROM d JOIN i ON i.delivery_id = d.id
                    RETURNING delivery_id, attempt_no
                 ), w AS (",
                        webhooks_succeeded!("$10"),
                        "), e AS (
                    UPDATE events SET dispatched_at = $10
                    FROM UNNEST($11::text[], $12::text[]) AS m (tenant, id)
                    WHERE events.tenant = m.tenant AND events.id = m.id AND events.dispatched_at IS NULL
                 )
                 SELECT delivery_id, attempt_no FROM a",
                    ))
                    .await?,
                &[
                    &c.deliveries,
                    &c.ids,
                    &c.triggers,
                    &c.sent,
                    &c.received,
                    &c.durations,
                    &c.statuses,
                    &c.excerpts,
                    &c.traces,
                    &now,
                    &mark_tenants,
                    &mark_ids,
                    &least,
                    &greatest,
                ],
            )
            .await?;
        let numbers: HashMap<Uuid, i32> =
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        Ok(c.deliveries.iter().map(|d| numbers.get(d).copied()).collect())
    }

    /// Records a failed attempt. Under row locks on the delivery and its
    /// webhook (so concurrent failures of one webhook are counted exactly),
    /// `decide` turns the facts into the webhook's next health and the
    /// delivery's next step; both are written with the attempt in one
    /// transaction. `None` when the delivery no longer exists.
    ///
    /// The locks are held for as few round trips as can be: the statements
    /// are prepared before the locking read, and the three writes go in one
    /// pipelined round trip before the commit, so other requests to a
    /// failing webhook do not queue on its row for long.
    pub async fn record_failure(
        &self,
        attempt: &NewAttempt,
        now: OffsetDateTime,
        decide: impl FnOnce(Facts) -> Decided,
    ) -> Result<Option<RecordedFailure>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (lock, step, insert, health) = tokio::try_join!(
            tx.prepare_cached(
                "SELECT d.state, d.attempt_count, d.next_attempt_at, w.id AS webhook_id, w.status, w.consecutive_failures
                 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = $1
                 FOR UPDATE OF d, w",
            ),
            tx.prepare_cached(
                "UPDATE deliveries SET attempt_count = $2, state = $3, next_attempt_at = $4, updated_at = $5,
                                   claimed_until = NULL, awaits_probe = false, rate_queued = false,
                                   next_trigger = CASE WHEN $6 THEN next_trigger END
                 WHERE id = $1",
            ),
            tx.prepare_cached(
                "INSERT INTO attempts (id, delivery_id, attempt_no, trigger, sent_at, received_at, duration_ms, status_code,
                                       error_kind, error_message, response_excerpt, retry_reason, next_attempt_at,
                                       failure_count, recorded_at, trace_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock_timestamp(), $15)",
            ),
            tx.prepare_cached(
                "UPDATE webhooks SET status = $2, consecutive_failures = $3, last_failure_at = $4,
                                 probes = GREATEST(probes - CASE WHEN $6 THEN 1 ELSE 0 END, 0),
                                 suspended_at = CASE WHEN $5 THEN clock_timestamp() ELSE suspended_at END
                 WHERE id = $1",
            ),
        )?;
        let Some(row) = tx.query_opt(&lock, &[&attempt.delivery_id.as_uuid()]).await? else {
            return Ok(None);
        };
        let bad = corrupt("deliveries");
        let attempt_count: i32 = row.try_get("attempt_count")?;
        let failures: i32 = row.try_get("consecutive_failures")?;
        let facts = Facts {
            attempt_no: u32::try_from(attempt_count).unwrap_or(0).saturating_add(1),
            previous_state: DeliveryState::parse(row.try_get("state")?).map_err(|e| bad(&e))?,
            health: Health {
                status: HealthStatus::parse(row.try_get("status")?).map_err(|e| bad(&e))?,
                consecutive_failures: u32::try_from(failures).unwrap_or(0),
            },
            next_attempt_at: row.try_get("next_attempt_at")?,
        };
        let webhook_id: uuid::Uuid = row.try_get("webhook_id")?;
        let was_suspended = facts.health.status == HealthStatus::Suspended;
        let decided = decide(facts);
        let attempt_no = i32::try_from(facts.attempt_no).unwrap_or(i32::MAX);
        let failure_count = i32::try_from(decided.health.consecutive_failures).unwrap_or(i32::MAX);
        let reason = match &decided.next {
            Next::Retry { reason, .. } | Next::Stop { reason, .. } => Some(reason.as_str()),
            Next::Delivered => None,
        };
        // A step the delivery still waits for (its due time kept) keeps
        // what triggers it; any other outcome ends it.
        let keeps_step = decided.next_attempt_at.is_some() && decided.next_attempt_at == facts.next_attempt_at;
        let now_suspended = decided.health.status == HealthStatus::Suspended;
        let delivery = attempt.delivery_id.as_uuid();
        let (state, status, trigger) =
            (decided.next.state().as_str(), decided.health.status.as_str(), attempt.trigger.as_str());
        let newly_suspended = now_suspended && !was_suspended;
        let step_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
            [&delivery, &attempt_no, &state, &decided.next_attempt_at, &now, &keeps_step];
        let attempt_id = attempt.id.as_uuid();
        let insert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 15] = [
            &attempt_id,
            &delivery,
            &attempt_no,
            &trigger,
            &attempt.sent_at,
            &attempt.received_at,
            &attempt.duration_ms,
            &attempt.status_code,
            &attempt.error_kind,
            &attempt.error_message,
            &attempt.response_excerpt,
            &reason,
            &decided.next_attempt_at,
            &failure_count,
            &attempt.trace_id,
        ];
        let health_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
            [&webhook_id, &status, &failure_count, &now, &newly_suspended, &decided.probe];
        tokio::try_join!(
            tx.execute(&step, &step_params),
            tx.execute(&insert, &insert_params),
            tx.execute(&health, &health_params),
        )?;
        tx.commit().await?;
        Ok(Some(RecordedFailure { attempt_no: facts.attempt_no, decided }))
    }
}
