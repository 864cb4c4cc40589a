//! Deliveries (one event × one webhook) and their attempts: what the worker
//! loads before an attempt, what it records after, and the event log.

use hookline_core::{
    AttemptId, CustomHeaders, DeliveryId, DeliveryState, EventId, HealthStatus, RateLimit, SignatureScheme,
    SigningToken, TenantId, Trigger, WebhookId, WebhookUrl,
};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::{Error, Result, Store};

/// Everything the worker needs for one attempt, read in one query.
#[derive(Clone, Debug)]
pub struct DeliveryJob {
    /// The delivery.
    pub id: DeliveryId,
    /// The account it belongs to.
    pub tenant: TenantId,
    /// Its current state; terminal states need no attempt.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// When its automatic step is due, if one is scheduled.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The event's id.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// The exact bytes to POST and sign (shared by every delivery of the
    /// event in memory).
    pub body: bytes::Bytes,
    /// The target webhook.
    pub webhook_id: WebhookId,
    /// Where to POST.
    pub url: WebhookUrl,
    /// The signing secret.
    pub token: SigningToken,
    /// The token replaced by a rotation, with the end of its grace period.
    pub previous_token: Option<(SigningToken, OffsetDateTime)>,
    /// How to sign.
    pub scheme: SignatureScheme,
    /// When the event was accepted (or, published straight to the exchange,
    /// dispatched): where its ingest → delivery latency starts.
    pub ingested_at: OffsetDateTime,
    /// Whether the webhook still receives events.
    pub active: bool,
    /// The webhook's health.
    pub status: HealthStatus,
    /// Extra request headers.
    pub headers: CustomHeaders,
    /// The webhook's shared rate limit.
    pub rate_limit: Option<RateLimit>,
}

/// Deliveries a `recover` replays: a webhook's failed and suspended ones
/// created in [since, until), oldest first.
#[derive(Clone, Copy, Debug)]
pub struct RecoverWindow {
    /// The webhook.
    pub webhook: WebhookId,
    /// Start of the window (inclusive).
    pub since: OffsetDateTime,
    /// End of the window (exclusive).
    pub until: OffsetDateTime,
}

/// One delivery as the event log shows it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Its id, also sent as `Webhook-Id`.
    pub id: DeliveryId,
    /// The account.
    pub tenant: TenantId,
    /// The event.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// The webhook.
    pub webhook_id: WebhookId,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// When the next attempt is due, if one is scheduled.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// One attempt as recorded.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Its id.
    pub id: AttemptId,
    /// 1 for the first attempt of the delivery.
    pub attempt_no: i32,
    /// `scheduled`, `manual` or `recover`.
    pub trigger: String,
    /// When the request was sent.
    pub sent_at: OffsetDateTime,
    /// When the response arrived; `None` when none did.
    pub received_at: Option<OffsetDateTime>,
    /// Milliseconds from sending to the response or the error.
    pub duration_ms: i32,
    /// The HTTP status, when a response arrived.
    pub status_code: Option<i32>,
    /// `timeout`, `connect`, … when no response arrived.
    pub error_kind: Option<String>,
    /// The transport error's message.
    pub error_message: Option<String>,
    /// The first bytes of the response body.
    pub response_excerpt: Option<String>,
    /// Why another attempt was scheduled, if one was.
    pub retry_reason: Option<String>,
    /// When that attempt is due.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The attempt's trace, when tracing was on.
    pub trace_id: Option<String>,
}

/// Which deliveries a listing returns; `None` fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Only this webhook's.
    pub webhook: Option<WebhookId>,
    /// Only those in this state.
    pub state: Option<DeliveryState>,
    /// Only those of this event type.
    pub event_type: Option<String>,
    /// Only those created at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only those created before this time.
    pub until: Option<OffsetDateTime>,
}

/// The least and greatest of `ids` (both nil when there are none). A
/// statement that joins deliveries or attempts to an array of ids also
/// bounds the id by these: then Postgres skips the day partitions outside
/// the range when the statement starts (V0014), even with a cached generic
/// plan, where the join alone would probe every partition for every id.
pub(crate) fn id_range(ids: &[uuid::Uuid]) -> (uuid::Uuid, uuid::Uuid) {
    let least = ids.iter().min().copied().unwrap_or_default();
    let greatest = ids.iter().max().copied().unwrap_or_default();
    (least, greatest)
}

