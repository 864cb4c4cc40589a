//! Fan-out: an event message becomes one delivery per subscribed, active
//! webhook of its tenant, and each delivery's first attempt is made
//! straight from the event message. [`handle`] is where every event starts;
//! it takes one of two paths:
//!
//! - **Early** (module `early`), for the first copy of an event whose
//!   webhooks are all healthy and none failed in the last minute: who it
//!   goes to is read (a batched look-up, nothing written), each delivery is
//!   attempted, and the event, its deliveries and their successful attempts
//!   are written in one commit; then the message is acked. If an attempt
//!   failed, the careful recording takes over for what was made.
//! - **Careful** (a redelivered copy, a webhook that is unhealthy or failed
//!   lately): record the event and its deliveries (commit) → attempt and
//!   record each delivery (`attempt_fresh`) → mark the event dispatched →
//!   ack.
//!
//! Either way, until the ack the unacked event message is what stands for
//! its pending deliveries (they have no due time yet); a crash redelivers
//! it, and the store turns the repeat into "nothing to do" (dispatched) or
//! "give each pending delivery a due time at the end of the dispatch lease
//! and publish it" (the first copy may still be attempting; whichever acts
//! first fences off the other). Delivery ids are derived from the event and
//! the webhook, so a request made again carries the same `Webhook-Id`.

use hookline_broker::{EventMessage, Message};
use hookline_core::{DeliveryState, Event, EventId, HealthStatus, Trigger, fence::unix_ms, rate::Admission};
use hookline_store::{DeliveryJob, Dispatch, FreshDelivery, Looked, NewEvent, RecordedEvent, goes_early};
use time::OffsetDateTime;
use tracing::{Instrument, field::Empty};

use crate::{consume::Settle, startup::Context};

/// How long a dispatch of one event may take (record, attempt each delivery,
/// mark) before a second copy of the event treats it as abandoned and
/// publishes what is still pending. Until then a second copy waits, so two
/// concurrent copies of one event produce one request per webhook, not two.
/// A dispatch includes first attempts, so the lease is the request timeout
/// plus this margin; after a worker is killed mid-dispatch, or an attempt
/// could not be recorded, the event's pending deliveries wait that long
/// before going through the deliveries queue.
pub const DISPATCH_LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The dispatch lease for a request timeout.
pub fn dispatch_lease(request_timeout: std::time::Duration) -> time::Duration {
    time::Duration::try_from(request_timeout + DISPATCH_LEASE_MARGIN).unwrap_or(time::Duration::MINUTE)
}

/// What an event message may hold beyond `HOOKLINE_MAX_BODY_BYTES`: the
/// envelope's own fields (id, tenant, time) that the producer adds to a
/// request body it accepted.
pub const ENVELOPE_SLACK: usize = 4096;

