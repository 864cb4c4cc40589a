//! The HTTP routes, one module per resource.

mod deliveries;
mod events;
mod health;
mod page;
mod tenants;
mod webhooks;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit};
use hookline_broker::Publisher;
use hookline_store::Store;
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) auth: crate::auth::Auth,
    pub(crate) max_webhooks_per_tenant: i64,
    pub(crate) recover_rate_per_sec: u32,
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
        .fallback(|| async { crate::ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

pub(crate) type State = axum::extract::State<Arc<AppState>>;
