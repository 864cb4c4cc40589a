//! Delivery: a delivery message → claim (fenced) → sign and POST → record
//! the attempt and the webhook's health → schedule the retry, if any → ack.
//!
//! The receiver's answer is an outcome, never an error. A message acts only
//! if it still matches its delivery's row (`hookline_core::fence`): a stale
//! or duplicate copy is acked without an attempt, and a claim taken in the
//! same statement keeps two copies from attempting at once. Retries wait in
//! the broker's delay tiers, never here: a message that arrives before it is
//! due is sent through the next tier. The database being down is waited out
//! ([`Context::stored`]); a publish that fails after its step is committed
//! is left to reconciliation.
//!
//! Each message is handled in a `delivery` span whose parent is the trace
//! context the message carries; a request made is an `attempt` span inside
//! it (webhook id, attempt number, status code or error, retry reason), with
//! the outbound `POST` as its child. The trace id is recorded with the attempt.

use hookline_broker::{DeliveryMessage, Message, topology::tier_for};
use hookline_core::{
    AttemptId, Attempted, DeliveryState, Fence, HealthStatus, Next, Trigger, WebhookId, decide,
    fence::{truncate_ms, unix_ms},
    needs_probe,
};
use hookline_store::{Claim, Decided, DeliveryJob, NewAttempt, Parked, Probe};
use time::OffsetDateTime;
use tracing::{Instrument, field::Empty};

