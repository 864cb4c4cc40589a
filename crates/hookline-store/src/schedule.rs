//! A delivery's next step, as the record: when it is due, who is taking it,
//! and what is overdue.
//!
//! A waiting delivery (`pending` or `retrying`) has one due time,
//! `next_attempt_at` (whole milliseconds), and the one delivery message that
//! may act on it carries that time (`hookline_core::fence`). A worker claims
//! the delivery before an attempt ([`Store::claim`]): one statement checks
//! the fence and takes a lease, so two copies of a message cannot both
//! attempt it. Whatever is overdue by more than a grace, because its message
//! was lost or its worker died, is found by [`Store::take_overdue`] and
//! published again with a fresh due time, which fences off any older copy.

use hookline_core::{
    DeliveryId, DeliveryState, EventId, Fence, HealthStatus, SignatureScheme, TenantId, Trigger, Waiting, WebhookId,
    WebhookUrl,
    fence::{truncate_ms, unix_ms},
};
use time::OffsetDateTime;

use crate::{DeliveryJob, Error, Result, Store};

/// A step to publish: the delivery, its webhook, when it is due and what
/// triggers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The delivery.
    pub id: DeliveryId,
    /// Its webhook.
    pub webhook_id: WebhookId,
    /// Its due time (whole milliseconds): the message's fence.
    pub at: OffsetDateTime,
    /// `Scheduled`, or `Recover` for a queued replay.
    pub trigger: Trigger,
}

/// What [`Store::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// The message matches and the delivery is this worker's until the
    /// lease ends (or its attempt is recorded).
    Claimed(Box<DeliveryJob>),
    /// Not claimed: the delivery as it stands, and the lease another worker
    /// holds on it, if any. [`Fence::admits`] tells a stale message (ack it)
    /// from a busy delivery (try again after the lease).
    Refused {
        /// The row the fence was checked against.
        row: Waiting,
        /// Another worker's lease.
        claimed_until: Option<OffsetDateTime>,
    },
    /// The delivery no longer exists (its webhook was deleted).
    Gone,
}

/// What [`Store::take_probe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// This worker sends the webhook's one request.
    Taken,
    /// Another request is in flight until then (its lease).
    Busy(Option<OffsetDateTime>),
    /// The webhook is no longer unhealthy: healthy (go ahead) or suspended
    /// (hold), or gone.
    Status(HealthStatus),
}

/// What [`Store::park_for_probe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// The delivery waits for its turn.
    Parked,
    /// The probe is no longer in flight: try to take it.
    ProbeEnded,
    /// The message no longer matches the delivery.
    Stale,
}

/// One delivery `recover` queued: its due time and the state it had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// The step published.
    pub due: Due,
    /// `failed` or `suspended`: what undoing the mark restores.
    pub previous: DeliveryState,
}

/// The fence condition on `d` as SQL: `$2` is the kind (`due`, `manual`,
/// `legacy`), `$3` the due millisecond or attempt count, `$4` whether the
/// message is an automatic one.
const ADMITS: &str = "CASE $2::text
        WHEN 'due' THEN d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
                        AND floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = $3
        WHEN 'manual' THEN d.attempt_count = $3
        ELSE NOT $4 OR d.state IN ('pending', 'retrying')
    END";

fn corrupt(e: &dyn std::fmt::Display) -> Error {
    Error::corrupt("deliveries", e)
}

fn trigger_of(next_trigger: Option<&str>) -> Trigger {
    match next_trigger {
        Some("recover") => Trigger::Recover,
        Some("manual") => Trigger::Manual,
        _ => Trigger::Scheduled,
    }
}

