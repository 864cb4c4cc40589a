//! Delivery: a delivery message → load → sign and POST → record the attempt
//! and the webhook's health → schedule the retry, if any → ack.
//!
//! The receiver's answer is an outcome, never an error: only infrastructure
//! faults (Postgres or the broker unreachable) hand the message back.
//! Retries wait in the broker's delay tiers, never here: a message that
//! arrives before it is due is sent through the next tier.
//!
//! Each message is handled in a `delivery` span whose parent is the trace
//! context the message carries; a request made is an `attempt` span inside
//! it (webhook id, attempt number, status code or error, retry reason), with
//! the outbound `POST` as its child. The trace id is recorded with the attempt.

use hookline_broker::{DeliveryMessage, Message, topology::tier_for};
use hookline_core::{AttemptId, Attempted, DeliveryId, DeliveryState, HealthStatus, Next, Trigger, WebhookId, decide};
use hookline_store::{Decided, DeliveryJob, NewAttempt};
use time::OffsetDateTime;
use tracing::{Instrument, field::Empty};

use crate::{consume::Settle, fairness::defer_delay, http, startup::Context};

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A uniform sample in [-1, 1] for retry jitter (from the OS's randomness,
/// through a v4 UUID, so no RNG crate is needed).
fn jitter_sample() -> f64 {
    // The first six bytes of a v4 UUID are random (its version and variant
    // bits sit later): 48 uniform bits.
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let bits = bytes[..6].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let unit = bits as f64 / (1u64 << 48) as f64;
    unit * 2.0 - 1.0
}

/// Sends a delivery whose webhook is at its in-flight cap through a delay
/// tier, freeing this worker slot for other webhooks.
async fn defer(ctx: &Context, msg: DeliveryMessage) -> Settle {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    ctx.metrics.deferrals.inc(&[]);
    let delay = defer_delay(msg.deferrals());
    let later = msg.deferred(now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)));
    tracing::debug!(delay_ms = delay.as_millis(), "webhook at its in-flight cap; deferring");
    match ctx.publisher().schedule(&later, now_ms).await {
        Ok(()) => Settle::Ack,
        Err(e) => ctx.infrastructure_fault("deferring a delivery", &e).await,
    }
}

/// Handles one delivery message (first attempt, due retry, manual or
/// recover) in a span that continues the message's trace.
pub async fn handle(ctx: &Context, message: Message) -> Settle {
    let _in_flight = crate::metrics::InFlightGuard::new(&ctx.metrics.in_flight);
    let span =
        tracing::info_span!("delivery", delivery_id = Empty, webhook_id = Empty, trigger = Empty, outcome = Empty,);
    hookline_broker::trace::continue_trace(&span, &message.properties);
    handle_in_span(ctx, message).instrument(span).await
}

