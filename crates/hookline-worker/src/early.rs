//! A fresh event's fast path: attempt first, record once.
//!
//! The first copy of an event message whose webhooks are all healthy, and
//! free to take a request now, is attempted before anything about it is
//! written: who it goes to is read ([`hookline_store::Store::look_up`]),
//! each delivery is POSTed, and when every one succeeded the event, its
//! deliveries and their attempts are written in one commit; then the
//! message is acked. One commit instead of two, and the first POST waits for
//! a read, not for a write.
//!
//! Until that commit the unacked event message is the record. A crash
//! redelivers it; the redelivery takes the careful path (record, then
//! attempt) with the same derived delivery ids, so a request made again
//! carries the same `Webhook-Id`. When an attempt failed, or the one commit
//! is refused (a webhook deleted meanwhile), the attempts already made are
//! recorded the careful way: the event and its deliveries first, then each
//! attempt with its health decision and retry, as if made after.

use std::collections::HashSet;

use futures_util::future::join_all;
use hookline_core::{DeliveryId, Trigger};
use hookline_store::{Delivered, Dispatch, FreshDelivery, NewEvent, RecordedEvent};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::{
    consume::Settle,
    deliver::{Sent, attempt_span, delivered, record_outcome, send},
    dispatch::{FIRST, hand_off, job},
    startup::Context,
};

/// A first attempt made before its event was recorded.
struct Made {
    job: hookline_store::DeliveryJob,
    sent: Sent,
    span: tracing::Span,
}

/// Attempts every delivery of a fresh event, then records them. `None` when
/// the event cannot go early (a webhook has no free slot, or the account no
/// free share, right now): nothing was sent, and the caller takes the
/// careful path, which waits for them. An event goes early whole or not at
/// all, and never waits holding slots.
pub(crate) async fn dispatch(ctx: &Context, event: &NewEvent, deliveries: Vec<FreshDelivery>) -> Option<Settle> {
    let mut held = Vec::with_capacity(deliveries.len());
    for d in &deliveries {
        ctx.known.note(d.webhook_id, &event.tenant, d.status);
        let share = ctx.shares.try_take(&event.tenant)?;
        let slot = ctx.in_flight.try_acquire(d.webhook_id)?;
        held.push((share, slot));
    }
    let span = tracing::Span::current();
    span.record("deliveries", deliveries.len());
    ctx.metrics.deliveries_created.add(&[], u64::try_from(deliveries.len()).unwrap_or(u64::MAX));
    let now = OffsetDateTime::now_utc();
    let attempts = deliveries.into_iter().zip(held).map(|(d, held)| async move {
        let job = job(event, d, now);
        let span = attempt_span(&job, Trigger::Scheduled);
        // At most `concurrency` first attempts at once per worker.
        let _permit = ctx.attempts.acquire().await.ok();
        let sent = send(ctx, Trigger::Scheduled, &job, now).instrument(span.clone()).await;
        // The webhook's slot and the account's share are for the request
        // alone: a slow webhook beside it does not hold them.
        drop(held);
        Made { job, sent, span }
    });
    let made = join_all(attempts).await;

    if made.iter().all(|m| m.sent.attempted.outcome.is_success()) {
        let item = Delivered {
            event: event.clone(),
            attempts: made.iter().map(|m| (m.job.webhook_id, m.sent.attempt.clone())).collect(),
        };
        match ctx
            .stored("recording an event with its first attempts", || ctx.batches.delivered.submit(item.clone()))
            .await
        {
            Ok(numbers) => {
                for (m, number) in made.iter().zip(numbers) {
                    delivered(ctx, &m.job, false, &m.sent.attempt, number).instrument(m.span.clone()).await;
                }
                ctx.metrics.events_dispatched.inc(&[]);
                tracing::debug!("event dispatched early");
                return Some(Settle::Ack);
            }
            // Refused for good (a webhook deleted meanwhile): recorded the
            // careful way below, which leaves that delivery out.
            Err(Settle::Reject) => {}
            Err(settle) => return Some(settle),
        }
    }
    Some(record_made(ctx, event, made).await)
}

/// Records attempts made before their event was: the event and its
/// deliveries, then each attempt as if made after; a delivery recorded now
/// that was not attempted (its webhook subscribed meanwhile) goes through
/// the queue; then the event is marked dispatched.
async fn record_made(ctx: &Context, event: &NewEvent, made: Vec<Made>) -> Settle {
    let recorded = match ctx.stored("recording an event", || ctx.batches.events.submit(event.clone())).await {
        Ok(recorded) => recorded,
        Err(settle) => return settle,
    };
    let attempted: HashSet<DeliveryId> = made.iter().map(|m| m.job.id).collect();
    match &recorded {
        RecordedEvent::Fresh(fresh) => {
            for d in fresh.iter().filter(|d| !attempted.contains(&d.id)) {
                let settle = hand_off(ctx, d.id).await;
                if settle != Settle::Ack {
                    return settle;
                }
            }
        }
        RecordedEvent::Seen(Dispatch::Publish(steps)) => {
            let rest: Vec<_> = steps.iter().filter(|s| !attempted.contains(&s.id)).cloned().collect();
            if let Err(e) = ctx.publish_steps(&rest).await {
                ctx.publish_failed("publishing a redelivered event's deliveries", &e);
            }
        }
        RecordedEvent::Seen(Dispatch::Duplicate) => {}
    }
    let outcomes = made.into_iter().map(|m| async move {
        let id = m.job.id;
        match record_outcome(ctx, FIRST, m.job, m.sent, None).instrument(m.span).await {
            // Its attempt could not be recorded and never will be: it goes
            // to the queue with a due time.
            Settle::Reject => hand_off(ctx, id).await,
            settle => settle,
        }
    });
    if let Some(settle) = join_all(outcomes).await.into_iter().find(|s| *s != Settle::Ack) {
        return settle;
    }
    if !matches!(recorded, RecordedEvent::Seen(Dispatch::Duplicate)) {
        let key = (event.tenant.clone(), event.id.clone());
        if let Err(settle) =
            ctx.stored("marking an event dispatched", || ctx.batches.dispatched.submit(key.clone())).await
        {
            return settle;
        }
    }
    ctx.metrics.events_dispatched.inc(&[]);
    Settle::Ack
}
