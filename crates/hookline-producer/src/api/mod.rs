//! The HTTP API: one module per resource under `/v1`, each with its own
//! `router()`, plus the open routes (health, the OpenAPI document).
//!
//! A handler parses its input (path, query, JSON body) into domain values,
//! calls one operation (`ops`) and renders the result as JSON or as an
//! [`ApiError`] (problem+json with a stable `code`). The JSON shapes live
//! here and only here.
//!
//! # Layout
//! - `caller`: the `Caller` extractor and the middleware on every `/v1` route.
//! - [`error`]: [`ApiError`], answered as `application/problem+json`; how
//!   each `ops::Error` is answered.
//! - `json`: the JSON and query extractors that route rejections through
//!   [`ApiError`].
//! - `page`: cursor pagination.
//! - `openapi`: the OpenAPI document, generated from the handlers and DTOs;
//!   `schema`: the constrained strings it names (what core's `parse` accepts).
//! - `webhooks`, `deliveries`, `events`, `tenants`: the resources.
//! - `health`: `/healthz` and `/readyz`.

mod caller;
mod deliveries;
pub mod error;
mod events;
mod health;
pub(crate) mod json;
mod listing;
mod openapi;
mod schema;
mod tenants;
mod webhooks;

use std::sync::Arc;

use axum::Router;

pub use error::ApiError;

use crate::state::AppState;

/// The API's routes: `/v1` behind `require_caller`, and the open ones.
pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let v1 = Router::new()
        .merge(webhooks::router())
        .merge(events::router())
        .merge(deliveries::router())
        .merge(tenants::router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), caller::require_caller));
    Router::new().nest("/v1", v1).merge(health::router()).route("/openapi.json", axum::routing::get(openapi))
}

/// What every handler takes first.
pub(crate) type State = axum::extract::State<Arc<AppState>>;

/// `GET /openapi.json`: the API's OpenAPI document (open, like the health
/// routes: it describes the API, it grants nothing).
async fn openapi() -> json::AppJson<&'static serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    json::AppJson(DOCUMENT.get_or_init(openapi::document))
}
