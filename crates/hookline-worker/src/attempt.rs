//! One attempt: sign and POST a claimed (or freshly fanned-out) delivery,
//! then record what happened: a success through the group commit, a
//! failure with its health decision and next step in one transaction,
//! then the retry published and the webhook's waiting deliveries handed on.
//!
//! The receiver's answer is an outcome, never an error. An attempt is an
//! `attempt` span (webhook id, attempt number, status code or error, retry
//! reason) with the outbound `POST` as its child; its trace id is recorded
//! with the attempt.

use hookline_broker::DeliveryMessage;
use hookline_core::{
    AttemptId, Attempted, DeliveryState, HealthStatus, Next, Trigger, WebhookId, decide,
    fence::{truncate_ms, unix_ms},
};
use hookline_store::{Decided, DeliveryJob, EventKey, NewAttempt};
use time::OffsetDateTime;
use tracing::{Instrument, field::Empty};

use crate::{
    consume::Settle,
    outbound,
    startup::{Context, Fault},
};

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

/// What an attempt is: its trigger, and whether it is the delivery's own
/// due step or an extra manual one (which leaves that step where it is).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    /// What caused it.
    pub(crate) trigger: Trigger,
    /// Whether it takes the delivery's due step.
    pub(crate) takes_step: bool,
    /// Whether it is its unhealthy webhook's probe: once recorded, the turn
    /// goes to the next delivery waiting for it.
    pub(crate) probe: bool,
}

/// Records an attempt with `op`, waiting out transient faults. One that can
/// never be stored as received (a permanent fault) is recorded without the
/// receiver's text instead, so whatever a receiver sends, its attempt is
/// counted and the delivery moves on; only when that fails too is the
/// message parked.
async fn record<T, E: Fault, Fut>(
    ctx: &Context,
    attempt: &NewAttempt,
    op: impl Fn(NewAttempt) -> Fut,
) -> Result<T, Settle>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    match ctx.stored("recording an attempt", || op(attempt.clone())).await {
        Err(Settle::Reject) => {
            tracing::warn!("recording the attempt as received failed; recording it without the receiver's text");
            ctx.stored("recording an attempt without the receiver's text", || op(attempt.stripped())).await
        }
        other => other,
    }
}

/// After an outcome changed what a webhook's waiting deliveries may do: on
/// a success all of them go at once (full speed again); after a probe that
/// failed the oldest gets the turn; a suspension holds them all.
async fn hand_on(ctx: &Context, webhook: WebhookId, probe: bool, was: HealthStatus, now: HealthStatus) {
    let at = OffsetDateTime::now_utc();
    let woken = match now {
        HealthStatus::Suspended => {
            match ctx.store.hold_parked(webhook, at).await {
                Ok(held) if held > 0 => {
                    ctx.metrics.deliveries.add(&["suspended"], held);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error.message = %e, "holding waiting deliveries failed; reconciliation will"),
            }
            return;
        }
        HealthStatus::Healthy if probe || was != HealthStatus::Healthy => {
            ctx.store.wake_parked(webhook, at, crate::reconcile::BATCH).await
        }
        HealthStatus::Unhealthy if probe => ctx.store.wake_parked(webhook, at, 1).await,
        _ => return,
    };
    let steps = match woken {
        Ok(steps) if !steps.is_empty() => steps,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error.message = %e, "handing on a probe's turn failed; reconciliation will");
            return;
        }
    };
    if let Err(e) = ctx.publish_steps(&steps).await {
        ctx.publish_failed("handing on a probe's turn", &e);
    }
}

/// Signs and POSTs one delivery and records the attempt, the webhook's
/// health and what comes next, in an `attempt` span. The caller holds the
/// webhook's in-flight slot. (Dispatch calls it for first attempts straight
/// from the event; the deliveries queue for everything else.) When
/// `completes` names an event, recording this attempt completes its
/// dispatch: it is marked dispatched before `Ack` is returned.
pub(crate) async fn attempt(
    ctx: &Context,
    step: Step,
    job: DeliveryJob,
    now: OffsetDateTime,
    completes: Option<EventKey>,
) -> Settle {
    let span = attempt_span(&job, step.trigger);
    async {
        let sent = send(ctx, step.trigger, &job, now).await;
        record_outcome(ctx, step, job, sent, completes).await
    }
    .instrument(span)
    .await
}

/// The span of one attempt: the request, and the recording of its outcome.
pub(crate) fn attempt_span(job: &DeliveryJob, trigger: Trigger) -> tracing::Span {
    tracing::info_span!(
        "attempt",
        delivery_id = %job.id,
        webhook_id = %job.webhook_id,
        trigger = trigger.as_str(),
        attempt_no = Empty,
        http.response.status_code = Empty,
        error.kind = Empty,
        retry_reason = Empty,
        outcome = Empty,
    )
}

/// A request made: what came back, and the attempt to record.
#[derive(Debug)]
pub(crate) struct Sent {
    /// The classified result, as the client saw it.
    pub(crate) exchange: outbound::Exchange,
    /// The attempt as it is recorded.
    pub(crate) attempt: NewAttempt,
}

