//! `/healthz` (alive) and `/readyz` (able to take events).

use std::sync::Arc;

use axum::{Router, http::StatusCode, routing::get};
use serde_json::json;

use super::{State, json::AppJson};
use crate::{ops, state::AppState};

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> AppJson<serde_json::Value> {
    AppJson(json!({"status": "ok"}))
}

async fn readyz(state: State) -> (StatusCode, AppJson<serde_json::Value>) {
    let ops::Readiness { database, broker } = ops::readiness(&state).await;
    let status = if database && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, AppJson(json!({"database": database, "broker": broker})))
}
