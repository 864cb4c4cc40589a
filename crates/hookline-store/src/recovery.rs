//! Recovery probes as the record: which suspended webhooks are due a probe
//! ([`Store::claim_probes`], under a lease), and a probe's outcome with
//! what it changes ([`Store::record_probe`]).
//!
//! A webhook's probe schedule is two columns: `recovery_next_at`, when its
//! next probe is due (NULL until its first: one first wait after
//! `suspended_at`), and `recovery_interval_ms`, the wait that led to it.
//! Claiming pushes `recovery_next_at` one lease ahead, in the statement that
//! finds it due, so no other worker takes it meanwhile; a worker that dies
//! leaves the lease to run out, and the probe comes again then. Recording
//! writes the next due time (a failure) or resumes the webhook (a `2xx`),
//! only if the lease is still the one taken. Both schedule columns are
//! cleared by a trigger (V0011) whenever the webhook stops being suspended.
//!
//! All probes of one suspension are attempts of one delivery of one
//! `hookline.probe` event (`health::recovery::probe_event_id`), sent with
//! the bytes stored at its first probe.

use std::time::Duration;

use hookline_core::{
    CustomHeaders, DeliveryId, EventId, Probed, SignatureScheme, SigningToken, TenantId, WebhookId, WebhookUrl,
    fence::unix_ms,
    health::recovery::{PROBE_EVENT, probe_event, probe_event_id},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, NewAttempt, Replay, Result, Store, delivery::uuid_v7_floor};

/// A suspended webhook claimed for a probe: where and how to send it.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// Its account (the probe event's tenant).
    pub tenant: TenantId,
    /// Where to POST.
    pub url: WebhookUrl,
    /// The signing secret.
    pub token: SigningToken,
    /// The token replaced by a rotation, with the end of its grace period.
    pub previous_token: Option<(SigningToken, OffsetDateTime)>,
    /// How to sign.
    pub scheme: SignatureScheme,
    /// Extra request headers.
    pub headers: CustomHeaders,
    /// Whether a success also replays what the suspension held.
    pub replay: bool,
    /// When the webhook was suspended.
    pub suspended_at: OffsetDateTime,
    /// The wait that led to this probe (from the suspension or the last one).
    pub interval: Duration,
    /// The lease this claim wrote (`recovery_next_at`): recording checks it.
    pub lease: OffsetDateTime,
    /// The suspension's probe event.
    pub event_id: EventId,
    /// Its one delivery (sent as `Webhook-Id`), derived from the event, the
    /// webhook and the suspension's time: every probe of a suspension
    /// carries the same.
    pub delivery_id: DeliveryId,
    /// The bytes to sign and POST: stored at the suspension's first probe,
    /// or fresh for it.
    pub body: bytes::Bytes,
    /// The event's time (its `triggeredAt`).
    pub triggered_at: OffsetDateTime,
}

/// How a probe's success replays what its webhook's suspension held.
#[derive(Clone, Copy, Debug)]
pub struct ReplayPace {
    /// Between two replays (`health::recovery::replay_spacing`).
    pub spacing: time::Duration,
    /// How long before the suspension a held delivery may have been created
    /// (`health::recovery::held_lookback`).
    pub lookback: Duration,
}

/// A probe made, to record.
#[derive(Clone, Copy, Debug)]
pub struct ProbeMade<'a> {
    /// What was claimed.
    pub target: &'a ProbeTarget,
    /// The attempt (trigger `probe`, delivery [`ProbeTarget::delivery_id`]).
    pub attempt: &'a NewAttempt,
    /// What core decided.
    pub probed: &'a Probed,
    /// How a resume replays, when the webhook asks for it.
    pub pace: ReplayPace,
    /// Now.
    pub now: OffsetDateTime,
}

/// What recording a probe changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeRecorded {
    /// The webhook no longer exists: nothing was recorded.
    Gone,
    /// The webhook is resumed; these held deliveries are marked for replay
    /// (the caller publishes them; reconciliation does, should that fail).
    Resumed(Vec<Replay>),
    /// Still suspended; the next probe is due then.
    Again(OffsetDateTime),
    /// The attempt is recorded and the webhook left as it is: it is no longer
    /// suspended, or (a failure) its schedule is no longer this probe's.
    Superseded,
}

