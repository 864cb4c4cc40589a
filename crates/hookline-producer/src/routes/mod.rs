//! The HTTP routes, one module per resource.

pub(crate) mod deliveries;
mod events;
mod health;
mod page;
mod tenants;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit};
use hookline_broker::Publisher;
use hookline_store::Store;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) broker: Arc<hookline_broker::link::Current>,
    pub(crate) auth: crate::auth::Auth,
    pub(crate) max_webhooks_per_tenant: i64,
    pub(crate) recover_rate_per_sec: u32,
    /// Ranges webhook URLs may point into although they are private.
    pub(crate) allowed_networks: hookline_core::AllowList,
    /// What the producer counts (served at `/metrics`).
    pub(crate) metrics: crate::metrics::ProducerMetrics,
    /// Where the portal links a trace id to (the id is appended).
    pub(crate) grafana_trace_url: Option<String>,
}

/// The whole API.
pub(crate) fn router(state: AppState, max_body_bytes: usize) -> Router {
    let state = Arc::new(state);
    let v1 = Router::new()
        .merge(webhooks::router())
        .merge(events::router())
        .merge(deliveries::router())
        .merge(tenants::router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::require_caller));
    Router::new()
        .nest("/v1", v1)
        .merge(health::router())
        .route("/openapi.json", axum::routing::get(openapi))
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .merge(crate::ui::router())
        .fallback(|| async { crate::ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::observe))
        .with_state(state)
}

pub(crate) type State = axum::extract::State<Arc<AppState>>;

impl AppState {
    /// The publisher, or `503 broker_unavailable` while the broker is down.
    pub(crate) fn publisher(&self) -> Result<Publisher, crate::ApiError> {
        self.broker.get().ok_or_else(crate::ApiError::broker_unavailable)
    }
}

/// `GET /openapi.json`: the API's OpenAPI document (open, like the health
/// routes: it describes the API, it grants nothing).
async fn openapi() -> crate::json::AppJson<&'static serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    crate::json::AppJson(DOCUMENT.get_or_init(crate::openapi::document))
}
