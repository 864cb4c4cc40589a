//! What every request passes through, around the API's and the portal's
//! routes: its span (tower-http's `TraceLayer`), its count and duration
//! (`metrics::observe`), a time limit (tower-http's `TimeoutLayer`,
//! `HOOKLINE_API_TIMEOUT_MS`) and the body size limit.
//!
//! The span is named after the route template (`POST /v1/events`, never the
//! path a client sent) and continues a W3C `traceparent` the client sent, so
//! the trace of an event starts at the request that ingested it.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use opentelemetry::trace::TraceContextExt as _;
use tower_http::{
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, MakeSpan, OnResponse, TraceLayer},
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{api::ApiError, state::AppState};

/// Limits on every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest accepted body.
    pub(crate) max_body_bytes: usize,
    /// Longest a request may take before it is answered `408`.
    pub(crate) timeout: Duration,
}

/// `routes` with the layers every request passes, outermost first: span,
/// metrics, timeout, body limit.
pub(crate) fn layered(routes: Router<Arc<AppState>>, state: Arc<AppState>, limits: Limits) -> Router {
    limited(routes, limits)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::observe))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_request(())
                .on_response(RecordStatus)
                // Failures are logged once, where they happen (`ApiError::internal`).
                .on_failure(()),
        )
        .with_state(state)
}

/// The body limit, and the timeout answered as a problem.
fn limited<S: Clone + Send + Sync + 'static>(routes: Router<S>, limits: Limits) -> Router<S> {
    routes
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.timeout))
        .layer(axum::middleware::map_response(problem_on_timeout))
}

/// The timeout layer answers with an empty body; the API answers problems
/// as problem+json.
async fn problem_on_timeout(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT && !response.headers().contains_key(header::CONTENT_TYPE) {
        tracing::warn!("request timed out");
        return ApiError::timed_out().into_response();
    }
    response
}

/// Reads a W3C `traceparent` (and `tracestate`) from request headers.
struct HttpHeaders<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(header::HeaderName::as_str).collect()
    }
}

/// A server span per request, named `METHOD /route/{template}`
/// (`unmatched` for no route: a scanner's paths must not each make a name).
#[derive(Debug, Clone, Copy)]
struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
        let method = request.method().as_str();
        let span = tracing::info_span!(
            "request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = route,
            http.response.status_code = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HttpHeaders(request.headers())));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
        span
    }
}

/// Records the status on the request's span (and logs it at debug level).
#[derive(Debug, Clone, Copy)]
struct RecordStatus;

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, span: &Span) {
        span.record("http.response.status_code", response.status().as_u16());
        DefaultOnResponse::default().on_response(response, latency, span);
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    /// A request that outlives the timeout is abandoned and answered `408`
    /// as a problem; a quick one is untouched.
    #[tokio::test]
    async fn slow_requests_time_out_as_problems() {
        let routes = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(30))))
            .route("/quick", get(|| async { "ok" }));
        let app = limited(routes, Limits { max_body_bytes: 1024, timeout: Duration::from_millis(20) });
        let request = |path: &str| Request::get(path).body(Body::empty()).expect("a request");

        let response = app.clone().oneshot(request("/slow")).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("a body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(problem["code"], "request_timeout");

        let response = app.oneshot(request("/quick")).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
