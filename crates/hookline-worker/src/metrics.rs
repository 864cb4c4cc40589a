//! What a worker counts, served at `/metrics` on its health address.
//!
//! Labels come from fixed sets only (status class, error kind, outcome):
//! never a webhook URL, id or event id.

use std::sync::Arc;

use hookline_core::AttemptOutcome;
use hookline_telemetry::metrics::{Counter, DELIVERY_BUCKETS, Gauge, Histogram, LATENCY_BUCKETS, Registry};

/// The worker's metric families.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// Renders them all.
    pub registry: Registry,
    /// Events fanned out (from the HTTP API and direct publishers alike).
    pub events_dispatched: Arc<Counter>,
    /// Deliveries created by fan-out.
    pub deliveries_created: Arc<Counter>,
    /// Deliveries that reached a final or held state, by `outcome`.
    pub deliveries: Arc<Counter>,
    /// Attempts by `status_class` and `error`.
    pub attempts: Arc<Counter>,
    /// Retries scheduled into the delay tiers.
    pub retries_scheduled: Arc<Counter>,
    /// Deliveries deferred because their webhook was at its in-flight cap.
    pub deferrals: Arc<Counter>,
    /// How long receivers took to answer, by `status_class`.
    pub attempt_duration: Arc<Histogram>,
    /// From ingest to successful delivery, with trace-id exemplars.
    pub delivery_latency: Arc<Histogram>,
    /// Delivery messages being handled right now.
    pub in_flight: Arc<Gauge>,
    /// Delivery messages acked without an attempt: stale or duplicate copies
    /// that no longer match their delivery's row.
    pub fenced: Arc<Counter>,
    /// Overdue deliveries published again by reconciliation.
    pub reconciled: Arc<Counter>,
    /// Messages the broker delivered again (a worker crashed or lost its
    /// connection while holding them), by `queue` kind.
    pub redeliveries: Arc<Counter>,
    /// Times a handler waited for the database instead of handing its
    /// message back.
    pub store_waits: Arc<Counter>,
    /// Publishes that failed after their step was committed; reconciliation
    /// publishes those steps again.
    pub publish_failures: Arc<Counter>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let mut r = Registry::default();
        Self {
            events_dispatched: r.counter("hookline_events_dispatched_total", "Events fanned out into deliveries.", &[]),
            deliveries_created: r.counter("hookline_deliveries_created_total", "Deliveries created by fan-out.", &[]),
            deliveries: r.counter(
                "hookline_deliveries_total",
                "Deliveries that reached delivered, failed, suspended or skipped.",
                &["outcome"],
            ),
            attempts: r.counter(
                "hookline_attempts_total",
                "Delivery attempts by HTTP status class (none: no response) and transport error.",
                &["status_class", "error"],
            ),
            retries_scheduled: r.counter(
                "hookline_retries_scheduled_total",
                "Retries scheduled into the delay tiers.",
                &[],
            ),
            deferrals: r.counter(
                "hookline_deferrals_total",
                "Deliveries deferred because their webhook had its maximum of requests in flight.",
                &[],
            ),
            attempt_duration: r.histogram(
                "hookline_attempt_duration_seconds",
                "Time from sending a request to its response or error.",
                &["status_class"],
                LATENCY_BUCKETS,
            ),
            delivery_latency: r.histogram(
                "hookline_delivery_latency_seconds",
                "Time from an event's ingestion to its successful delivery, retries included.",
                &[],
                DELIVERY_BUCKETS,
            ),
            in_flight: r.gauge("hookline_deliveries_in_flight", "Delivery messages being handled.", &[]),
            fenced: r.counter(
                "hookline_messages_fenced_total",
                "Delivery messages acked without an attempt because they no longer matched their delivery.",
                &[],
            ),
            reconciled: r.counter(
                "hookline_reconciled_total",
                "Overdue deliveries published again by reconciliation (none in a healthy system).",
                &[],
            ),
            redeliveries: r.counter(
                "hookline_redeliveries_total",
                "Messages the broker delivered again, by queue kind (dispatch, delivery).",
                &["queue"],
            ),
            store_waits: r.counter(
                "hookline_store_waits_total",
                "Times a handler waited for the database to answer again instead of handing its message back.",
                &[],
            ),
            publish_failures: r.counter(
                "hookline_publish_failures_total",
                "Publishes that failed after their step was committed (reconciliation publishes those again).",
                &[],
            ),
            registry: r,
        }
    }
}

/// `2xx` … `5xx`, or `none` when no response arrived.
pub fn status_class(outcome: &AttemptOutcome) -> &'static str {
    match outcome.status() {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}

impl WorkerMetrics {
    /// Counts one attempt and its duration.
    pub fn attempt(&self, outcome: &AttemptOutcome, duration_ms: i32) {
        let class = status_class(outcome);
        self.attempts.inc(&[class, outcome.error_kind().unwrap_or("none")]);
        self.attempt_duration.observe(&[class], f64::from(duration_ms.max(0)) / 1000.0, None);
    }
}

/// Counts a delivery message as in flight until dropped.
#[derive(Debug)]
pub struct InFlightGuard(Arc<Gauge>);

impl InFlightGuard {
    /// One more in flight.
    pub fn new(gauge: &Arc<Gauge>) -> Self {
        gauge.add(&[], 1.0);
        Self(gauge.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.add(&[], -1.0);
    }
}

#[cfg(test)]
mod tests {
    use hookline_core::{TransportErrorKind, classify_status};

    use super::*;

    /// Attempts are counted by status class and error kind.
    #[test]
    fn counts_attempts() {
        let m = WorkerMetrics::default();
        m.attempt(&classify_status(204), 12);
        m.attempt(&classify_status(503), 40);
        m.attempt(&AttemptOutcome::TimedOut, 15_000);
        m.attempt(&AttemptOutcome::Transport { kind: TransportErrorKind::Connect }, 1);
        assert_eq!(m.attempts.get(&["2xx", "none"]), 1);
        assert_eq!(m.attempts.get(&["5xx", "none"]), 1);
        assert_eq!(m.attempts.get(&["none", "timeout"]), 1);
        assert_eq!(m.attempts.get(&["none", "connect"]), 1);
        assert_eq!(m.attempt_duration.count(&["none"]), 2);
        {
            let _a = InFlightGuard::new(&m.in_flight);
            let _b = InFlightGuard::new(&m.in_flight);
            assert_eq!(m.in_flight.get(&[]), 2.0);
        }
        assert_eq!(m.in_flight.get(&[]), 0.0);
    }
}
