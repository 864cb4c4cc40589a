//! A fresh event's fast path: attempt first, record once.
//!
//! The first copy of an event message whose webhooks are all healthy (and
//! none failed in the last minute) is attempted before anything about it is
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
use hookline_store::{Delivered, Dispatch, EventKey, FreshDelivery, NewEvent, RecordedEvent};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::{
    attempt::{Sent, attempt_span, delivered, record_outcome, send},
    consume::Settle,
    deliver::{take_share, take_slot},
    dispatch::{FIRST, hand_off, job, publish_redelivered},
    startup::Context,
};

/// How old the status a first request goes on may be: older, it is read
/// again from Postgres.
pub(crate) const STATUS_FRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether a first request may go to `webhook` now: this worker last read
/// or recorded it healthy within [`STATUS_FRESH`], or Postgres says it is
/// healthy and active now (so a `410` another worker recorded while this
/// delivery waited for a slot, share or permit stops it). One read serves
/// every delivery to the webhook for that long. A failed read says no: the
/// delivery goes through the queue, whose claim reads the status itself.
pub(crate) async fn sendable(ctx: &Context, webhook: hookline_core::WebhookId) -> bool {
    if let Some(healthy) = ctx.known.healthy_within(webhook, STATUS_FRESH) {
        return healthy;
    }
    match ctx.store.standing(webhook).await {
        Ok(Some((status, true))) => {
            ctx.known.set_status(webhook, status);
            status == hookline_core::HealthStatus::Healthy
        }
        Ok(_) => false,
        Err(e) => {
            tracing::debug!(error.message = %e, "reading a webhook's status failed; through the queue");
            false
        }
    }
}

/// A first attempt made before its event was recorded.
struct Made {
    job: hookline_store::DeliveryJob,
    sent: Sent,
    span: tracing::Span,
}

/// Attempts every delivery of a fresh event, then records them: one commit
/// when every attempt succeeded, the careful recording otherwise. A
/// delivery that gets no slot or share (its webhook slow or busy, its
/// account at its share) is not attempted here: it is recorded and handed
/// to the deliveries queue.
pub(crate) async fn dispatch(ctx: &Context, event: &NewEvent, deliveries: Vec<FreshDelivery>) -> Settle {
    let span = tracing::Span::current();
    span.record("deliveries", deliveries.len());
    ctx.metrics.deliveries_created.add(&[], u64::try_from(deliveries.len()).unwrap_or(u64::MAX));
    let now = OffsetDateTime::now_utc();
    let attempts = deliveries.into_iter().map(|d| async move {
        ctx.known.note(d.webhook_id, &event.tenant, d.status);
        // The slot and the share are for the request alone: a slow webhook
        // beside it does not hold them.
        let share = take_share(ctx, d.webhook_id, &event.tenant).await?;
        let slot = take_slot(ctx, d.webhook_id).await?;
        let job = job(event, d, now);
        let span = attempt_span(&job, Trigger::Scheduled);
        // At most `concurrency` first attempts at once per worker.
        let _permit = ctx.attempts.acquire().await.ok();
        // Checked again just before the request: a failure recorded
        // meanwhile (a 410, another delivery's failure) sends this one
        // through the queue, where an unhealthy webhook takes probes.
        if !sendable(ctx, job.webhook_id).await {
            return None;
        }
        let sent = send(ctx, Trigger::Scheduled, &job, now).instrument(span.clone()).await;
        drop((slot, share));
        Some(Made { job, sent, span })
    });
    let made: Vec<Option<Made>> = join_all(attempts).await;

    if made.iter().all(|m| m.as_ref().is_some_and(|m| m.sent.exchange.outcome.is_success())) {
        let made: Vec<Made> = made.into_iter().flatten().collect();
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
                return Settle::Ack;
            }
            // Refused for good (a webhook deleted meanwhile): recorded the
            // careful way, which leaves that delivery out.
            Err(Settle::Reject) => return record_made(ctx, event, made).await,
            Err(settle) => return settle,
        }
    }
    record_made(ctx, event, made.into_iter().flatten().collect()).await
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
            publish_redelivered(ctx, &rest).await;
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
    if !matches!(recorded, RecordedEvent::Seen(Dispatch::Duplicate))
        && let Err(settle) = ctx.mark_dispatched(&event.key()).await
    {
        return settle;
    }
    ctx.metrics.events_dispatched.inc(&[]);
    Settle::Ack
}

/// Events this worker is dispatching early. A second copy of one (a client
/// that sent the same event id twice, moments apart) waits until the first
/// is recorded, then takes the careful path, which finds it recorded: one
/// request, not two. (Copies on two workers at once can still both go
/// early; both requests carry the same `Webhook-Id`.)
#[derive(Debug, Default)]
pub(crate) struct Underway {
    keys: std::sync::Mutex<HashSet<EventKey>>,
    done: tokio::sync::Notify,
}

/// An event marked underway until dropped.
#[derive(Debug)]
pub(crate) struct UnderwayGuard<'a> {
    underway: &'a Underway,
    key: EventKey,
}

impl Underway {
    fn keys(&self) -> std::sync::MutexGuard<'_, HashSet<EventKey>> {
        self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks `key` underway; `None` when it already is.
    pub(crate) fn start(&self, key: EventKey) -> Option<UnderwayGuard<'_>> {
        // The lock is released before a guard exists (dropping one locks).
        let inserted = self.keys().insert(key.clone());
        inserted.then(|| UnderwayGuard { underway: self, key })
    }

    /// Waits until `key` is no longer underway.
    pub(crate) async fn wait(&self, key: &EventKey) {
        loop {
            // Registered before the check: a finish in between still wakes it.
            let finished = self.done.notified();
            if !self.keys().contains(key) {
                return;
            }
            finished.await;
        }
    }
}

impl Drop for UnderwayGuard<'_> {
    fn drop(&mut self) {
        self.underway.keys().remove(&self.key);
        self.underway.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second copy of an event underway is refused, waits, and is let go
    /// when the first is done; the key can then be taken again.
    #[tokio::test]
    async fn a_second_copy_waits_for_the_first() {
        let underway = std::sync::Arc::new(Underway::default());
        let key = EventKey {
            tenant: hookline_core::TenantId::default(),
            id: hookline_core::EventId::parse("e1").expect("valid"),
        };
        let first = underway.start(key.clone()).expect("free");
        assert!(underway.start(key.clone()).is_none(), "underway already");
        let waiter = {
            let underway = underway.clone();
            let key = key.clone();
            tokio::spawn(async move { underway.wait(&key).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits while the first is underway");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("let go").expect("task");
        assert!(underway.start(key).is_some(), "free again");
    }
}
