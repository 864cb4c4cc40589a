//! The deliveries queue: a delivery message → not due yet? on through a
//! delay tier → the webhook's slot and the account's share → claim (fenced)
//! → an unhealthy webhook's probe turn → [`crate::attempt`] → ack.
//!
//! A message acts only
//! if it still matches its delivery's row (`hookline_core::fence`): a stale
//! or duplicate copy is acked without an attempt, and a claim taken in the
//! same statement keeps two copies from attempting at once. Retries wait in
//! the broker's delay tiers, never here: a message that arrives before it is
//! due is sent through the next tier. The database being down is waited out
//! ([`Context::stored`]); a publish that fails after its step is committed
//! is left to reconciliation.
//!
//! Each message is handled in a `delivery` span whose parent is the trace
//! context the message carries; the attempt's span is its child.
//!
//! Deliveries released from a rate-limit queue take the same path from a
//! message built in this worker, never published ([`handle_released`],
//! called by `crate::rate`).

use hookline_broker::{DeliveryMessage, Message, topology::tier_for};
use hookline_core::{
    DeliveryId, DeliveryState, Fence, HealthStatus, Trigger, WebhookId, fence::unix_ms, needs_probe, rate::Admission,
};
use hookline_store::{Claim, DeliveryJob, Parked, Probe};
use time::OffsetDateTime;
use tracing::{Instrument, field::Empty};

use crate::{
    attempt::{Step, attempt},
    consume::Settle,
    fairness::{defer_delay, probe_wait_delay, quick_defer_delay},
    startup::Context,
};

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
    defer_to(ctx, msg, why, claimed, delay, None).await
}

/// [`defer_by`]; with `slot` (Unix ms), the message comes back then holding
/// its place in its webhook's rate-limit queue.
async fn defer_to(
    ctx: &Context,
    msg: DeliveryMessage,
    why: &str,
    claimed: bool,
    delay: std::time::Duration,
    slot: Option<i64>,
) -> Settle {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    ctx.metrics.deferrals.inc(&[]);
    let later_ms = now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    tracing::debug!(delay_ms = delay.as_millis(), "{why}; deferring");
    let mut later = msg.deferred(later_ms);
    if let Some(slot) = slot {
        later = later.holding_slot(slot);
    }
    let id = DeliveryId::from_uuid(msg.delivery_id());
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

/// The span one delivery is handled in; the handler records its fields.
fn delivery_span() -> tracing::Span {
    tracing::info_span!("delivery", delivery_id = Empty, webhook_id = Empty, trigger = Empty, outcome = Empty)
}

/// Handles one delivery message (first attempt, due retry, manual or
/// recover) in a span that continues the message's trace.
pub async fn handle(ctx: &Context, message: Message) -> Settle {
    let _in_flight = crate::metrics::InFlightGuard::new(&ctx.metrics.in_flight);
    let span = delivery_span();
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
    handle_message(ctx, msg, Timing::WaitUntilDue).await
}

/// Whether a delivery waits for its message's due time before going.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timing {
    /// Yes: through a delay tier, or here for the last milliseconds.
    WaitUntilDue,
    /// No: it is one of a clump of places released from its webhook's
    /// rate-limit queue that go together (`crate::rate`), all within the
    /// same second as their places.
    Now,
}

/// Attempts a delivery released from its webhook's rate-limit queue in this
/// worker, without a broker message (`crate::rate`): the path its message
/// would take, from the claim on, without waiting for its place's time.
/// Whatever keeps it from going now (the database down, the worker
/// stopping) leaves it as Postgres has it: released with its due time, so
/// reconciliation publishes it.
pub(crate) async fn handle_released(ctx: &Context, msg: DeliveryMessage) {
    let _in_flight = crate::metrics::InFlightGuard::new(&ctx.metrics.in_flight);
    if handle_message(ctx, msg, Timing::Now).instrument(delivery_span()).await != Settle::Ack {
        tracing::debug!("released delivery not handled now; reconciliation publishes it at its due time");
    }
}

