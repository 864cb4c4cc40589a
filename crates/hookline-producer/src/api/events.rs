//! `POST /v1/events`: validate, publish with confirms, answer `202`.

use std::sync::Arc;

use axum::{Router, http::StatusCode, routing::post};
use hookline_broker::EventMessage;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, State, error::Code, json::AppJson, openapi::Forbidden, schema};
use crate::{auth::Caller, ops, state::AppState};

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/events", post(ingest))
}

/// `POST /v1/events` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct IngestEvent {
    /// The event type, matched against each webhook's `events`. Types in
    /// the `hookline.` namespace are Hookline's own and refused.
    #[schema(value_type = schema::EventType)]
    event: String,
    /// The payload: a JSON object or array.
    #[schema(schema_with = object_or_array)]
    data: serde_json::Value,
    /// For idempotency: an event id seen before is ignored.
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::EventId)]
    id: Option<String>,
    /// When it happened (default: now).
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(format = DateTime, nullable = false)]
    triggered_at: Option<String>,
    /// The tenant whose webhooks get it (a tenant token's own by default;
    /// an admin's default is `default`).
    #[serde(default, deserialize_with = "crate::api::json::present")]
    #[schema(value_type = schema::TenantId)]
    tenant: Option<String>,
}

fn object_or_array() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Object, Type::Array])).build()
}

/// The broker has the event.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Accepted {
    /// The event's id (the one given, or a generated one).
    #[schema(value_type = schema::EventId)]
    id: String,
}

/// Hookline's own events (`hookline.webhook.suspended`, …) come only from
/// Hookline: a tenant may not forge one (`422 reserved_event_type`), nor
/// take the id one will have (`hookline-…`, `422 invalid_field`), which
/// would make the real one a duplicate. Publishers straight to the
/// exchange are trusted like the API's admin and are not checked here.
fn refuse_reserved(event: &hookline_broker::CheckedEvent) -> Result<(), ApiError> {
    if event.event_type.is_reserved() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::ReservedEventType,
            format!(
                "event: `{}` is in Hookline's own namespace (`{}.`): only Hookline sends these events",
                event.event_type,
                hookline_core::RESERVED_NAMESPACE
            ),
        )
        .with_field("event"));
    }
    if event.id.as_ref().is_some_and(hookline_core::EventId::is_reserved) {
        return Err(ApiError::invalid_field(
            "id",
            format!(
                "ids starting with `{}` are reserved for Hookline's own events",
                hookline_core::event::RESERVED_ID_PREFIX
            ),
        ));
    }
    Ok(())
}

/// `POST /v1/events`: validated, published, confirmed by the broker, then
/// answered; `503` when the broker did not take it.
#[utoipa::path(post, path = "/v1/events", operation_id = "ingestEvent", tag = "events", request_body = IngestEvent,
    responses((status = 202, description = "Accepted", body = Accepted), (status = 403, response = Forbidden)))]

async fn ingest(
    state: State,
    caller: Caller,
    AppJson(body): AppJson<IngestEvent>,
) -> Result<(StatusCode, AppJson<Accepted>), ApiError> {
    let IngestEvent { event, data, id, triggered_at, tenant } = body;
    let checked = EventMessage { event, data, id, triggered_at, tenant }
        .check()
        .map_err(|e| ApiError::invalid_field(e.field, e.detail))?;
    refuse_reserved(&checked)?;
    let id = ops::events::ingest(&state, &caller, checked).await?;
    Ok((StatusCode::ACCEPTED, AppJson(Accepted { id: id.to_string() })))
}
