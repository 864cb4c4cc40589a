//! Reconciliation's side of the record: what is overdue because its
//! message was lost or its worker died ([`Store::take_overdue`]), fresh
//! deliveries whose dispatch never finished ([`Store::take_unstarted`]),
//! and the replays `recover` queues ([`Store::mark_replays`]).

use hookline_core::{DeliveryId, DeliveryState, Trigger, WebhookId, fence::truncate_ms};
use time::OffsetDateTime;

use crate::{
    Due, Result, Store,
    schedule::{corrupt, trigger_of},
};

/// One delivery `recover` queued: its due time and the state it had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// The step published.
    pub due: Due,
    /// `failed` or `suspended`: what undoing the mark restores.
    pub previous: DeliveryState,
}

impl Store {
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
                 UPDATE deliveries d SET next_attempt_at = $1, claimed_until = NULL, awaits_probe = false, rate_queued = false
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
                    WHERE id >= $2 AND id < $3 AND state = 'pending' AND next_attempt_at IS NULL AND NOT rate_queued
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
        mark_replays(&client, ids, first, spacing, now).await
    }

    /// Undoes [`Store::mark_replays`] for replays that were not published:
    /// each goes back to the state it had, if it is still waiting for that
    /// replay.
    pub async fn unmark_replays(&self, replays: &[Replay], now: OffsetDateTime) -> Result<u64> {
        let client = self.pool.get().await?;
        let ids: Vec<uuid::Uuid> = replays.iter().map(|r| r.due.id.as_uuid()).collect();
        let dues: Vec<OffsetDateTime> = replays.iter().map(|r| r.due.at).collect();
        let states: Vec<&str> = replays.iter().map(|r| r.previous.as_str()).collect();
        let (least, greatest) = crate::delivery::id_range(&ids);
        Ok(client
            .execute(
                &client.prepare_cached("UPDATE deliveries d SET state = u.previous, next_attempt_at = NULL, next_trigger = NULL, updated_at = $4
                 FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[]) AS u (id, due, previous)
                 WHERE d.id = u.id AND d.id BETWEEN $5 AND $6
                   AND d.state = 'pending' AND d.next_attempt_at = u.due AND d.next_trigger = 'recover'").await?,
                &[&ids, &dues, &states, &now, &least, &greatest],
            )
            .await?)
    }
}

/// [`Store::mark_replays`] on `client`, a connection or a transaction (a
/// probe's replay is marked in the transaction that resumes its webhook).
pub(crate) async fn mark_replays(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[DeliveryId],
    first: OffsetDateTime,
    spacing: time::Duration,
    now: OffsetDateTime,
) -> Result<Vec<Replay>> {
    let first = truncate_ms(first);
    let uuids: Vec<uuid::Uuid> = ids.iter().map(DeliveryId::as_uuid).collect();
    let (least, greatest) = crate::delivery::id_range(&uuids);
    let dues: Vec<OffsetDateTime> =
        (0..ids.len()).map(|i| truncate_ms(first + spacing * i32::try_from(i).unwrap_or(i32::MAX))).collect();
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "WITH m AS (
                SELECT d.id, d.state AS previous, m.due FROM deliveries d
                JOIN UNNEST($1::uuid[], $2::timestamptz[]) AS m (id, due) ON m.id = d.id
                WHERE d.id BETWEEN $4 AND $5 AND d.state IN ('failed', 'suspended')
                FOR UPDATE OF d
             )
             UPDATE deliveries d SET state = 'pending', next_attempt_at = m.due, next_trigger = 'recover',
                                     claimed_until = NULL, updated_at = $3
             FROM m WHERE d.id = m.id AND d.id BETWEEN $4 AND $5
             RETURNING d.id, d.webhook_id, m.due, m.previous",
                )
                .await?,
            &[&uuids, &dues, &now, &least, &greatest],
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