async fn handle_in_span(ctx: &Context, message: Message) -> Settle {
    let msg = match DeliveryMessage::decode(&message.body) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::warn!(error.message = %e, "parking a malformed delivery message");
            return Settle::Reject;
        }
    };
    let id = DeliveryId::from_uuid(msg.delivery_id());
    let trigger = msg.trigger();
    let span = tracing::Span::current();
    span.record("delivery_id", tracing::field::display(id));
    span.record("trigger", trigger.as_str());

    // Not due yet: on through the next delay tier; the last few
    // milliseconds (less than the smallest tier) are waited out here, with
    // the message still unacked, so attempts start on time and in order.
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    if let Some(due) = msg.not_before_ms() {
        if tier_for(due - now_ms).is_some() {
            return match ctx.publisher().schedule(&msg, now_ms).await {
                Ok(()) => Settle::Ack,
                Err(e) => ctx.infrastructure_fault("re-scheduling a retry", &e).await,
            };
        }
        if let Ok(early) = u64::try_from(due - now_ms)
            && early > 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(early)).await;
        }
    }

    // The webhook's in-flight slot: taken before reading Postgres when the
    // message names its webhook, else right after.
    let mut slot = None;
    if let Some(webhook) = msg.webhook_id() {
        match ctx.in_flight.acquire(WebhookId::from_uuid(webhook)).await {
            Some(permit) => slot = Some(permit),
            None => return defer(ctx, msg).await,
        }
    }

    let job = match ctx.store.load_job(id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::warn!("delivery no longer exists (its webhook was deleted); parking the message");
            return Settle::Reject;
        }
        Err(e) => return ctx.infrastructure_fault("loading delivery", &e).await,
    };
    span.record("webhook_id", tracing::field::display(job.webhook_id));
    let now = OffsetDateTime::now_utc();
    if trigger == Trigger::Scheduled && (job.state.is_terminal() || job.state == DeliveryState::Suspended) {
        tracing::debug!(state = job.state.as_str(), "nothing to do for this delivery");
        return Settle::Ack;
    }
    if !job.active {
        // Nothing is sent to an inactive webhook; an automatic attempt is
        // logged as skipped, a manual one changes nothing.
        if trigger == Trigger::Scheduled {
            if let Err(e) = ctx.store.set_delivery_state(id, DeliveryState::Skipped, now).await {
                return ctx.infrastructure_fault("skipping delivery", &e).await;
            }
            ctx.metrics.deliveries.inc(&["skipped"]);
            span.record("outcome", "skipped");
        }
        return Settle::Ack;
    }
    if job.status == HealthStatus::Suspended && !trigger.overrides_suspension() {
        return match ctx.store.set_delivery_state(id, DeliveryState::Suspended, now).await {
            Ok(()) => {
                ctx.metrics.deliveries.inc(&["suspended"]);
                span.record("outcome", "suspended");
                Settle::Ack
            }
            Err(e) => ctx.infrastructure_fault("holding delivery of a suspended webhook", &e).await,
        };
    }

    if slot.is_none() {
        match ctx.in_flight.acquire(job.webhook_id).await {
            Some(permit) => slot = Some(permit),
            None => return defer(ctx, msg).await,
        }
    }
    let _slot = slot;
    attempt(ctx, trigger, job, now, None).await
}

/// Signs and POSTs one delivery and records the attempt, the webhook's
/// health and what comes next, in an `attempt` span. The caller holds the
/// webhook's in-flight slot. (Dispatch calls it for first attempts straight
/// from the event; the deliveries queue for everything else.) When
/// `completes` names an event, recording this attempt completes its
/// dispatch: it is marked dispatched before `Ack` is returned.
pub(crate) async fn attempt(
    ctx: &Context,
    trigger: Trigger,
    job: DeliveryJob,
    now: OffsetDateTime,
    completes: Option<EventKey>,
) -> Settle {
    let span = tracing::info_span!(
        "attempt",
        delivery_id = %job.id,
        webhook_id = %job.webhook_id,
        trigger = trigger.as_str(),
        attempt_no = Empty,
        http.response.status_code = Empty,
        error.kind = Empty,
        retry_reason = Empty,
        outcome = Empty,
    );
    attempt_in_span(ctx, trigger, job, now, completes).instrument(span).await
}

/// An event's tenant and id.
pub(crate) type EventKey = (hookline_core::TenantId, hookline_core::EventId);