use crate::{
    consume::Settle,
    fairness::{defer_delay, probe_wait_delay, quick_defer_delay},
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

/// Publishes a message whose step is committed; a failure is left to
/// reconciliation and the message is acked either way.
async fn publish_later(ctx: &Context, what: &str, message: &DeliveryMessage, now_ms: i64) -> Settle {
    if let Err(e) = ctx.publisher().schedule(message, now_ms).await {
        ctx.publish_failed(what, &e);
    }
    Settle::Ack
}

/// Sends a delivery whose webhook is at its in-flight cap through a delay
/// tier, freeing this worker slot for other webhooks. A scheduled step's due
/// time moves with it (so reconciliation does not count it as lost); a
/// message that no longer matches is dropped instead.
async fn defer(ctx: &Context, msg: DeliveryMessage, why: &str, claimed: bool) -> Settle {
    // A webhook that answers quickly frees its slots within moments: a
    // short wait; a slow or hanging one: a long one.
    let quick = msg.webhook_id().is_some_and(|w| ctx.in_flight.is_quick(WebhookId::from_uuid(w)));
    let delay = if quick { quick_defer_delay(msg.deferrals()) } else { defer_delay(msg.deferrals()) };
    defer_by(ctx, msg, why, claimed, delay).await
}

/// [`defer`] by a given delay.
async fn defer_by(ctx: &Context, msg: DeliveryMessage, why: &str, claimed: bool, delay: std::time::Duration) -> Settle {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    ctx.metrics.deferrals.inc(&[]);
    let later_ms = now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    tracing::debug!(delay_ms = delay.as_millis(), "{why}; deferring");
    let mut later = msg.deferred(later_ms);
    let id = hookline_core::DeliveryId::from_uuid(msg.delivery_id());
    if let Fence::Due(due) = msg.fence() {
        let to = hookline_core::fence::from_unix_ms(later_ms);
        match ctx.stored("postponing a delivery", || ctx.store.postpone(id, due, to, claimed)).await {
            Ok(true) => later = later.with_due(later_ms),
            Ok(false) => {
                ctx.metrics.fenced.inc(&[]);
                return Settle::Ack;
            }
            Err(settle) => return settle,
        }
    } else if claimed && let Err(settle) = ctx.stored("releasing a delivery", || ctx.store.release(id)).await {
        return settle;
    }
    publish_later(ctx, "deferring a delivery", &later, now_ms).await
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
    if message.redelivered {
        ctx.metrics.redeliveries.inc(&["delivery"]);
    }
    let msg = match DeliveryMessage::decode(&message.body) {
        Ok(msg) => msg,
        Err(e) => return ctx.park(&message, &format!("malformed delivery message: {e}")).await,
    };
    let id = hookline_core::DeliveryId::from_uuid(msg.delivery_id());
    let trigger = msg.trigger();
    let fence = msg.fence();
    let span = tracing::Span::current();
    span.record("delivery_id", tracing::field::display(id));
    span.record("trigger", trigger.as_str());

    // Not due yet: on through the next delay tier; the last few
    // milliseconds (less than the smallest tier) are waited out here, with
    // the message still unacked, so attempts start on time and in order.
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    if let Some(due) = msg.not_before_ms() {
        ctx.lateness.observe(now_ms - due);
        if tier_for(due - now_ms).is_some() {
            return publish_later(ctx, "re-scheduling a delivery", &msg, now_ms).await;
        }
        if let Ok(early) = u64::try_from(due - now_ms)
            && early > 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(early)).await;
        }
    }

    // The webhook's in-flight slot and the account's share, before the
    // claim when the message names the webhook (a deferred delivery must not
    // hold a claim); messages of old releases may not name it. A manual
    // attempt, asked for by a person, does not wait for a share.
    let shared = trigger != Trigger::Manual;
    let mut slot = None;
    let mut share = None;
    if let Some(webhook) = msg.webhook_id().map(WebhookId::from_uuid) {
        match take_slot(ctx, webhook).await {
            Some(permit) => slot = Some(permit),
            None => return defer(ctx, msg, "webhook at its in-flight cap", false).await,
        }
        if shared && let Some((tenant, _)) = ctx.known.get(webhook) {
            match take_share(ctx, webhook, &tenant).await {
                Some(taken) => share = Some(taken),
                None => return defer(ctx, msg, "account at its share of the attempts", false).await,
            }
        }
    }

    let now = OffsetDateTime::now_utc();
    let claim = match ctx.stored("claiming a delivery", || ctx.store.claim(id, fence, trigger, now, ctx.lease)).await {
        Ok(claim) => claim,
        Err(settle) => return settle,
    };
    let job = match claim {
        Claim::Claimed(job) => *job,
        Claim::Gone => {
            tracing::info!("delivery no longer exists (its webhook was deleted); nothing to do");
            return Settle::Ack;
        }
        Claim::Refused { row, claimed_until } => {
            if fence.admits(trigger, &row) {
                // Another worker is attempting it: look again once its
                // claim has run out (it has recorded by then, or died).
                let again = claimed_until.map_or(now_ms, unix_ms).max(now_ms.saturating_add(1000));
                tracing::debug!("delivery claimed by another attempt; looking again when the claim ends");
                return publish_later(ctx, "waiting out a claim", &msg.later(again), now_ms).await;
            }
            ctx.metrics.fenced.inc(&[]);
            tracing::debug!(state = row.state.as_str(), ?fence, "stale or duplicate delivery message; nothing to do");
            return Settle::Ack;
        }
    };
    span.record("webhook_id", tracing::field::display(job.webhook_id));
    ctx.known.note(job.webhook_id, &job.tenant, job.status);
    if !job.active {
        // Nothing is sent to an inactive webhook; an automatic attempt is
        // logged as skipped, a manual one changes nothing.
        let ended = if trigger == Trigger::Scheduled {
            ctx.stored("skipping a delivery", || ctx.store.hold(id, DeliveryState::Skipped, now)).await
        } else {
            ctx.stored("releasing a delivery", || ctx.store.release(id)).await
        };
        if let Err(settle) = ended {
            return settle;
        }
        if trigger == Trigger::Scheduled {
            ctx.metrics.deliveries.inc(&["skipped"]);
            span.record("outcome", "skipped");
        }
        return Settle::Ack;
    }
    if job.status == HealthStatus::Suspended && !trigger.overrides_suspension() {
        return hold_suspended(ctx, id, now).await;
    }
    if slot.is_none() {
        match take_slot(ctx, job.webhook_id).await {
            Some(permit) => slot = Some(permit),
            None => return defer(ctx, msg, "webhook at its in-flight cap", true).await,
        }
    }
    if shared && share.is_none() {
        match take_share(ctx, job.webhook_id, &job.tenant).await {
            Some(taken) => share = Some(taken),
            None => return defer(ctx, msg, "account at its share of the attempts", true).await,
        }
    }
    // An unhealthy webhook gets one request at a time across all workers:
    // the status is read again in the same statement that takes the probe.
    // A delivery that finds the probe in flight waits its turn in Postgres.
    let mut probe = false;
    if needs_probe(job.status, trigger) {
        let mut looks = 0;
        loop {
            let taking = || ctx.store.take_probe(job.webhook_id, now, ctx.lease);
            match ctx.stored("taking a probe", taking).await {
                Ok(Probe::Taken) => probe = true,
                Ok(Probe::Status(HealthStatus::Suspended)) => return hold_suspended(ctx, id, now).await,
                Ok(Probe::Status(_)) => {}
                Ok(Probe::Busy(_)) => {
                    let Fence::Due(due) = fence else {
                        let delay = probe_wait_delay(msg.deferrals());
                        return defer_by(ctx, msg, "webhook unhealthy, its probe in flight", true, delay).await;
                    };
                    let parked = ctx
                        .stored("waiting for a probe", || {
                            let fallback = now + ctx.lease;
                            ctx.store.park_for_probe(id, job.webhook_id, due, now, fallback)
                        })
                        .await;
                    match parked {
                        Ok(Parked::Parked) => {
                            ctx.metrics.deferrals.inc(&[]);
                            tracing::debug!("webhook unhealthy, its probe in flight; waiting for its turn");
                            return Settle::Ack;
                        }
                        Ok(Parked::Stale) => {
                            ctx.metrics.fenced.inc(&[]);
                            return Settle::Ack;
                        }
                        Ok(Parked::ProbeEnded) if looks < 3 => {
                            looks += 1;
                            continue;
                        }
                        Ok(Parked::ProbeEnded) => {
                            let delay = probe_wait_delay(msg.deferrals());
                            return defer_by(ctx, msg, "webhook unhealthy, its probe contended", true, delay).await;
                        }
                        Err(settle) => return settle,
                    }
                }
                Err(settle) => return settle,
            }
            break;
        }
    }
    let _held = (slot, share);
    let step = Step { trigger, takes_step: !matches!(fence, Fence::Manual(_)), probe };
    attempt(ctx, step, job, now, None).await
}

