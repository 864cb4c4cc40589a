//! `/healthz` (alive) and `/readyz` (able to take events).

use std::sync::Arc;

use axum::{Router, http::StatusCode, routing::get};
use serde::Serialize;
use utoipa::ToSchema;

use super::{State, json::AppJson};
use crate::{ops, state::AppState};

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Alive {
    status: AliveStatus,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum AliveStatus {
    Ok,
}

/// Whether each dependency answered.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Readiness {
    database: bool,
    broker: bool,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = inline(Alive))))]
async fn healthz() -> AppJson<Alive> {
    AppJson(Alive { status: AliveStatus::Ok })
}

/// `GET /readyz`: the database and the broker are reachable.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = inline(Readiness)),
        (status = 503, description = "Database or broker unreachable", body = inline(Readiness)),
    ))]
async fn readyz(state: State) -> (StatusCode, AppJson<Readiness>) {
    let ops::Readiness { database, broker } = ops::readiness(&state).await;
    let status = if database && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, AppJson(Readiness { database, broker }))
}
