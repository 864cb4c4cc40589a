//! Ingesting an event: fill in its defaults, publish it with confirms.

use hookline_broker::{CheckedEvent, EventMessage};
use hookline_core::{EventId, format_timestamp};

use super::{Error, Result};
use crate::{auth::Caller, state::AppState};

/// Publishes an event (its fields checked) for `caller`'s tenant and
/// returns its id once the broker has confirmed it; nothing is accepted
/// otherwise.
pub(crate) async fn ingest(state: &AppState, caller: &Caller, event: CheckedEvent) -> Result<EventId> {
    let id = event.id.unwrap_or_else(|| EventId::generate(uuid::Uuid::now_v7()));
    let triggered_at = event.triggered_at.unwrap_or_else(time::OffsetDateTime::now_utc);
    let tenant = caller.tenant_for_write(event.tenant)?;
    let message = EventMessage {
        event: event.event_type.to_string(),
        data: event.data,
        id: Some(id.to_string()),
        triggered_at: Some(format_timestamp(triggered_at)),
        tenant: Some(tenant.to_string()),
    };
    if let Err(e) = state.publisher_or_unavailable()?.publish_event(&message).await {
        tracing::error!(error.message = %e, event_id = %id, "publish failed");
        return Err(Error::BrokerUnavailable);
    }
    state.metrics.events_ingested.inc(&[]);
    tracing::debug!(event_id = %id, event_type = %event.event_type, "event accepted");
    Ok(id)
}