/// A slot in an account's share for a request to `webhook`: waited for
/// while the webhook is not known to be slow (its slots turn over within
/// moments), taken without waiting otherwise (a slow account's excess goes
/// back to the broker). A worker that is stopping waits for none: the delivery goes
/// back to the broker at once.
pub(crate) async fn take_share(
    ctx: &Context,
    webhook: WebhookId,
    tenant: &hookline_core::TenantId,
) -> Option<crate::fairness::Share> {
    if !ctx.in_flight.is_quick(webhook) {
        return ctx.shares.try_take(tenant);
    }
    tokio::select! {
        biased;
        share = ctx.shares.take_quick(tenant, || ctx.in_flight.is_quick(webhook)) => share,
        () = ctx.stopping.cancelled() => None,
    }
}

/// A slot among `webhook`'s requests in flight ([`crate::fairness::InFlight::acquire`]),
/// not waited for once the worker is stopping.
pub(crate) async fn take_slot(ctx: &Context, webhook: WebhookId) -> Option<crate::fairness::Slot> {
    tokio::select! {
        biased;
        slot = ctx.in_flight.acquire(webhook) => slot,
        () = ctx.stopping.cancelled() => None,
    }
}

/// Holds a claimed delivery of a suspended webhook: logged, not sent.
async fn hold_suspended(ctx: &Context, id: hookline_core::DeliveryId, now: OffsetDateTime) -> Settle {
    if let Err(settle) = ctx
        .stored("holding a delivery of a suspended webhook", || ctx.store.hold(id, DeliveryState::Suspended, now))
        .await
    {
        return settle;
    }
    ctx.metrics.deliveries.inc(&["suspended"]);
    tracing::Span::current().record("outcome", "suspended");
    Settle::Ack
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

/// An event's tenant and id.
pub(crate) type EventKey = (hookline_core::TenantId, hookline_core::EventId);

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
        let recorded = record(ctx, &attempt, |attempt| ctx.batches.successes.submit((attempt, completes.clone())));
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