async fn handle_message(ctx: &Context, msg: DeliveryMessage, timing: Timing) -> Settle {
    let id = DeliveryId::from_uuid(msg.delivery_id());
    let trigger = msg.trigger();
    let fence = msg.fence();
    let span = tracing::Span::current();
    span.record("delivery_id", tracing::field::display(id));
    span.record("trigger", trigger.as_str());

    // Not due yet: on through the next delay tier; the last few
    // milliseconds (less than the smallest tier) are waited out here, with
    // the message still unacked, so attempts start on time and in order.
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    if timing == Timing::WaitUntilDue
        && let Some(due) = msg.not_before_ms()
    {
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
    // A delivery released from its webhook's rate-limit queue takes them
    // after its claim: should it not get them, it goes back to the front of
    // that queue (which needs the claim), not around the delay tiers. The
    // queue hands out places at the limit whether or not the ones before
    // went, so released deliveries going round the tiers would pile up.
    let released = msg.slot_ms().is_some();
    if !released && let Some(webhook) = msg.webhook_id().map(WebhookId::from_uuid) {
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
            None if released => return wait_for_rate(ctx, msg, id).await,
            None => return defer(ctx, msg, "webhook at its in-flight cap", true).await,
        }
    }
    if shared && share.is_none() {
        match take_share(ctx, job.webhook_id, &job.tenant).await {
            Some(taken) => share = Some(taken),
            None if released => return wait_for_rate(ctx, msg, id).await,
            None => return defer(ctx, msg, "account at its share of the attempts", true).await,
        }
    }
    // A rate-limited webhook's request that cannot go now waits in
    // Postgres, queued (`crate::rate`); released, it holds its place and
    // goes as soon as its second has room. Fresh requests are queued without
    // asking while this worker knows the limit full.
    if let Some(limit) = job.rate_limit {
        let wait = if !released && ctx.rate_waiting.is_full(job.webhook_id) {
            true
        } else {
            match ctx.stored("asking the rate limit", || ctx.store.rate_admit(job.webhook_id, limit, released)).await {
                Ok(Admission::Send) => false,
                Ok(Admission::Wait) => {
                    ctx.rate_waiting.found_full(job.webhook_id);
                    true
                }
                Err(settle) => return settle,
            }
        };
        if wait {
            return wait_for_rate(ctx, msg, id).await;
        }
    }
    // An unhealthy webhook gets one request at a time across all workers.
    let probe = if needs_probe(job.status, trigger) {
        match probe_turn(ctx, msg, &job, now).await {
            Ok(taken) => taken,
            Err(settle) => return settle,
        }
    } else {
        false
    };
    let _held = (slot, share);
    let step = Step { trigger, takes_step: !matches!(fence, Fence::Manual(_)), probe };
    attempt(ctx, step, job, now, None).await
}

/// Queues a claimed delivery for its webhook's rate limit in Postgres (its
/// message acked; the rate pump releases it). A manual attempt, which has
/// no due time to fence it, waits in the broker for the next second
/// instead, holding its place.
async fn wait_for_rate(ctx: &Context, msg: DeliveryMessage, id: DeliveryId) -> Settle {
    let Fence::Due(due) = msg.fence() else {
        let now_ms = unix_ms(OffsetDateTime::now_utc());
        let next_second = (now_ms / 1000 + 1) * 1000;
        let wait = std::time::Duration::from_millis(u64::try_from(next_second - now_ms).unwrap_or(1000));
        return defer_to(ctx, msg, "webhook at its rate limit", true, wait, Some(next_second)).await;
    };
    match ctx.stored("queueing a delivery for its rate limit", || ctx.batches.queued.submit((id, Some(due)))).await {
        Ok(true) => {
            ctx.metrics.deferrals.inc(&[]);
            tracing::debug!("webhook at its rate limit; queued");
            Settle::Ack
        }
        Ok(false) => {
            ctx.metrics.fenced.inc(&[]);
            Settle::Ack
        }
        Err(settle) => settle,
    }
}

/// Takes the probe of `job`'s unhealthy webhook: the status is read again
/// in the same statement (`Ok(false)`: healthy again, no probe needed).
/// `Err` says how the message ends when the probe is
/// not this delivery's: a delivery that finds the probe in flight waits its
/// turn in Postgres (parked, woken when the probe's outcome is recorded);
/// one of a webhook suspended meanwhile is held; one that is no longer due
/// at its message's time is dropped.
async fn probe_turn(
    ctx: &Context,
    msg: DeliveryMessage,
    job: &DeliveryJob,
    now: OffsetDateTime,
) -> Result<bool, Settle> {
    let id = job.id;
    for _ in 0..4 {
        let taking = || ctx.store.take_probe(job.webhook_id, now, ctx.lease);
        match ctx.stored("taking a probe", taking).await? {
            Probe::Taken => return Ok(true),
            Probe::Status(HealthStatus::Suspended) => return Err(hold_suspended(ctx, id, now).await),
            Probe::Status(_) => return Ok(false),
            Probe::Busy(_) => {}
        }
        let Fence::Due(due) = msg.fence() else {
            let delay = probe_wait_delay(msg.deferrals());
            return Err(defer_by(ctx, msg, "webhook unhealthy, its probe in flight", true, delay).await);
        };
        let fallback = now + ctx.lease;
        let parking = || ctx.store.park_for_probe(id, job.webhook_id, due, now, fallback);
        match ctx.stored("waiting for a probe", parking).await? {
            Parked::Parked => {
                ctx.metrics.deferrals.inc(&[]);
                tracing::debug!("webhook unhealthy, its probe in flight; waiting for its turn");
                return Err(Settle::Ack);
            }
            Parked::Stale => {
                ctx.metrics.fenced.inc(&[]);
                return Err(Settle::Ack);
            }
            // The probe ended between the two statements: look again.
            Parked::ProbeEnded => {}
        }
    }
    let delay = probe_wait_delay(msg.deferrals());
    Err(defer_by(ctx, msg, "webhook unhealthy, its probe contended", true, delay).await)
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
async fn hold_suspended(ctx: &Context, id: DeliveryId, now: OffsetDateTime) -> Settle {
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
