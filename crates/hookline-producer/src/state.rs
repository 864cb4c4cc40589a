//! [`AppState`]: what every operation can reach. The bottom of the
//! producer's layers: it names no handler, page or operation.

use std::sync::Arc;

use hookline_broker::{Publisher, link};
use hookline_store::Store;

/// The producer's shared state, built once by `startup`.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    /// The publisher the producer holds now; empty while the broker is away.
    pub(crate) broker: Arc<link::Current>,
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

impl AppState {
    /// The publisher, or `None` while the broker is down.
    pub(crate) fn publisher(&self) -> Option<Publisher> {
        self.broker.get()
    }
}
