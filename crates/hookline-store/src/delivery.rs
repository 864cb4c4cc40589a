//! Deliveries (one event × one webhook) and their attempts: what the worker
//! loads before an attempt, what it records after, and the event log.

use hookline_core::{
    AttemptId, DeliveryId, DeliveryState, EventId, HealthStatus, SigningToken, TenantId, WebhookId, WebhookUrl,
};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::{Error, Result, Store};

/// Everything the worker needs for one attempt, read in one query.
#[derive(Clone, Debug)]
pub struct DeliveryJob {
    /// The delivery.
    pub id: DeliveryId,
    /// Its current state; terminal states need no attempt.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// The event's id.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// The exact bytes to POST and sign.
    pub body: Vec<u8>,
    /// The target webhook.
    pub webhook_id: WebhookId,
    /// Where to POST.
    pub url: WebhookUrl,
    /// The signing secret.
    pub token: SigningToken,
    /// Whether the webhook still receives events.
    pub active: bool,
    /// The webhook's health.
    pub status: HealthStatus,
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
}

/// An attempt to record, with the state the delivery moves to.
#[derive(Clone, Debug)]
pub struct NewAttempt {
    /// A fresh id.
    pub id: AttemptId,
    /// The delivery attempted.
    pub delivery_id: DeliveryId,
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
    /// Why another attempt is scheduled, if one is.
    pub retry_reason: Option<String>,
    /// When it is due.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Whether the attempt succeeded (drives the webhook's health).
    pub succeeded: bool,
    /// The state the delivery moves to.
    pub new_state: DeliveryState,
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
        sent_at: row.try_get("sent_at")?,
        received_at: row.try_get("received_at")?,
        duration_ms: row.try_get("duration_ms")?,
        status_code: row.try_get("status_code")?,
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        response_excerpt: row.try_get("response_excerpt")?,
        retry_reason: row.try_get("retry_reason")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.tenant, d.event_id, d.event_type, d.webhook_id, d.state, d.attempt_count, \
                                d.next_attempt_at, d.created_at, d.updated_at";

impl Store {
    /// Loads a delivery with its event body and webhook; `None` when the
    /// delivery no longer exists (its webhook was deleted).
    pub async fn load_job(&self, id: DeliveryId) -> Result<Option<DeliveryJob>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT d.id, d.state, d.attempt_count, d.event_id, d.event_type, e.body,
                        w.id AS webhook_id, w.url, w.token, w.active, w.status
                 FROM deliveries d
                 JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = $1",
                &[&id.as_uuid()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let bad = corrupt("deliveries");
        Ok(Some(DeliveryJob {
            id,
            state: DeliveryState::parse(row.try_get("state")?).map_err(|e| bad(&e))?,
            attempt_count: row.try_get("attempt_count")?,
            event_id: EventId::parse(row.try_get("event_id")?).map_err(|e| bad(&e))?,
            event_type: row.try_get("event_type")?,
            body: row.try_get("body")?,
            webhook_id: WebhookId::from_uuid(row.try_get("webhook_id")?),
            url: WebhookUrl::parse(row.try_get("url")?).map_err(|e| bad(&e))?,
            token: SigningToken::parse(row.try_get("token")?).map_err(|e| bad(&e))?,
            active: row.try_get("active")?,
            status: HealthStatus::parse(row.try_get("status")?).map_err(|e| bad(&e))?,
        }))
    }

    /// Records an attempt, moves the delivery to its new state and updates the
    /// webhook's health, atomically in one statement. Returns the attempt
    /// number, or `None` when the delivery no longer exists.
    pub async fn record_attempt(&self, attempt: &NewAttempt, now: OffsetDateTime) -> Result<Option<i32>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "WITH d AS (
                    UPDATE deliveries
                    SET attempt_count = attempt_count + 1, state = $2, next_attempt_at = $3, updated_at = $4
                    WHERE id = $1
                    RETURNING id, webhook_id, attempt_count
                 ), a AS (
                    INSERT INTO attempts (id, delivery_id, attempt_no, sent_at, received_at, duration_ms,
                                          status_code, error_kind, error_message, response_excerpt,
                                          retry_reason, next_attempt_at)
                    SELECT $5, d.id, d.attempt_count, $6, $7, $8, $9, $10, $11, $12, $13, $3 FROM d
                    RETURNING attempt_no
                 ), w AS (
                    UPDATE webhooks SET
                        status = CASE WHEN $14 THEN 'healthy'
                                      WHEN webhooks.status = 'suspended' THEN 'suspended'
                                      ELSE 'unhealthy' END,
                        consecutive_failures = CASE WHEN $14 THEN 0 ELSE webhooks.consecutive_failures + 1 END
                    FROM d WHERE webhooks.id = d.webhook_id
                 )
                 SELECT attempt_no FROM a",
                &[
                    &attempt.delivery_id.as_uuid(),
                    &attempt.new_state.as_str(),
                    &attempt.next_attempt_at,
                    &now,
                    &attempt.id.as_uuid(),
                    &attempt.sent_at,
                    &attempt.received_at,
                    &attempt.duration_ms,
                    &attempt.status_code,
                    &attempt.error_kind,
                    &attempt.error_message,
                    &attempt.response_excerpt,
                    &attempt.retry_reason,
                    &attempt.succeeded,
                ],
            )
            .await?;
        row.map(|r| r.try_get("attempt_no")).transpose().map_err(Into::into)
    }

    /// Moves a delivery to a state without an attempt (e.g. `skipped` when its
    /// webhook was deactivated after the event was fanned out).
    pub async fn set_delivery_state(&self, id: DeliveryId, state: DeliveryState, now: OffsetDateTime) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE deliveries SET state = $2, updated_at = $3 WHERE id = $1",
                &[&id.as_uuid(), &state.as_str(), &now],
            )
            .await?;
        Ok(())
    }

    /// Deliveries matching `filter`, newest first, before the cursor `before`.
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
                     ORDER BY d.id DESC LIMIT $6"
                ),
                &[
                    &filter.webhook.map(|id| id.as_uuid()),
                    &filter.tenant.as_ref().map(TenantId::as_str),
                    &filter.state.map(DeliveryState::as_str),
                    &filter.event_type,
                    &before.map(|id| id.as_uuid()),
                    &limit,
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
        let client = self.pool.get().await?;
        let row = client
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
        let attempts = client
            .query(
                "SELECT id, attempt_no, sent_at, received_at, duration_ms, status_code, error_kind, error_message,
                        response_excerpt, retry_reason, next_attempt_at
                 FROM attempts WHERE delivery_id = $1 ORDER BY attempt_no",
                &[&id.as_uuid()],
            )
            .await?
            .iter()
            .map(attempt_from_row)
            .collect::<Result<_>>()?;
        Ok(Some((delivery, body, attempts)))
    }
}
