//! `POST /v1/events`: validate, publish with confirms, answer `202`.

use axum::{Router, http::StatusCode, routing::post};
use hookline_broker::EventMessage;
use hookline_core::{EventId, format_timestamp};
use serde::{Deserialize, Serialize};

use super::State;
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
    let checked = EventMessage {
        event: body.event,
        data: body.data,
        id: body.id,
        triggered_at: body.triggered_at,
        tenant: body.tenant,
    }
    .check()
    .map_err(|e| ApiError::invalid_field(e.field, e.detail))?;
    let id = checked.id.unwrap_or_else(|| EventId::generate(uuid::Uuid::now_v7()));
    let triggered_at = checked.triggered_at.unwrap_or_else(time::OffsetDateTime::now_utc);
    let tenant = caller.tenant_for_write(checked.tenant)?;
    let event_type = checked.event_type;
    let message = EventMessage {
        event: event_type.to_string(),
        data: checked.data,
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
