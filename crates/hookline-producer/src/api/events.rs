//! `POST /v1/events`: validate, publish with confirms, answer `202`.

use std::sync::Arc;

use axum::{Router, http::StatusCode, routing::post};
use hookline_broker::EventMessage;
use serde::{Deserialize, Serialize};

use super::{ApiError, State, json::AppJson};
use crate::{auth::Caller, ops, state::AppState};

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/events", post(ingest))
}

/// `POST /v1/events` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IngestEvent {
    event: String,
    data: serde_json::Value,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    id: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
    triggered_at: Option<String>,
    #[serde(default, deserialize_with = "crate::api::json::present")]
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
    let IngestEvent { event, data, id, triggered_at, tenant } = body;
    let checked = EventMessage { event, data, id, triggered_at, tenant }
        .check()
        .map_err(|e| ApiError::invalid_field(e.field, e.detail))?;
    let id = ops::events::ingest(&state, &caller, checked).await?;
    Ok((StatusCode::ACCEPTED, AppJson(Accepted { id: id.to_string() })))
}