/// How much a held delivery's last change may precede `suspended_at` and
/// still count as held by that suspension: the delivery whose failure
/// suspended the webhook is written with the worker's clock, `suspended_at`
/// with the database's.
const CLOCK_MARGIN: time::Duration = time::Duration::MINUTE;

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Column `recovery_interval_ms` as a wait (a negative one as none).
fn interval_of(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Store {
    /// Claims up to `limit` suspended webhooks with probing on whose probe
    /// is due at `now`: `recovery_next_at` reached, or (none yet) `first`
    /// since the suspension. Each gets `recovery_next_at = now + lease` in
    /// the same statement (other workers skip it), and its wait so far
    /// (`first` for a suspension's first probe). Reads the partial index
    /// `webhooks_recovery_due_idx`; when nothing is due that is all it does.
    pub async fn claim_probes(
        &self,
        now: OffsetDateTime,
        first: Duration,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<ProbeTarget>> {
        let first_span = time::Duration::try_from(first).unwrap_or(time::Duration::DAY);
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "WITH due AS (
                    SELECT id FROM webhooks
                    WHERE recovery_probe AND status = 'suspended' AND active
                      AND (recovery_next_at <= $1
                           OR (recovery_next_at IS NULL AND COALESCE(suspended_at, '-infinity') <= $2))
                    ORDER BY recovery_next_at NULLS FIRST
                    LIMIT $5
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE webhooks w SET recovery_next_at = $3,
                                       recovery_interval_ms = COALESCE(w.recovery_interval_ms, $4),
                                       suspended_at = COALESCE(w.suspended_at, $1)
                 FROM due WHERE w.id = due.id
                 RETURNING w.id, w.tenant, w.url, w.token, w.previous_token, w.previous_token_expires_at,
                           w.signature_scheme, w.headers, w.recovery_replay, w.suspended_at,
                           w.recovery_interval_ms, w.recovery_next_at",
                    )
                    .await?,
                &[&now, &(now - first_span), &(now + lease), &millis(first), &limit],
            )
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let bad = |e: &dyn std::fmt::Display| Error::corrupt("webhooks", e);
        let mut targets = Vec::with_capacity(rows.len());
        for row in &rows {
            let webhook_id = WebhookId::from_uuid(row.try_get("id")?);
            let tenant = TenantId::parse(row.try_get("tenant")?).map_err(|e| bad(&e))?;
            let suspended_at: OffsetDateTime = row.try_get("suspended_at")?;
            let previous_token = match (
                row.try_get::<_, Option<&str>>("previous_token")?,
                row.try_get::<_, Option<OffsetDateTime>>("previous_token_expires_at")?,
            ) {
                (Some(stored), Some(until)) => Some((self.keys.open(webhook_id, stored)?, until)),
                _ => None,
            };
            let event_id = probe_event_id(webhook_id, suspended_at);
            targets.push(ProbeTarget {
                delivery_id: DeliveryId::derive(&tenant, &event_id, webhook_id, unix_ms(suspended_at)),
                body: probe_event(webhook_id, now).to_body().into(),
                triggered_at: now,
                event_id,
                tenant,
                url: WebhookUrl::parse_stored(row.try_get("url")?).map_err(|e| bad(&e))?,
                token: self.keys.open(webhook_id, row.try_get("token")?)?,
                previous_token,
                scheme: SignatureScheme::parse(row.try_get("signature_scheme")?).map_err(|e| bad(&e))?,
                headers: crate::headers::open(&self.keys, webhook_id, &row.try_get("headers")?)?,
                replay: row.try_get("recovery_replay")?,
                suspended_at,
                interval: interval_of(row.try_get("recovery_interval_ms")?),
                lease: row.try_get("recovery_next_at")?,
                webhook_id,
            });
        }
        // A suspension probed before: its event is recorded, and every
        // later probe sends the same bytes (with the same derived id).
        let tenants: Vec<&str> = targets.iter().map(|t| t.tenant.as_str()).collect();
        let events: Vec<&str> = targets.iter().map(|t| t.event_id.as_str()).collect();
        let webhooks: Vec<Uuid> = targets.iter().map(|t| t.webhook_id.as_uuid()).collect();
        let recorded = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT d.webhook_id, e.body, e.triggered_at
                 FROM UNNEST($1::text[], $2::text[], $3::uuid[]) AS p (tenant, event_id, webhook_id)
                 JOIN deliveries d ON d.tenant = p.tenant AND d.event_id = p.event_id AND d.webhook_id = p.webhook_id
                 JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id",
                    )
                    .await?,
                &[&tenants, &events, &webhooks],
            )
            .await?;
        for row in &recorded {
            let webhook_id = WebhookId::from_uuid(row.try_get("webhook_id")?);
            if let Some(target) = targets.iter_mut().find(|t| t.webhook_id == webhook_id) {
                target.body = bytes::Bytes::from(row.try_get::<_, Vec<u8>>("body")?);
                target.triggered_at = row.try_get("triggered_at")?;
            }
        }
        Ok(targets)
    }

    /// Records a probe in one transaction: its event and delivery (the
    /// first probe of a suspension creates them; `delivered` after a `2xx`,
    /// else `failed`), its attempt with trigger `probe`, and what follows.
    /// While the webhook is still suspended, a success resumes it as
    /// `resume` does (healthy, failures cleared, `last_success_at` now) and,
    /// with replay on, marks the deliveries its suspension held for replay
    /// at the recover rate ([`Store::mark_replays`]); a failure, while the
    /// lease is still this probe's, counts one more failure and sets the
    /// next due time.
    pub async fn record_probe(&self, made: &ProbeMade<'_>) -> Result<ProbeRecorded> {
        let ProbeMade { target, attempt, probed, pace, now } = *made;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(webhook) = tx
            .query_opt(
                &tx.prepare_cached(
                    "SELECT status, recovery_next_at, suspended_at, consecutive_failures FROM webhooks
                     WHERE id = $1 FOR UPDATE",
                )
                .await?,
                &[&target.webhook_id.as_uuid()],
            )
            .await?
        else {
            return Ok(ProbeRecorded::Gone);
        };
        let suspended = webhook.try_get::<_, &str>("status")? == "suspended";
        let leased = webhook.try_get::<_, Option<OffsetDateTime>>("recovery_next_at")? == Some(target.lease);
        let suspended_at: Option<OffsetDateTime> = webhook.try_get("suspended_at")?;
        let mut failures: i32 = webhook.try_get("consecutive_failures")?;

        // One event, as the arrays the shared text takes.
        let tenants: &[&str] = &[target.tenant.as_str()];
        let ids: &[&str] = &[target.event_id.as_str()];
        let types: &[&str] = &[PROBE_EVENT];
        let bodies: &[&[u8]] = &[&target.body];
        let triggered: &[OffsetDateTime] = &[target.triggered_at];
        let ingested: &[Option<OffsetDateTime>] = &[Some(target.triggered_at)];
        tx.execute(
            &tx.prepare_cached(crate::event::insert_events!("$6", "$6", "$1", "$2", "$3", "$4", "$5", "$7")).await?,
            &[&tenants, &ids, &types, &bodies, &triggered, &now, &ingested],
        )
        .await?;
        let success = matches!(probed, Probed::Resume);
        let state = if success { "delivered" } else { "failed" };
        let delivery = tx
            .query_one(
                &tx.prepare_cached(
                    "INSERT INTO deliveries (id, tenant, event_id, webhook_id, event_type, state, attempt_count,
                                             created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
                     ON CONFLICT (id) DO UPDATE
                     SET attempt_count = deliveries.attempt_count + 1, state = EXCLUDED.state,
                         next_attempt_at = NULL, next_trigger = NULL, claimed_until = NULL, awaits_probe = false, rate_queued = false,
                         updated_at = EXCLUDED.updated_at
                     RETURNING id, attempt_count",
                )
                .await?,
                &[
                    &target.delivery_id.as_uuid(),
                    &target.tenant.as_str(),
                    &target.event_id.as_str(),
                    &target.webhook_id.as_uuid(),
                    &PROBE_EVENT,
                    &state,
                    &target.triggered_at,
                    &now,
                ],
            )
            .await?;

        let mut next_at = None;
        let mut retry_reason = None;
        let outcome = match probed {
            Probed::Resume if suspended => {
                let held = match (target.replay, suspended_at) {
                    (true, Some(at)) => held(&tx, target.webhook_id, at, pace.lookback).await?,
                    _ => Vec::new(),
                };
                tx.execute(
                    &tx.prepare_cached(
                        "UPDATE webhooks SET status = 'healthy', consecutive_failures = 0, suspended_at = NULL,
                                             probe_until = NULL, probes = 0, recovery_next_at = NULL,
                                             recovery_interval_ms = NULL, last_success_at = $2, updated_at = $2
                         WHERE id = $1",
                    )
                    .await?,
                    &[&target.webhook_id.as_uuid(), &now],
                )
                .await?;
                let replays = crate::overdue::mark_replays(&tx, &held, now, pace.spacing, now).await?;
                ProbeRecorded::Resumed(replays)
            }
            Probed::Again { interval, reason } if suspended && leased => {
                let at = now + time::Duration::try_from(*interval).unwrap_or(time::Duration::HOUR);
                failures = tx
                    .query_one(
                        &tx.prepare_cached(
                            "UPDATE webhooks SET recovery_next_at = $2, recovery_interval_ms = $3,
                                                 consecutive_failures = consecutive_failures + 1, last_failure_at = $4
                             WHERE id = $1
                             RETURNING consecutive_failures",
                        )
                        .await?,
                        &[&target.webhook_id.as_uuid(), &at, &millis(*interval), &now],
                    )
                    .await?
                    .try_get(0)?;
                next_at = Some(at);
                retry_reason = Some(reason.as_str());
                ProbeRecorded::Again(at)
            }
            Probed::Again { reason, .. } => {
                retry_reason = Some(reason.as_str());
                ProbeRecorded::Superseded
            }
            Probed::Resume => ProbeRecorded::Superseded,
        };
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO attempts (id, delivery_id, attempt_no, trigger, sent_at, received_at, duration_ms,
                                       status_code, error_kind, error_message, response_excerpt, retry_reason,
                                       next_attempt_at, failure_count, recorded_at, trace_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock_timestamp(), $15)",
            )
            .await?,
            &[
                &attempt.id.as_uuid(),
                &delivery.try_get::<_, Uuid>("id")?,
                &delivery.try_get::<_, i32>("attempt_count")?,
                &attempt.trigger.as_str(),
                &attempt.sent_at,
                &attempt.received_at,
                &attempt.duration_ms,
                &attempt.status_code,
                &attempt.error_kind,
                &attempt.error_message,
                &attempt.response_excerpt,
                &retry_reason,
                &next_at,
                &(!success).then_some(failures),
                &attempt.trace_id,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// The deliveries `webhook`'s suspension at `suspended_at` held, oldest
/// first (by the event's time, as `recover` orders them): `suspended` ones
/// last changed since then (new events logged while suspended, retries held
/// when they came due, the one whose failure suspended it), created at most
/// `lookback` before it. The webhook's log index narrows the scan to that.
async fn held(
    client: &impl deadpool_postgres::GenericClient,
    webhook: WebhookId,
    suspended_at: OffsetDateTime,
    lookback: Duration,
) -> Result<Vec<DeliveryId>> {
    let lookback = time::Duration::try_from(lookback).unwrap_or(time::Duration::DAY * 30);
    let created_from = suspended_at.checked_sub(lookback).unwrap_or(suspended_at);
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "SELECT d.id FROM deliveries d
                     JOIN events e ON e.tenant = d.tenant AND e.id = d.event_id
                     WHERE d.webhook_id = $1 AND d.id >= $2 AND d.state = 'suspended' AND d.updated_at >= $3
                     ORDER BY e.triggered_at, d.created_at, d.id",
                )
                .await?,
            &[&webhook.as_uuid(), &uuid_v7_floor(created_from), &(suspended_at - CLOCK_MARGIN)],
        )
        .await?;
    rows.iter().map(|r| Ok(DeliveryId::from_uuid(r.try_get("id")?))).collect()
}
