//! `POST /v1/events`: validate, publish with confirms, answer `202`.

use axum::{Router, http::StatusCode, routing::post};
use hookline_broker::EventMessage;
use hookline_core::{EventId, EventType, format_timestamp, parse_timestamp, validate_data};
use serde::{Deserialize, Serialize};

use super::{State, webhooks::tenant};
use crate::{ApiError, auth::Caller, json::AppJson};

pub(super) fn router() -> Router<std::sync::Arc<super::AppState>> {
    Router::new().route("/events", post(ingest))
}

/// `POST /v1/events` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IngestEvent {
    event: String,
    data: serde_json::Value,
    #[serde(default, deserialize_with = "crate::json::present")]
    id: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    triggered_at: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    tenant: Option<String>,
}

#[derive(Debug, Serialize)]
struct Accepted {
    id: String,
}

async fn ingest(
    state: State,
    caller: Caller,
    AppJson(body): AppJson<IngestEvent>,
) -> Result<(StatusCode, AppJson<Accepted>), ApiError> {
    let event_type = EventType::parse(&body.event).map_err(|e| ApiError::invalid_field("event", e))?;
    validate_data(&body.data).map_err(|e| ApiError::invalid_field("data", e))?;
    let id = match body.id.as_deref() {
        Some(raw) => EventId::parse(raw).map_err(|e| ApiError::invalid_field("id", e))?,
        None => EventId::generate(uuid::Uuid::now_v7()),
    };
    let triggered_at = match body.triggered_at.as_deref() {
        Some(raw) => parse_timestamp(raw).map_err(|e| ApiError::invalid_field("triggeredAt", e))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let tenant = caller.tenant_for_write(tenant(body.tenant.as_deref())?)?;
    let message = EventMessage {
        event: event_type.to_string(),
        data: body.data,
        id: Some(id.to_string()),
        triggered_at: Some(format_timestamp(triggered_at)),
        tenant: Some(tenant.to_string()),
    };
    if let Err(e) = state.publisher()?.publish_event(&message).await {
        tracing::error!(error.message = %e, event_id = %id, "publish failed");
        return Err(ApiError::broker_unavailable());
    }
    state.metrics.events_ingested.inc(&[]);
    tracing::debug!(event_id = %id, event_type = %event_type, "event accepted");
    Ok((StatusCode::ACCEPTED, AppJson(Accepted { id: id.to_string() })))
}