impl Store {
    /// Claims a delivery for one attempt by a message with `fence` and
    /// `trigger`: in one statement, the fence is checked against the row
    /// and a lease until `now + lease` is taken unless another worker holds
    /// one. A claimed delivery comes with everything the attempt needs.
    pub async fn claim(
        &self,
        id: DeliveryId,
        fence: Fence,
        trigger: Trigger,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Claim> {
        let (kind, value) = match fence {
            Fence::Due(ms) => ("due", ms),
            Fence::Manual(n) => ("manual", i64::from(n)),
            Fence::Legacy => ("legacy", 0),
        };
        let automatic = trigger == Trigger::Scheduled;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // A claim need not survive a crash of Postgres: lost, it only lets
        // a copy of the message claim again, which the fence still limits
        // to the same step. Not waiting for its WAL flush keeps a disk
        // flush off the path of every queued attempt.
        tx.batch_execute("SET LOCAL synchronous_commit TO off").await?;
        let row = tx
            .query_opt(
                &format!(
                    "WITH c AS (
                        UPDATE deliveries d SET claimed_until = $6
                        WHERE d.id = $1 AND (d.claimed_until IS NULL OR d.claimed_until <= $5) AND {ADMITS}
                        RETURNING d.id
                     )
                     SELECT d.tenant, d.state, d.attempt_count, d.next_attempt_at, d.claimed_until,
                            EXISTS (SELECT 1 FROM c) AS claimed,
                            d.event_id, d.event_type, e.body,
                            w.id AS webhook_id, w.url, w.token, w.active, w.status, w.signature_scheme,
                            w.previous_token, w.previous_token_expires_at,
                            COALESCE(e.ingested_at, e.received_at) AS ingested_at
                     FROM deliveries d
                     JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id
                     JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.id = $1"
                ),
                &[&id.as_uuid(), &kind, &value, &automatic, &now, &(now + lease)],
            )
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(Claim::Gone) };
        let state = DeliveryState::parse(row.try_get("state")?).map_err(|e| corrupt(&e))?;
        let attempt_count: i32 = row.try_get("attempt_count")?;
        let next_attempt_at: Option<OffsetDateTime> = row.try_get("next_attempt_at")?;
        if !row.try_get::<_, bool>("claimed")? {
            return Ok(Claim::Refused {
                row: Waiting { state, attempt_count, next_attempt_ms: next_attempt_at.map(unix_ms) },
                claimed_until: row.try_get("claimed_until")?,
            });
        }
        let webhook_id = WebhookId::from_uuid(row.try_get("webhook_id")?);
        let previous_token = match (
            row.try_get::<_, Option<&str>>("previous_token")?,
            row.try_get::<_, Option<OffsetDateTime>>("previous_token_expires_at")?,
        ) {
            (Some(stored), Some(until)) => Some((self.keys.open(webhook_id, stored)?, until)),
            _ => None,
        };
        Ok(Claim::Claimed(Box::new(DeliveryJob {
            id,
            tenant: TenantId::parse(row.try_get("tenant")?).map_err(|e| corrupt(&e))?,
            state,
            attempt_count,
            next_attempt_at,
            event_id: EventId::parse(row.try_get("event_id")?).map_err(|e| corrupt(&e))?,
            event_type: row.try_get("event_type")?,
            body: bytes::Bytes::from(row.try_get::<_, Vec<u8>>("body")?),
            webhook_id,
            url: WebhookUrl::parse_stored(row.try_get("url")?).map_err(|e| corrupt(&e))?,
            token: self.keys.open(webhook_id, row.try_get("token")?)?,
            previous_token,
            scheme: SignatureScheme::parse(row.try_get("signature_scheme")?).map_err(|e| corrupt(&e))?,
            ingested_at: row.try_get("ingested_at")?,
            active: row.try_get("active")?,
            status: HealthStatus::parse(row.try_get("status")?).map_err(|e| corrupt(&e))?,
        })))
    }

    /// Ends a claimed delivery's wait without an attempt: it takes `state`
    /// (`skipped` for an inactive webhook, `suspended` for a suspended one),
    /// with no due time and no lease.
    pub async fn hold(&self, id: DeliveryId, state: DeliveryState, now: OffsetDateTime) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client.prepare_cached("UPDATE deliveries SET state = $2, next_attempt_at = NULL, next_trigger = NULL, claimed_until = NULL,
                                       awaits_probe = false, updated_at = $3
                 WHERE id = $1").await?,
                &[&id.as_uuid(), &state.as_str(), &now],
            )
            .await?;
        Ok(())
    }

    /// Moves a waiting delivery's step from `due_ms` to `to` (a delivery
    /// deferred because its webhook or its tenant is busy), giving up the
    /// caller's claim when `release`. `false` when the step is no longer due
    /// at `due_ms`: the message asking for it is stale.
    pub async fn postpone(&self, id: DeliveryId, due_ms: i64, to: OffsetDateTime, release: bool) -> Result<bool> {
        let client = self.pool.get().await?;
        let moved = client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE deliveries d SET next_attempt_at = $3,
                                         claimed_until = CASE WHEN $4 THEN NULL ELSE d.claimed_until END
                 WHERE d.id = $1 AND d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
                   AND floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = $2",
                    )
                    .await?,
                &[&id.as_uuid(), &due_ms, &truncate_ms(to), &release],
            )
            .await?;
        Ok(moved == 1)
    }

    /// Takes an unhealthy webhook's probe: its one request in flight across
    /// all workers. The lease runs to `now + lease`; the probe is given back
    /// when its outcome is recorded.
    ///
    /// While a probe is in flight the statement matches no row and so locks
    /// none: the deliveries that find it busy do not queue on the webhook.
    pub async fn take_probe(&self, webhook: WebhookId, now: OffsetDateTime, lease: time::Duration) -> Result<Probe> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let take = tx
            .prepare_cached(
                "WITH t AS (
                    UPDATE webhooks w SET probes = 1, probe_until = $3
                    WHERE w.id = $1 AND w.status = 'unhealthy'
                      AND (w.probe_until IS NULL OR w.probe_until <= $2 OR w.probes < 1)
                    RETURNING w.id
                 )
                 SELECT status, probe_until, EXISTS (SELECT 1 FROM t) AS taken FROM webhooks WHERE id = $1",
            )
            .await?;
        // Like a claim, a lease lost in a crash of Postgres costs at most
        // one extra request: no need to wait for its WAL flush. The setting
        // and the statement go in one round trip.
        let (id, until) = (webhook.as_uuid(), now + lease);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &now, &until];
        let (_, row) =
            tokio::try_join!(tx.batch_execute("SET LOCAL synchronous_commit TO off"), tx.query_opt(&take, &params),)?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(Probe::Status(HealthStatus::Suspended)) };
        if row.try_get::<_, bool>("taken")? {
            return Ok(Probe::Taken);
        }
        let status = HealthStatus::parse(row.try_get("status")?).map_err(|e| Error::corrupt("webhooks", e))?;
        Ok(match status {
            HealthStatus::Unhealthy => Probe::Busy(row.try_get("probe_until")?),
            other => Probe::Status(other),
        })
    }

    /// Parks a claimed delivery whose webhook's probe is in flight: it
    /// waits its turn in Postgres (no message), due at `fallback` should the
    /// turn never be handed to it (reconciliation then takes it). Parked
    /// only while the probe is still in flight, under a share lock on the
    /// webhook, so a probe that ends concurrently either sees this delivery
    /// when it hands the turn on, or this call sees the probe ended.
    pub async fn park_for_probe(
        &self,
        id: DeliveryId,
        webhook: WebhookId,
        due_ms: i64,
        now: OffsetDateTime,
        fallback: OffsetDateTime,
    ) -> Result<Parked> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(
                        "WITH w AS (
                    SELECT id FROM webhooks
                    WHERE id = $2 AND status = 'unhealthy' AND probe_until > $4 AND probes >= 1
                    FOR SHARE
                 ), p AS (
                    UPDATE deliveries d SET awaits_probe = true, next_attempt_at = $5, claimed_until = NULL
                    WHERE d.id = $1 AND EXISTS (SELECT 1 FROM w)
                      AND d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NOT NULL
                      AND floor(extract(epoch FROM d.next_attempt_at) * 1000)::bigint = $3
                    RETURNING d.id
                 )
                 SELECT EXISTS (SELECT 1 FROM p) AS parked, EXISTS (SELECT 1 FROM w) AS busy",
                    )
                    .await?,
                &[&id.as_uuid(), &webhook.as_uuid(), &due_ms, &now, &truncate_ms(fallback)],
            )
            .await?;
        Ok(match (row.try_get::<_, bool>("parked")?, row.try_get::<_, bool>("busy")?) {
            (true, _) => Parked::Parked,
            (false, true) => Parked::Stale,
            (false, false) => Parked::ProbeEnded,
        })
    }

    /// Hands the turn to up to `limit` deliveries parked for `webhook`'s
    /// probe, oldest first: each is due at `now` again; the caller publishes
    /// them. One after a probe that failed; all after a success.
    pub async fn wake_parked(&self, webhook: WebhookId, now: OffsetDateTime, limit: i64) -> Result<Vec<Due>> {
        let client = self.pool.get().await?;
        let at = truncate_ms(now);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH w AS (
                    SELECT id FROM deliveries WHERE webhook_id = $1 AND awaits_probe
                    ORDER BY next_attempt_at LIMIT $3
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE deliveries d SET awaits_probe = false, next_attempt_at = $2
                 FROM w WHERE d.id = w.id
                 RETURNING d.id, d.next_trigger",
                    )
                    .await?,
                &[&webhook.as_uuid(), &at, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    id: DeliveryId::from_uuid(r.try_get("id")?),
                    webhook_id: webhook,
                    at,
                    trigger: trigger_of(r.try_get("next_trigger")?),
                })
            })
            .collect()
    }

    /// Holds every delivery parked for `webhook`'s probe: the webhook was
    /// suspended, so they are logged as `suspended`, not sent.
    pub async fn hold_parked(&self, webhook: WebhookId, now: OffsetDateTime) -> Result<u64> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE deliveries SET state = 'suspended', next_attempt_at = NULL, next_trigger = NULL,
                                       awaits_probe = false, claimed_until = NULL, updated_at = $2
                 WHERE webhook_id = $1 AND awaits_probe",
                    )
                    .await?,
                &[&webhook.as_uuid(), &now],
            )
            .await?)
    }

    /// Gives up a claim without changing anything else.
    pub async fn release(&self, id: DeliveryId) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                &client.prepare_cached("UPDATE deliveries SET claimed_until = NULL WHERE id = $1").await?,
                &[&id.as_uuid()],
            )
            .await?;
        Ok(())
    }

    /// Hands pending deliveries of a fresh event (being attempted straight
    /// from the event message) to the deliveries queue: each gets the due
    /// time `at`, unless it already has one (then a message exists). The
    /// caller publishes one message for each returned step.
    pub async fn hand_off(&self, ids: &[DeliveryId], at: OffsetDateTime) -> Result<Vec<Due>> {
        let client = self.pool.get().await?;
        let ids: Vec<uuid::Uuid> = ids.iter().map(DeliveryId::as_uuid).collect();
        let at = truncate_ms(at);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "UPDATE deliveries SET next_attempt_at = $2
                 WHERE id = ANY($1) AND state = 'pending' AND next_attempt_at IS NULL
                 RETURNING id, webhook_id",
                    )
                    .await?,
                &[&ids, &at],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    id: DeliveryId::from_uuid(r.try_get(0)?),
                    webhook_id: WebhookId::from_uuid(r.try_get(1)?),
                    at,
                    trigger: Trigger::Scheduled,
                })
            })
            .collect()
    }

    /// Takes up to `limit` deliveries whose step was due more than `grace`
    /// before `now` and is not being attempted (no live lease), oldest
    /// first, and gives each the due time `now`: the caller publishes one
    /// message per returned step. Concurrent callers take different rows
    /// (`SKIP LOCKED`), and a taken row is not overdue again for `grace`,
    /// so a message that could not be published is retried then. Reads the
    /// partial index `deliveries_due_idx`.
    pub async fn take_overdue(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
        limit: i64,
    ) -> Result<Vec<(Due, OffsetDateTime)>> {
        let client = self.pool.get().await?;
        let at = truncate_ms(now);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH o AS (
                    SELECT id, next_attempt_at AS was FROM deliveries
                    WHERE next_attempt_at IS NOT NULL AND next_attempt_at < $2
                      AND state IN ('pending', 'retrying')
                      AND (claimed_until IS NULL OR claimed_until <= $1)
                    ORDER BY next_attempt_at
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE deliveries d SET next_attempt_at = $1, claimed_until = NULL, awaits_probe = false
                 FROM o WHERE d.id = o.id
                 RETURNING d.id, d.webhook_id, d.next_trigger, o.was",
                    )
                    .await?,
                &[&at, &(now - grace), &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Due {
                        id: DeliveryId::from_uuid(r.try_get("id")?),
                        webhook_id: WebhookId::from_uuid(r.try_get("webhook_id")?),
                        at,
                        trigger: trigger_of(r.try_get("next_trigger")?),
                    },
                    r.try_get("was")?,
                ))
            })
            .collect()
    }

    /// Takes up to `limit` deliveries created in `[from, until)` (by their
    /// UUIDv7 ids, through the primary key) that are still `pending` with no
    /// due time: their first attempt was to be made straight from an event
    /// message that is gone (the dispatch queue lost, the message parked).
    /// Each gets the due time `now`; the caller publishes them. Returns the
    /// steps and where the next scan starts (`until`, or just past the last
    /// row taken when the limit was reached).
    pub async fn take_unstarted(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
        now: OffsetDateTime,
        limit: i64,
    ) -> Result<(Vec<Due>, OffsetDateTime)> {
        let client = self.pool.get().await?;
        let at = truncate_ms(now);
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH o AS (
                    SELECT id FROM deliveries
                    WHERE id >= $2 AND id < $3 AND state = 'pending' AND next_attempt_at IS NULL
                    ORDER BY id
                    LIMIT $4
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE deliveries d SET next_attempt_at = $1
                 FROM o WHERE d.id = o.id
                 RETURNING d.id, d.webhook_id",
                    )
                    .await?,
                &[&at, &crate::delivery::uuid_v7_floor(from), &crate::delivery::uuid_v7_floor(until), &limit],
            )
            .await?;
        let mut next = until;
        let steps = rows
            .iter()
            .map(|r| {
                Ok(Due {
                    id: DeliveryId::from_uuid(r.try_get("id")?),
                    webhook_id: WebhookId::from_uuid(r.try_get("webhook_id")?),
                    at,
                    trigger: Trigger::Scheduled,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if i64::try_from(steps.len()).unwrap_or(i64::MAX) >= limit
            && let Some(last) = steps.iter().map(|s| s.id.as_uuid()).max()
        {
            // Continue within the same millisecond as the last row taken:
            // the ids of one millisecond share their floor.
            let (secs, nanos) = last.get_timestamp().map_or((0, 0), |t| t.to_unix());
            next = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
                .map_or(until, |t| t + time::Duration::nanoseconds(i64::from(nanos)))
                .min(until);
        }
        Ok((steps, next))
    }

    /// Queues replays: each delivery of `ids` that is still `failed` or
    /// `suspended` becomes `pending`, due at `first + i × spacing` (in the
    /// order given) with trigger `recover`. Marked before anything is
    /// published, so a replay whose message is lost is reconciled like any
    /// other step; [`Store::unmark_replays`] undoes what was not published.
    pub async fn mark_replays(
        &self,
        ids: &[DeliveryId],
        first: OffsetDateTime,
        spacing: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Replay>> {
        let client = self.pool.get().await?;
        let first = truncate_ms(first);
        let uuids: Vec<uuid::Uuid> = ids.iter().map(DeliveryId::as_uuid).collect();
        let dues: Vec<OffsetDateTime> =
            (0..ids.len()).map(|i| truncate_ms(first + spacing * i32::try_from(i).unwrap_or(i32::MAX))).collect();
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH m AS (
                    SELECT d.id, d.state AS previous, m.due FROM deliveries d
                    JOIN UNNEST($1::uuid[], $2::timestamptz[]) AS m (id, due) ON m.id = d.id
                    WHERE d.state IN ('failed', 'suspended')
                    FOR UPDATE OF d
                 )
                 UPDATE deliveries d SET state = 'pending', next_attempt_at = m.due, next_trigger = 'recover',
                                         claimed_until = NULL, updated_at = $3
                 FROM m WHERE d.id = m.id
                 RETURNING d.id, d.webhook_id, m.due, m.previous",
                    )
                    .await?,
                &[&uuids, &dues, &now],
            )
            .await?;
        let mut replays = rows
            .iter()
            .map(|r| {
                Ok(Replay {
                    due: Due {
                        id: DeliveryId::from_uuid(r.try_get("id")?),
                        webhook_id: WebhookId::from_uuid(r.try_get("webhook_id")?),
                        at: r.try_get("due")?,
                        trigger: Trigger::Recover,
                    },
                    previous: DeliveryState::parse(r.try_get("previous")?).map_err(|e| corrupt(&e))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        replays.sort_by_key(|r| r.due.at);
        Ok(replays)
    }

    /// Undoes [`Store::mark_replays`] for replays that were not published:
    /// each goes back to the state it had, if it is still waiting for that
    /// replay.
    pub async fn unmark_replays(&self, replays: &[Replay], now: OffsetDateTime) -> Result<u64> {
        let client = self.pool.get().await?;
        let ids: Vec<uuid::Uuid> = replays.iter().map(|r| r.due.id.as_uuid()).collect();
        let dues: Vec<OffsetDateTime> = replays.iter().map(|r| r.due.at).collect();
        let states: Vec<&str> = replays.iter().map(|r| r.previous.as_str()).collect();
        Ok(client
            .execute(
                &client.prepare_cached("UPDATE deliveries d SET state = u.previous, next_attempt_at = NULL, next_trigger = NULL, updated_at = $4
                 FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[]) AS u (id, due, previous)
                 WHERE d.id = u.id AND d.state = 'pending' AND d.next_attempt_at = u.due AND d.next_trigger = 'recover'").await?,
                &[&ids, &dues, &states, &now],
            )
            .await?)
    }
}
