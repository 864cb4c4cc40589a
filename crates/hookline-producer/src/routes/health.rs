//! `/healthz` (alive) and `/readyz` (able to take events).

use axum::{Router, http::StatusCode, routing::get};
use serde_json::json;

use super::State;
use crate::json::AppJson;

pub(super) fn router() -> Router<std::sync::Arc<super::AppState>> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> AppJson<serde_json::Value> {
    AppJson(json!({"status": "ok"}))
}

async fn readyz(state: State) -> (StatusCode, AppJson<serde_json::Value>) {
    let database = state.store.ping().await.is_ok();
    let broker = state.broker.get().is_some();
    let status = if database && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, AppJson(json!({"database": database, "broker": broker})))
}