/// Signs and POSTs `job` (in the caller's `attempt` span), notes how long
/// its webhook took and counts the outcome. Nothing is recorded.
pub(crate) async fn send(ctx: &Context, trigger: Trigger, job: &DeliveryJob, now: OffsetDateTime) -> Sent {
    let span = tracing::Span::current();
    let mut tokens = vec![&job.token];
    if let Some((previous, until)) = &job.previous_token
        && *until > now
    {
        tokens.push(previous);
    }
    let request = outbound::Request {
        url: job.url.as_url(),
        delivery_id: job.id,
        tokens: &tokens,
        scheme: job.scheme,
        body: &job.body,
        headers: &job.headers,
        allow: &ctx.allowed_networks,
    };
    let exchange = outbound::attempt(&ctx.client, request, ctx.excerpt_limit).await;
    ctx.in_flight
        .answered(job.webhook_id, std::time::Duration::from_millis(u64::try_from(exchange.duration_ms).unwrap_or(0)));
    ctx.metrics.attempt(&exchange.outcome, exchange.duration_ms);
    if let Some(status) = exchange.outcome.status() {
        span.record("http.response.status_code", status);
    }
    if let Some(kind) = exchange.outcome.error_kind() {
        span.record("error.kind", kind);
    }
    let attempt = NewAttempt {
        id: AttemptId::from_uuid(uuid::Uuid::now_v7()),
        delivery_id: job.id,
        trigger,
        sent_at: exchange.sent_at,
        received_at: exchange.received_at,
        duration_ms: exchange.duration_ms,
        status_code: exchange.outcome.status().map(i32::from),
        error_kind: exchange.outcome.error_kind().map(str::to_owned),
        error_message: exchange.error_message.clone(),
        response_excerpt: exchange.response_excerpt.clone(),
        trace_id: hookline_broker::trace::trace_id(&span),
    };
    Sent { exchange, attempt }
}

/// What follows a recorded success: the webhook is healthy again (waiting
/// deliveries go), the span and metrics say so.
pub(crate) async fn delivered(
    ctx: &Context,
    job: &DeliveryJob,
    probe: bool,
    attempt: &NewAttempt,
    attempt_no: Option<i32>,
) {
    let span = tracing::Span::current();
    ctx.known.set_status(job.webhook_id, HealthStatus::Healthy);
    hand_on(ctx, job.webhook_id, probe, job.status, HealthStatus::Healthy).await;
    span.record("attempt_no", attempt_no);
    span.record("outcome", "delivered");
    if job.state != DeliveryState::Delivered {
        ctx.metrics.deliveries.inc(&["delivered"]);
        let latency = (OffsetDateTime::now_utc() - job.ingested_at).as_seconds_f64().max(0.0);
        ctx.metrics.delivery_latency.observe(&[], latency, attempt.trace_id.as_deref());
    }
    tracing::debug!(attempt_no, status = attempt.status_code, duration_ms = attempt.duration_ms, "delivered");
}

/// Records a request's outcome (in the caller's `attempt` span): the
/// attempt, the webhook's health and what comes next.
pub(crate) async fn record_outcome(
    ctx: &Context,
    step: Step,
    job: DeliveryJob,
    sent: Sent,
    completes: Option<EventKey>,
) -> Settle {
    let Step { trigger, takes_step, probe } = step;
    let span = tracing::Span::current();
    let id = job.id;
    let Sent { exchange, attempt } = sent;

    if exchange.outcome.is_success() {
        // The POST happened: its record is waited for while the database is
        // away, never dropped (a redelivery would POST again).
        let recorded = record(ctx, &attempt, |attempt| {
            ctx.batches.successes.submit(crate::batch::Success { attempt, completes: completes.clone() })
        });
        return match recorded.await {
            Ok(attempt_no) => {
                delivered(ctx, &job, probe, &attempt, attempt_no).await;
                Settle::Ack
            }
            Err(settle) => settle,
        };
    }

    let recorded = record(ctx, &attempt, |attempt| async move {
        let recorded_at = OffsetDateTime::now_utc();
        ctx.store
            .record_failure(&attempt, recorded_at, move |facts| {
                let health = facts.health.after(&exchange.outcome, ctx.suspend_after_failures);
                let next = decide(
                    &Attempted {
                        outcome: &exchange.outcome,
                        attempt_no: facts.attempt_no,
                        trigger,
                        takes_step,
                        previous_state: facts.previous_state,
                        health_after: health,
                        retry_after: exchange.retry_after,
                        jitter: jitter_sample(),
                        request_timeout: ctx.request_timeout,
                    },
                    &ctx.retry_schedule,
                );
                let next_attempt_at = match &next {
                    // Whole milliseconds: the retry message carries it as its fence.
                    Next::Retry { after, .. } => Some(truncate_ms(recorded_at + *after)),
                    // A step still due keeps its time.
                    Next::Stop { state: DeliveryState::Pending | DeliveryState::Retrying, .. } => facts.next_attempt_at,
                    _ => None,
                };
                Decided { health, next, next_attempt_at, probe }
            })
            .await
    })
    .await;
    let recorded = match recorded {
        Ok(Some(recorded)) => recorded,
        Ok(None) => {
            tracing::info!("delivery deleted during the attempt; dropping");
            return Settle::Ack;
        }
        Err(settle) => return settle,
    };
    let health = recorded.decided.health;
    ctx.known.set_status(job.webhook_id, health.status);
    hand_on(ctx, job.webhook_id, probe, job.status, health.status).await;
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
        // The retry's due time is committed: a publish that fails is
        // published again by reconciliation.
        let retry = DeliveryMessage::due(id.as_uuid(), job.webhook_id.as_uuid(), unix_ms(due), Trigger::Scheduled);
        if let Err(e) = ctx.publisher().schedule(&retry, unix_ms(OffsetDateTime::now_utc())).await {
            ctx.publish_failed("scheduling a retry", &e);
        }
    }
    if let Some(event) = completes
        && let Err(settle) = ctx.mark_dispatched(&event).await
    {
        return settle;
    }
    Settle::Ack
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jitter samples stay in [-1, 1] and are not all the same.
    #[test]
    fn jitter_samples_are_spread() {
        let samples: Vec<f64> = (0..1000).map(|_| jitter_sample()).collect();
        assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));
        assert!(samples.iter().any(|s| *s < -0.5) && samples.iter().any(|s| *s > 0.5));
    }
}
