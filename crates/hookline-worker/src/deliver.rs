//! Delivery: a delivery message → load → sign and POST → record the attempt
//! and the webhook's health in one statement → ack.
//!
//! The receiver's answer is an outcome, never an error: only infrastructure
//! faults (Postgres unreachable) hand the message back to the broker.

use hookline_broker::{DeliveryMessage, Message};
use hookline_core::{AttemptId, DeliveryId, DeliveryState};
use hookline_store::NewAttempt;
use time::OffsetDateTime;

use crate::{consume::Settle, http, startup::Context};

/// Handles one delivery message.
#[tracing::instrument(skip_all, fields(delivery_id = tracing::field::Empty, webhook_id = tracing::field::Empty))]
pub async fn handle(ctx: &Context, message: Message) -> Settle {
    let id = match DeliveryMessage::decode(&message.body) {
        Ok(DeliveryMessage::V1 { delivery_id }) => DeliveryId::from_uuid(delivery_id),
        Err(e) => {
            tracing::warn!(error.message = %e, "rejecting malformed delivery message");
            return Settle::Reject;
        }
    };
    tracing::Span::current().record("delivery_id", tracing::field::display(id));
    let job = match ctx.store.load_job(id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::info!("delivery no longer exists (webhook deleted); dropping");
            return Settle::Ack;
        }
        Err(e) => return ctx.infrastructure_fault("loading delivery", &e).await,
    };
    tracing::Span::current().record("webhook_id", tracing::field::display(job.webhook_id));
    if job.state.is_terminal() {
        tracing::debug!(state = job.state.as_str(), "delivery already settled; duplicate message");
        return Settle::Ack;
    }
    if !job.active {
        return match ctx.store.set_delivery_state(id, DeliveryState::Skipped, OffsetDateTime::now_utc()).await {
            Ok(()) => Settle::Ack,
            Err(e) => ctx.infrastructure_fault("skipping delivery", &e).await,
        };
    }

    let request = http::Request { url: job.url.as_str(), delivery_id: id, token: &job.token, body: &job.body };
    let attempted = http::attempt(&ctx.client, request, ctx.excerpt_limit).await;
    let succeeded = attempted.outcome.is_success();
    let attempt = NewAttempt {
        id: AttemptId::from_uuid(uuid::Uuid::now_v7()),
        delivery_id: id,
        sent_at: attempted.sent_at,
        received_at: attempted.received_at,
        duration_ms: attempted.duration_ms,
        status_code: attempted.outcome.status().map(i32::from),
        error_kind: attempted.outcome.error_kind().map(str::to_owned),
        error_message: attempted.error_message,
        response_excerpt: attempted.response_excerpt,
        retry_reason: None,
        next_attempt_at: None,
        succeeded,
        new_state: if succeeded { DeliveryState::Succeeded } else { DeliveryState::Failed },
    };
    match ctx.store.record_attempt(&attempt, OffsetDateTime::now_utc()).await {
        Ok(Some(attempt_no)) => {
            tracing::info!(
                attempt_no,
                status = attempt.status_code,
                error = attempt.error_kind,
                duration_ms = attempt.duration_ms,
                "attempt recorded"
            );
            Settle::Ack
        }
        Ok(None) => {
            tracing::info!("delivery deleted during the attempt; dropping");
            Settle::Ack
        }
        // The POST happened but is not recorded: hand the message back so the
        // attempt is made (and recorded) again. At-least-once.
        Err(e) => ctx.infrastructure_fault("recording attempt", &e).await,
    }
}