/// The smallest UUIDv7 of the millisecond `at` (the ids of deliveries made
/// then are at or above it).
pub(crate) fn uuid_v7_floor(at: OffsetDateTime) -> uuid::Uuid {
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0).min((1 << 48) - 1);
    uuid::Uuid::from_u128(u128::from(ms) << 80)
}

fn corrupt(table: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    move |e| Error::corrupt(table, e)
}

fn delivery_from_row(row: &Row) -> Result<Delivery> {
    let bad = corrupt("deliveries");
    Ok(Delivery {
        id: DeliveryId::from_uuid(row.try_get("id")?),
        tenant: TenantId::parse(row.try_get("tenant")?).map_err(|e| bad(&e))?,
        event_id: EventId::parse(row.try_get("event_id")?).map_err(|e| bad(&e))?,
        event_type: row.try_get("event_type")?,
        webhook_id: WebhookId::from_uuid(row.try_get("webhook_id")?),
        state: DeliveryState::parse(row.try_get("state")?).map_err(|e| bad(&e))?,
        attempt_count: row.try_get("attempt_count")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn attempt_from_row(row: &Row) -> Result<Attempt> {
    Ok(Attempt {
        id: AttemptId::from_uuid(row.try_get("id")?),
        attempt_no: row.try_get("attempt_no")?,
        trigger: row.try_get("trigger")?,
        sent_at: row.try_get("sent_at")?,
        received_at: row.try_get("received_at")?,
        duration_ms: row.try_get("duration_ms")?,
        status_code: row.try_get("status_code")?,
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        response_excerpt: row.try_get("response_excerpt")?,
        retry_reason: row.try_get("retry_reason")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        trace_id: row.try_get("trace_id")?,
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.tenant, d.event_id, d.event_type, d.webhook_id, d.state, d.attempt_count, \
                                d.next_attempt_at, d.created_at, d.updated_at";

impl Store {
    /// Deliveries matching `filter`, newest first, before the cursor `before`.
    /// A delivery whose event retention removed is not listed: its row may
    /// outlive the event until its day's partition is dropped.
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<DeliveryId>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries d
                     WHERE ($1::uuid IS NULL OR d.webhook_id = $1)
                       AND ($2::text IS NULL OR d.tenant = $2)
                       AND ($3::text IS NULL OR d.state = $3)
                       AND ($4::text IS NULL OR d.event_type = $4)
                       AND ($5::uuid IS NULL OR d.id < $5)
                       AND ($7::timestamptz IS NULL OR d.created_at >= $7)
                       AND ($8::timestamptz IS NULL OR d.created_at < $8)
                       AND EXISTS (SELECT 1 FROM events e WHERE e.tenant = d.tenant AND e.id = d.event_id)
                     ORDER BY d.id DESC LIMIT $6"
                ),
                &[
                    &filter.webhook.map(|id| id.as_uuid()),
                    &filter.tenant.as_ref().map(TenantId::as_str),
                    &filter.state.map(DeliveryState::as_str),
                    &filter.event_type,
                    &before.map(|id| id.as_uuid()),
                    &limit,
                    &filter.since,
                    &filter.until,
                ],
            )
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// One delivery with its event body and every attempt, oldest first.
    pub async fn get_delivery(
        &self,
        id: DeliveryId,
        tenant: Option<&TenantId>,
    ) -> Result<Option<(Delivery, Vec<u8>, Vec<Attempt>)>> {
        let mut client = self.pool.get().await?;
        // One snapshot for the delivery and its attempts, so a read made
        // while an attempt is being committed shows both or neither.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS}, e.body FROM deliveries d
                     JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id
                     WHERE d.id = $1 AND ($2::text IS NULL OR d.tenant = $2)"
                ),
                &[&id.as_uuid(), &tenant.map(TenantId::as_str)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let delivery = delivery_from_row(&row)?;
        let body: Vec<u8> = row.try_get("body")?;
        let attempts = tx
            .query(
                &tx.prepare_cached("SELECT id, attempt_no, trigger, sent_at, received_at, duration_ms, status_code, error_kind, error_message,
                        response_excerpt, retry_reason, next_attempt_at, trace_id
                 FROM attempts WHERE delivery_id = $1 ORDER BY attempt_no").await?,
                &[&id.as_uuid()],
            )
            .await?
            .iter()
            .map(attempt_from_row)
            .collect::<Result<_>>()?;
        tx.commit().await?;
        Ok(Some((delivery, body, attempts)))
    }
}

impl Store {
    /// The ids of the deliveries `recover` would replay, oldest first.
    ///
    /// Delivery ids are UUIDv7, stamped when the delivery was created, so the
    /// window is also a range of ids: the webhook's log index
    /// `(webhook_id, id)` narrows the scan to it (widened by a minute for
    /// clock skew between workers), and `created_at` decides exactly. Oldest
    /// is by the event's time (then creation, then id): batches commit in
    /// parallel lanes, and derived ids order by time only to the millisecond.
    /// A recovery probe's delivery is never replayed (it was a question to
    /// the receiver, not an event of the account's).
    pub async fn recoverable(&self, window: &RecoverWindow) -> Result<Vec<DeliveryId>> {
        let client = self.pool.get().await?;
        let margin = time::Duration::MINUTE;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT d.id FROM deliveries d
                 JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id
                 WHERE d.webhook_id = $1 AND d.id >= $4 AND d.id < $5
                   AND d.state IN ('failed', 'suspended')
                   AND d.created_at >= $2 AND d.created_at < $3
                   AND d.event_type <> 'hookline.probe'
                 ORDER BY e.triggered_at, d.created_at, d.id",
                    )
                    .await?,
                &[
                    &window.webhook.as_uuid(),
                    &window.since,
                    &window.until,
                    &uuid_v7_floor(window.since.checked_sub(margin).unwrap_or(window.since)),
                    &uuid_v7_floor(window.until.checked_add(margin).unwrap_or(window.until)),
                ],
            )
            .await?;
        rows.iter().map(|r| Ok(DeliveryId::from_uuid(r.try_get("id")?))).collect()
    }
}

impl Store {
    /// Records a test event for one webhook only (the caller builds its
    /// body) and its single pending delivery, the event already counting as
    /// dispatched, due at `now` (whole milliseconds) as a manual step (it
    /// goes to a suspended webhook too, and is tried once). `None` when the
    /// webhook does not exist for `tenant`.
    pub async fn create_test_delivery(
        &self,
        webhook: WebhookId,
        tenant: Option<&TenantId>,
        event_id: &EventId,
        event_type: &str,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Option<crate::Due>> {
        let now = hookline_core::fence::truncate_ms(now);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                &tx.prepare_cached("SELECT tenant FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)")
                    .await?,
                &[&webhook.as_uuid(), &tenant.map(TenantId::as_str)],
            )
            .await?
        else {
            return Ok(None);
        };
        let owner: String = row.try_get(0)?;
        // One event, as the arrays the shared text takes.
        let tenants: &[&str] = &[owner.as_str()];
        let ids: &[&str] = &[event_id.as_str()];
        let types: &[&str] = &[event_type];
        let bodies: &[&[u8]] = &[body];
        let times: &[Option<OffsetDateTime>] = &[Some(now)];
        tx.execute(
            &tx.prepare_cached(crate::event::insert_events!("$5", "$5", "$1", "$2", "$3", "$4", "$6", "$6")).await?,
            &[&tenants, &ids, &types, &bodies, &now, &times],
        )
        .await?;
        let id = DeliveryId::from_uuid(uuid::Uuid::now_v7());
        tx.execute(
            &tx.prepare_cached("INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, next_attempt_at, next_trigger,
                                     created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, 'manual', $6, $6)").await?,
            &[&id.as_uuid(), &owner, &event_id.as_str(), &webhook.as_uuid(), &event_type, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(crate::Due { id, webhook_id: webhook, at: now, trigger: Trigger::Manual }))
    }

    /// Event types of the latest deliveries (of `tenant`, or all), for
    /// suggesting subscriptions; read through the newest 1,000 deliveries.
    pub async fn recent_event_types(&self, tenant: Option<&TenantId>) -> Result<Vec<String>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT DISTINCT event_type FROM (
                    SELECT event_type FROM deliveries WHERE ($1::text IS NULL OR tenant = $1)
                    ORDER BY id DESC LIMIT 1000) d
                 ORDER BY event_type",
                    )
                    .await?,
                &[&tenant.map(TenantId::as_str)],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UUIDv7 made at a time sorts between the floors of that millisecond
    /// and the next.
    #[test]
    fn v7_floor_brackets_ids() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_789).expect("valid");
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_764_000_000, 123_456_789);
        let id = uuid::Uuid::new_v7(ts);
        assert!(uuid_v7_floor(at) <= id);
        assert!(id < uuid_v7_floor(at + time::Duration::milliseconds(1)));
        assert!(uuid_v7_floor(at - time::Duration::milliseconds(1)) < uuid_v7_floor(at));
    }
}