/// Why an event message can never be dispatched.
#[derive(Debug, thiserror::Error)]
pub enum InvalidEvent {
    /// Larger than the limit.
    #[error("the event message is {size} bytes; at most {limit} are accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit, slack included.
        limit: usize,
    },
    /// The body is not an event envelope.
    #[error("not an event envelope: {0}")]
    Envelope(#[from] hookline_broker::Error),
    /// A field is invalid (the same rules as the API's).
    #[error(transparent)]
    Field(#[from] hookline_broker::InvalidField),
}

/// Turns a message (from the producer or published directly) into the event
/// to record: validated, with id, time and tenant filled in.
pub fn parse(message: &Message, now: OffsetDateTime, max_body_bytes: usize) -> Result<NewEvent, InvalidEvent> {
    let limit = max_body_bytes.saturating_add(ENVELOPE_SLACK);
    if message.body.len() > limit {
        return Err(InvalidEvent::TooLarge { size: message.body.len(), limit });
    }
    let mut envelope = EventMessage::decode(&message.body)?;
    // Published straight to the exchange, the id may come as the AMQP
    // `message_id` instead.
    if envelope.id.is_none() {
        envelope.id = message.message_id().map(str::to_owned);
    }
    let checked = envelope.check()?;
    let id = checked.id.unwrap_or_else(|| EventId::generate(uuid::Uuid::now_v7()));
    let triggered_at = checked.triggered_at.unwrap_or(now);
    let tenant = checked.tenant.unwrap_or_default();
    let event_type = checked.event_type;
    let body = Event::new(event_type.clone(), checked.data, triggered_at).to_body().into();
    let ingested_at = message.ingested_at();
    let accepted_at = accepted_at(ingested_at, message, now);
    Ok(NewEvent { tenant, id, event_type, body, triggered_at, ingested_at, accepted_at })
}

/// How far from now an event's stated acceptance time may be and still name
/// its deliveries: further off, a clock is wrong, and the ids (whose time
/// orders the scan for lost first attempts) take the worker's time instead.
const ACCEPTED_SKEW: time::Duration = time::Duration::minutes(5);

/// The time an event's delivery ids carry: when the producer accepted it
/// (its header), or when a direct publisher sent it (the message's
/// `timestamp`, in seconds), so every copy of the message derives the same
/// ids; failing both, now.
fn accepted_at(ingested_at: Option<OffsetDateTime>, message: &Message, now: OffsetDateTime) -> OffsetDateTime {
    ingested_at.or_else(|| message.timestamp()).filter(|at| (*at - now).abs() <= ACCEPTED_SKEW).unwrap_or(now)
}

/// Handles one event message, in a `dispatch` span that continues the trace
/// the message carries (the ingest request's, or a direct publisher's).
pub async fn handle(ctx: &Context, message: Message) -> Settle {
    let span = tracing::info_span!("dispatch", event_id = Empty, event_type = Empty, deliveries = Empty);
    hookline_broker::trace::continue_trace(&span, &message.properties);
    handle_in_span(ctx, message).instrument(span).await
}

/// Event bytes (with their working copies, [`COPIES`] each) dispatched at
/// once by one worker: what bounds its memory whatever the events' sizes,
/// beside the message count the prefetch bounds.
pub const DISPATCH_BUDGET_KIB: usize = 24 * 1024;

/// Copies of an event's bytes alive while it is dispatched (the message,
/// the parsed data, the signed body).
const COPIES: usize = 3;

async fn handle_in_span(ctx: &Context, message: Message) -> Settle {
    let redelivered = message.redelivered;
    if redelivered {
        ctx.metrics.redeliveries.inc(&["dispatch"]);
    }
    // Large events wait for room in the budget before they are parsed.
    let kib = u32::try_from((message.body.len().saturating_mul(COPIES) / 1024).clamp(1, DISPATCH_BUDGET_KIB))
        .unwrap_or(u32::MAX);
    let Ok(_room) = ctx.dispatch_budget.acquire_many(kib).await else { return Settle::Requeue };
    let now = OffsetDateTime::now_utc();
    let event = match parse(&message, now, ctx.max_body_bytes) {
        Ok(event) => event,
        Err(e) => return ctx.park(&message, &format!("invalid event: {e}")).await,
    };
    // The raw message is not needed past this point: only the signed body
    // (shared by every delivery) stays in memory.
    drop(message);
    if let Some(ingested_at) = event.ingested_at {
        ctx.lateness.observe(unix_ms(now) - unix_ms(ingested_at));
    }
    let span = tracing::Span::current();
    span.record("event_id", tracing::field::display(&event.id));
    span.record("event_type", tracing::field::display(&event.event_type));

    // A first copy goes early when it can: its attempts made before
    // anything is written, then one commit. A redelivered copy (its first
    // may have sent and recorded some of it) takes the careful path.
    if !redelivered {
        let key = event.key();
        match ctx.underway.start(key.clone()) {
            Some(_underway) => {
                let looked = match ctx
                    .stored("looking up an event's webhooks", || ctx.batches.lookups.submit(event.clone()))
                    .await
                {
                    Ok(looked) => looked,
                    Err(settle) => return settle,
                };
                if let Looked::Fresh(deliveries) = looked
                    && goes_early(&deliveries, OffsetDateTime::now_utc())
                {
                    return crate::early::dispatch(ctx, &event, deliveries).await;
                }
            }
            // The same event is being dispatched early here: once it is
            // recorded, the careful path finds it so.
            None => ctx.underway.wait(&key).await,
        }
    }

    let recorded = match ctx.stored("recording an event", || ctx.batches.events.submit(event.clone())).await {
        Ok(recorded) => recorded,
        Err(settle) => return settle,
    };
    let steps = match recorded {
        RecordedEvent::Fresh(deliveries) => return attempt_fresh(ctx, &event, deliveries).await,
        RecordedEvent::Seen(Dispatch::Duplicate) => {
            tracing::debug!("duplicate event; already dispatched");
            return Settle::Ack;
        }
        RecordedEvent::Seen(Dispatch::Publish(steps)) => steps,
    };
    publish_redelivered(ctx, &steps).await;
    if let Err(settle) = ctx.mark_dispatched(&event.key()).await {
        return settle;
    }
    span.record("deliveries", steps.len());
    tracing::debug!(deliveries = steps.len(), "redelivered event dispatched");
    Settle::Ack
}

/// Publishes the steps of an event seen before and not dispatched (a
/// redelivery): each pending delivery that had no due time now has one, the
/// end of the first copy's lease, and goes due then. Their due times are
/// committed, so a failed publish is reconciled.
pub(crate) async fn publish_redelivered(ctx: &Context, steps: &[hookline_store::Due]) {
    let now_ms = unix_ms(OffsetDateTime::now_utc());
    for step in steps {
        if let Err(e) = ctx.publisher().schedule(&crate::startup::step_message(step), now_ms).await {
            ctx.publish_failed("publishing a redelivered event's deliveries", &e);
            break;
        }
    }
}

/// What an attempt of a fresh event's delivery needs.
pub(crate) fn job(event: &NewEvent, d: FreshDelivery, now: OffsetDateTime) -> DeliveryJob {
    DeliveryJob {
        id: d.id,
        tenant: event.tenant.clone(),
        state: DeliveryState::Pending,
        attempt_count: 0,
        next_attempt_at: None,
        event_id: event.id.clone(),
        event_type: event.event_type.to_string(),
        body: event.body.clone(),
        webhook_id: d.webhook_id,
        url: d.url,
        token: d.token,
        previous_token: d.previous_token,
        scheme: d.scheme,
        active: true,
        status: d.status,
        ingested_at: event.ingested_at.unwrap_or(now),
        headers: d.headers,
        rate_limit: d.rate_limit,
    }
}

/// A first attempt made from the event message: the delivery's own step.
pub(crate) const FIRST: crate::attempt::Step =
    crate::attempt::Step { trigger: Trigger::Scheduled, takes_step: true, probe: false };

/// Hands a fresh event's delivery to the deliveries queue (its webhook is at
/// its in-flight cap, or its attempt could not be recorded): it gets a due
/// time, then a message.
pub(crate) async fn hand_off(ctx: &Context, delivery: hookline_core::DeliveryId) -> Settle {
    let now = OffsetDateTime::now_utc();
    let steps = match ctx
        .stored("handing a delivery to the queue", || ctx.store.hand_off(std::slice::from_ref(&delivery), now))
        .await
    {
        Ok(steps) => steps,
        Err(settle) => return settle,
    };
    if let Err(e) = ctx.publish_steps(&steps).await {
        ctx.publish_failed("handing a delivery to the queue", &e);
    }
    Settle::Ack
}

/// Queues a fresh event's delivery for its webhook's rate limit in Postgres
/// (`crate::rate`): no due time and no message; the rate pump releases it.
async fn queue_fresh(ctx: &Context, delivery: hookline_core::DeliveryId) -> Settle {
    match ctx.stored("queueing a delivery for its rate limit", || ctx.batches.queued.submit((delivery, None))).await {
        Ok(_) => {
            ctx.metrics.deferrals.inc(&[]);
            Settle::Ack
        }
        Err(settle) => settle,
    }
}

/// A fresh event's deliveries, attempted straight from the event message
/// (no second trip through the broker), all at once. A webhook at its
/// in-flight cap gets its delivery through the deliveries queue instead.
/// The event is acked once every attempt (or hand-off) is recorded; if any
/// is not, it is handed back, and its redelivery publishes what is still
/// pending once the dispatch lease has run out.
async fn attempt_fresh(ctx: &Context, event: &NewEvent, deliveries: Vec<FreshDelivery>) -> Settle {
    let span = tracing::Span::current();
    span.record("deliveries", deliveries.len());
    ctx.metrics.deliveries_created.add(&[], u64::try_from(deliveries.len()).unwrap_or(u64::MAX));
    let now = OffsetDateTime::now_utc();
    // A single delivery attempted here completes the event: its recording
    // marks the event dispatched in the same commit.
    let single = deliveries.len() == 1;
    let attempts = deliveries.into_iter().map(|d| {
        async move {
            ctx.known.note(d.webhook_id, &event.tenant, d.status);
            // This worker found the webhook's rate limit full within a
            // tick: queued at once, no slot, share or turn on the limiter.
            if d.rate_limit.is_some() && ctx.rate_waiting.is_full(d.webhook_id) {
                return (queue_fresh(ctx, d.id).await, false);
            }
            // An unhealthy webhook gets one request at a time (its probe);
            // without it, and for an account at its share or a busy
            // webhook, the delivery goes back through the broker.
            let Some(share) = crate::deliver::take_share(ctx, d.webhook_id, &event.tenant).await else {
                return (hand_off(ctx, d.id).await, false);
            };
            let Some(slot) = crate::deliver::take_slot(ctx, d.webhook_id).await else {
                return (hand_off(ctx, d.id).await, false);
            };
            // At most `concurrency` first attempts at once per worker; the
            // attempt's (large) future exists only while it runs, so events
            // waiting their turn cost little memory.
            let Ok(permit) = ctx.attempts.acquire().await else { return (Settle::Requeue, false) };
            // A rate-limited webhook's delivery goes now if its limit has
            // room (asked with the permit in hand, so the request follows at
            // once); else it is queued in Postgres. Should the limit not be
            // answered, the deliveries queue asks again.
            if let Some(limit) = d.rate_limit {
                let asking = || ctx.store.rate_admit(d.webhook_id, limit, false);
                let wait = match ctx.stored("asking the rate limit", asking).await {
                    Ok(Admission::Send) => None,
                    Ok(Admission::Wait) => {
                        ctx.rate_waiting.found_full(d.webhook_id);
                        Some(true)
                    }
                    Err(_) => Some(false),
                };
                if let Some(queue) = wait {
                    drop((permit, slot, share));
                    let settle = if queue { queue_fresh(ctx, d.id).await } else { hand_off(ctx, d.id).await };
                    return (settle, false);
                }
            }
            let mut probe = false;
            if d.status != HealthStatus::Healthy {
                let taking = || ctx.store.take_probe(d.webhook_id, now, ctx.lease);
                match ctx.stored("taking a probe", taking).await {
                    Ok(hookline_store::Probe::Taken) => probe = true,
                    Ok(hookline_store::Probe::Status(HealthStatus::Healthy)) => {}
                    Ok(_) | Err(_) => {
                        drop((permit, slot, share));
                        return (hand_off(ctx, d.id).await, false);
                    }
                }
            }
            let id = d.id;
            let job = job(event, d, now);
            let _permit = permit;
            // Checked again just before the request: a failure recorded
            // meanwhile (a 410, the threshold) stops it here.
            if !probe && !crate::early::sendable(ctx, job.webhook_id).await {
                drop((slot, share));
                return (hand_off(ctx, id).await, false);
            }
            let completes = single.then(|| event.key());
            let step = crate::attempt::Step { probe, ..FIRST };
            let settle = Box::pin(crate::attempt::attempt(ctx, step, job, now, completes)).await;
            drop((slot, share));
            match settle {
                // Its attempt could not be recorded and never will be: it
                // must not wait on this event message (which is acked), so
                // it goes to the queue with a due time.
                Settle::Reject => (hand_off(ctx, id).await, false),
                settle => (settle, single && settle == Settle::Ack),
            }
        }
    });
    let settled = futures_util::future::join_all(attempts).await;
    if let Some((settle, _)) = settled.iter().find(|(settle, _)| *settle != Settle::Ack) {
        // Stopping: the event goes back, and its redelivery publishes
        // what is still pending.
        return *settle;
    }
    let marked = settled.iter().any(|(_, marked)| *marked);
    if !marked && let Err(settle) = ctx.mark_dispatched(&event.key()).await {
        return settle;
    }
    ctx.metrics.events_dispatched.inc(&[]);
    tracing::debug!("event dispatched and attempted");
    Settle::Ack
}
