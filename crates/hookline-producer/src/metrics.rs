//! What the producer counts, served (openly) at `/metrics`.
//!
//! Requests are counted by route template (`/v1/webhooks/{id}`), never by
//! the path a client sent. The webhook-state and queue-depth gauges are read
//! fresh at each scrape: a count per state from Postgres, a passive declare
//! per queue from RabbitMQ, each bounded by a short timeout.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hookline_telemetry::metrics::{Counter, Exposition, Format, Gauge, Histogram, LATENCY_BUCKETS, LabelSet, Registry};
use prometheus_client::encoding::EncodeLabelSet;

use crate::state::AppState;

/// How long a scrape waits for Postgres or RabbitMQ.
const GAUGE_TIMEOUT: Duration = Duration::from_secs(2);

/// A request's series: its route template, method and answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

impl LabelSet for RequestLabels {}

/// A request duration's series: its route template and method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

impl LabelSet for RouteLabels {}

/// A health state (`healthy`, `unhealthy`, `suspended`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

impl LabelSet for StatusLabels {}

/// A queue, by its role in the topology (`dispatch`, `delay.16`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

impl LabelSet for QueueLabels {}

/// The producer's metric families.
#[derive(Debug, Clone)]
pub(crate) struct ProducerMetrics {
    pub(crate) registry: Exposition,
    /// Events accepted by `POST /v1/events`.
    pub(crate) events_ingested: Counter,
    requests: Counter<RequestLabels>,
    request_duration: Histogram<RouteLabels>,
    webhooks: Gauge<StatusLabels>,
    queue_depth: Gauge<QueueLabels>,
}

impl ProducerMetrics {
    /// Registers the producer's families in `registry`, which renders them.
    pub(crate) fn new(mut registry: Registry) -> Self {
        let r = &mut registry;
        Self {
            events_ingested: Counter::register(
                r,
                "hookline_events_ingested_total",
                "Events accepted by POST /v1/events (confirmed by the broker).",
            ),
            requests: Counter::register(
                r,
                "hookline_http_requests_total",
                "API requests by route template, method and status.",
            ),
            request_duration: Histogram::register(
                r,
                "hookline_http_request_duration_seconds",
                "API request durations by route template and method.",
                LATENCY_BUCKETS,
            ),
            webhooks: Gauge::register(r, "hookline_webhooks", "Webhooks by health state."),
            queue_depth: Gauge::register(r, "hookline_queue_depth", "Ready messages per queue."),
            registry: Exposition::new(registry),
        }
    }
}

impl Default for ProducerMetrics {
    /// The families in a registry of their own.
    fn default() -> Self {
        Self::new(Registry::default())
    }
}

/// The route template of a request, or `unmatched` (404s must not create a
/// series per path a scanner tries).
fn route_of(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// Counts every request and its duration, by route template (the
/// request's span is `web`'s `TraceLayer`).
pub(crate) async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let m = &state.metrics;
    let elapsed = started.elapsed().as_secs_f64();
    m.request_duration.observe(RouteLabels { route: route.clone(), method: method.clone() }, elapsed, None);
    m.requests.inc(RequestLabels { route, method, status });
    response
}

/// `GET /metrics`.
pub(crate) async fn render(State(state): State<Arc<AppState>>, headers: HeaderMap) -> impl IntoResponse {
    let m = &state.metrics;
    match tokio::time::timeout(GAUGE_TIMEOUT, state.store.webhook_counts()).await {
        Ok(Ok(counts)) => {
            for status in ["healthy", "unhealthy", "suspended"] {
                let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                m.webhooks.set(StatusLabels { status }, n);
            }
        }
        Ok(Err(e)) => tracing::warn!(error.message = %e, "metrics: cannot count webhooks"),
        Err(_) => tracing::warn!("metrics: counting webhooks timed out"),
    }
    if let Some(publisher) = state.broker.get() {
        match tokio::time::timeout(GAUGE_TIMEOUT, publisher.queue_depths()).await {
            Ok(Ok(depths)) => {
                for (queue, n) in depths {
                    m.queue_depth.set(QueueLabels { queue }, i64::from(n));
                }
            }
            Ok(Err(e)) => tracing::warn!(error.message = %e, "metrics: cannot read queue depths"),
            Err(_) => tracing::warn!("metrics: reading queue depths timed out"),
        }
    }
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    ([(header::CONTENT_TYPE, format.content_type())], m.registry.render(format))
}