async fn attempt_in_span(
    ctx: &Context,
    trigger: Trigger,
    job: DeliveryJob,
    now: OffsetDateTime,
    completes: Option<EventKey>,
) -> Settle {
    let span = tracing::Span::current();
    let id = job.id;

    let mut tokens = vec![&job.token];
    if let Some((previous, until)) = &job.previous_token
        && *until > now
    {
        tokens.push(previous);
    }
    let request = http::Request {
        url: job.url.as_url(),
        delivery_id: id,
        tokens: &tokens,
        scheme: job.scheme,
        body: &job.body,
        allow: &ctx.allowed_networks,
    };
    let attempted = http::attempt(&ctx.client, request, ctx.excerpt_limit).await;
    ctx.metrics.attempt(&attempted.outcome, attempted.duration_ms);
    if let Some(status) = attempted.outcome.status() {
        span.record("http.response.status_code", status);
    }
    if let Some(kind) = attempted.outcome.error_kind() {
        span.record("error.kind", kind);
    }
    let trace_id = hookline_broker::trace::trace_id(&span);
    let attempt = NewAttempt {
        id: AttemptId::from_uuid(uuid::Uuid::now_v7()),
        delivery_id: id,
        trigger,
        sent_at: attempted.sent_at,
        received_at: attempted.received_at,
        duration_ms: attempted.duration_ms,
        status_code: attempted.outcome.status().map(i32::from),
        error_kind: attempted.outcome.error_kind().map(str::to_owned),
        error_message: attempted.error_message.clone(),
        response_excerpt: attempted.response_excerpt.clone(),
        trace_id: trace_id.clone(),
    };

    if attempted.outcome.is_success() {
        return match ctx.batches.successes.submit((attempt.clone(), completes)).await {
            Ok(attempt_no) => {
                span.record("attempt_no", attempt_no);
                span.record("outcome", "delivered");
                if job.state != DeliveryState::Delivered {
                    ctx.metrics.deliveries.inc(&["delivered"]);
                    let latency = (OffsetDateTime::now_utc() - job.ingested_at).as_seconds_f64().max(0.0);
                    ctx.metrics.delivery_latency.observe(&[], latency, trace_id.as_deref());
                }
                tracing::debug!(
                    attempt_no,
                    status = attempt.status_code,
                    duration_ms = attempt.duration_ms,
                    "delivered"
                );
                Settle::Ack
            }
            // The POST happened but is not recorded: hand the message back so
            // the attempt is made and recorded again (at-least-once).
            Err(e) => ctx.infrastructure_fault("recording attempt", &e).await,
        };
    }

    let recorded_at = OffsetDateTime::now_utc();
    let recorded = ctx
        .store
        .record_failure(&attempt, recorded_at, |facts| {
            let health = facts.health.after(&attempted.outcome, ctx.suspend_after_failures);
            let next = decide(
                &Attempted {
                    outcome: &attempted.outcome,
                    attempt_no: facts.attempt_no,
                    trigger,
                    previous_state: facts.previous_state,
                    health_after: health,
                    retry_after: attempted.retry_after,
                    jitter: jitter_sample(),
                    request_timeout: ctx.request_timeout,
                },
                &ctx.retry_schedule,
            );
            let next_attempt_at = match &next {
                Next::Retry { after, .. } => Some(recorded_at + *after),
                _ => None,
            };
            Decided { health, next, next_attempt_at }
        })
        .await;
    let recorded = match recorded {
        Ok(Some(recorded)) => recorded,
        Ok(None) => {
            tracing::info!("delivery deleted during the attempt; dropping");
            return Settle::Ack;
        }
        Err(e) => return ctx.infrastructure_fault("recording attempt", &e).await,
    };
    let health = recorded.decided.health;
    span.record("attempt_no", recorded.attempt_no);
    span.record("outcome", recorded.decided.next.state().as_str());
    match &recorded.decided.next {
        Next::Retry { reason, .. } => {
            span.record("retry_reason", reason.as_str());
            ctx.metrics.retries_scheduled.inc(&[]);
        }
        Next::Stop { state, reason } => {
            span.record("retry_reason", reason.as_str());
            if matches!(state, DeliveryState::Failed | DeliveryState::Suspended) && !job.state.is_terminal() {
                ctx.metrics.deliveries.inc(&[state.as_str()]);
            }
        }
        Next::Delivered => {}
    }
    tracing::info!(
        attempt_no = recorded.attempt_no,
        status = attempt.status_code,
        error = attempt.error_kind,
        consecutive_failures = health.consecutive_failures,
        webhook_status = health.status.as_str(),
        next = recorded.decided.next.state().as_str(),
        "attempt failed"
    );
    if let (Next::Retry { .. }, Some(due)) = (&recorded.decided.next, recorded.decided.next_attempt_at) {
        let retry = DeliveryMessage::retry(id.as_uuid(), job.webhook_id.as_uuid(), unix_ms(due));
        if let Err(e) = ctx.publisher().schedule(&retry, unix_ms(OffsetDateTime::now_utc())).await {
            // The failure is recorded but its retry is not queued: hand this
            // message back, so the delivery is attempted again rather than lost.
            return ctx.infrastructure_fault("scheduling the retry", &e).await;
        }
    }
    if let Some(event) = completes
        && let Err(e) = ctx.batches.dispatched.submit(event).await
    {
        return ctx.infrastructure_fault("marking event dispatched", &e).await;
    }
    Settle::Ack
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Jitter samples stay in [-1, 1] and are not all the same.
    #[test]
    fn jitter_samples_are_spread() {
        let samples: Vec<f64> = (0..1000).map(|_| jitter_sample()).collect();
        assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));
        assert!(samples.iter().any(|s| *s < -0.5) && samples.iter().any(|s| *s > 0.5));
    }

    /// Unix milliseconds of a known time.
    #[test]
    fn unix_millis() {
        assert_eq!(unix_ms(OffsetDateTime::UNIX_EPOCH + Duration::from_millis(1500)), 1500);
    }
}
