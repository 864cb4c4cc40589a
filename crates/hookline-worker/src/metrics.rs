//! What a worker counts, served at `/metrics` on its health address.
//!
//! Labels come from fixed sets only (status class, error kind, outcome):
//! never a webhook URL, id or event id.

use hookline_core::AttemptOutcome;
use hookline_telemetry::metrics::{
    Counter, DELIVERY_BUCKETS, Exposition, Gauge, Histogram, LATENCY_BUCKETS, LabelSet, Registry,
};
use prometheus_client::encoding::EncodeLabelSet;

/// A delivery's final or held state: `delivered`, `failed`, `suspended`,
/// `skipped`. Callers name it `&["delivered"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    outcome: &'static str,
}

impl LabelSet for OutcomeLabels {}

impl From<&[&'static str; 1]> for OutcomeLabels {
    fn from(&[outcome]: &[&'static str; 1]) -> Self {
        Self { outcome }
    }
}

/// The kind of queue a message came from: `dispatch` or `delivery`.
/// Callers name it `&["dispatch"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueLabels {
    queue: &'static str,
}

impl LabelSet for QueueLabels {}

impl From<&[&'static str; 1]> for QueueLabels {
    fn from(&[queue]: &[&'static str; 1]) -> Self {
        Self { queue }
    }
}

/// An attempt's answer: its status class and transport error (each `none`
/// when absent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AttemptLabels {
    status_class: &'static str,
    error: &'static str,
}

impl LabelSet for AttemptLabels {}

/// An attempt duration's series: the answer's status class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusClassLabels {
    status_class: &'static str,
}

impl LabelSet for StatusClassLabels {}

/// An operational event's `kind` (`unhealthy`, `suspended`, `recovered`,
/// `disabled`) and `outcome` (`published`, or `unsubscribed`: no webhook
/// of the tenant takes it, so none was published). Callers name it
/// `&["suspended", "published"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OperationalLabels {
    kind: &'static str,
    outcome: &'static str,
}

impl LabelSet for OperationalLabels {}

impl From<&[&'static str; 2]> for OperationalLabels {
    fn from(&[kind, outcome]: &[&'static str; 2]) -> Self {
        Self { kind, outcome }
    }
}

/// The worker's metric families.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// Renders them all.
    pub registry: Exposition,
    /// Events fanned out (from the HTTP API and direct publishers alike).
    pub events_dispatched: Counter,
    /// Deliveries created by fan-out.
    pub deliveries_created: Counter,
    /// Deliveries that reached a final or held state, by `outcome`.
    pub deliveries: Counter<OutcomeLabels>,
    /// Attempts by `status_class` and `error`.
    pub attempts: Counter<AttemptLabels>,
    /// Retries scheduled into the delay tiers.
    pub retries_scheduled: Counter,
    /// Deliveries deferred because their webhook was at its in-flight cap.
    pub deferrals: Counter,
    /// How long receivers took to answer, by `status_class`.
    pub attempt_duration: Histogram<StatusClassLabels>,
    /// From ingest to successful delivery, with trace-id exemplars.
    pub delivery_latency: Histogram,
    /// Delivery messages being handled right now.
    pub in_flight: Gauge,
    /// Delivery messages acked without an attempt: stale or duplicate copies
    /// that no longer match their delivery's row.
    pub fenced: Counter,
    /// Overdue deliveries published again by reconciliation.
    pub reconciled: Counter,
    /// Messages the broker delivered again (a worker crashed or lost its
    /// connection while holding them), by `queue` kind.
    pub redeliveries: Counter<QueueLabels>,
    /// Times a handler waited for the database instead of handing its
    /// message back.
    pub store_waits: Counter,
    /// Publishes that failed after their step was committed; reconciliation
    /// publishes those steps again.
    pub publish_failures: Counter,
    /// Recovery probes, by `outcome`: `resumed`, `failed`, `superseded`
    /// (recorded, the webhook resumed or probed meanwhile by other means).
    pub recovery_probes: Counter<OutcomeLabels>,
    /// Webhook health changes announced, by `kind` and `outcome`.
    pub operational_events: Counter<OperationalLabels>,
    /// Events removed past the retention window (their deliveries and
    /// attempts go with their day's partitions).
    pub retention_removed: Counter,
    /// Deliveries released from their webhook's rate-limit queue.
    pub rate_released: Counter,
}

impl WorkerMetrics {
    /// Registers the worker's families in `registry`, which renders them.
    pub fn new(mut registry: Registry) -> Self {
        let r = &mut registry;
        Self {
            events_dispatched: Counter::register(
                r,
                "hookline_events_dispatched_total",
                "Events fanned out into deliveries.",
            ),
            deliveries_created: Counter::register(
                r,
                "hookline_deliveries_created_total",
                "Deliveries created by fan-out.",
            ),
            deliveries: Counter::register(
                r,
                "hookline_deliveries_total",
                "Deliveries that reached delivered, failed, suspended or skipped.",
            ),
            attempts: Counter::register(
                r,
                "hookline_attempts_total",
                "Delivery attempts by HTTP status class (none: no response) and transport error.",
            ),
            retries_scheduled: Counter::register(
                r,
                "hookline_retries_scheduled_total",
                "Retries scheduled into the delay tiers.",
            ),
            deferrals: Counter::register(
                r,
                "hookline_deferrals_total",
                "Deliveries deferred because their webhook had its maximum of requests in flight.",
            ),
            fenced: Counter::register(
                r,
                "hookline_messages_fenced_total",
                "Delivery messages acked without an attempt because they no longer matched their delivery.",
            ),
            reconciled: Counter::register(
                r,
                "hookline_reconciled_total",
                "Overdue deliveries published again by reconciliation (none in a healthy system).",
            ),
            redeliveries: Counter::register(
                r,
                "hookline_redeliveries_total",
                "Messages the broker delivered again, by queue kind (dispatch, delivery).",
            ),
            store_waits: Counter::register(
                r,
                "hookline_store_waits_total",
                "Times a handler waited for the database to answer again instead of handing its message back.",
            ),
            publish_failures: Counter::register(
                r,
                "hookline_publish_failures_total",
                "Publishes that failed after their step was committed (reconciliation publishes those again).",
            ),
            recovery_probes: Counter::register(
                r,
                "hookline_recovery_probes_total",
                "Recovery probes of suspended webhooks, by outcome (resumed, failed, superseded).",
            ),
            operational_events: Counter::register(
                r,
                "hookline_operational_events_total",
                "Webhook health changes announced as hookline.webhook.* events, by kind and outcome \
                 (unsubscribed: no webhook takes them, none published).",
            ),
            retention_removed: Counter::register(
                r,
                "hookline_retention_events_removed_total",
                "Events removed past HOOKLINE_RETENTION (their deliveries and attempts go with their day partitions).",
            ),
            rate_released: Counter::register(
                r,
                "hookline_rate_released_total",
                "Deliveries released from their webhook's rate-limit queue in Postgres, each with its time.",
            ),
            in_flight: Gauge::register(r, "hookline_deliveries_in_flight", "Delivery messages being handled."),
            attempt_duration: Histogram::register(
                r,
                "hookline_attempt_duration_seconds",
                "Time from sending a request to its response or error.",
                LATENCY_BUCKETS,
            ),
            delivery_latency: Histogram::register(
                r,
                "hookline_delivery_latency_seconds",
                "Time from an event's ingestion to its successful delivery, retries included.",
                DELIVERY_BUCKETS,
            ),
            registry: Exposition::new(registry),
        }
    }
}

impl Default for WorkerMetrics {
    /// The families in a registry of their own.
    fn default() -> Self {
        Self::new(Registry::default())
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
        let error = outcome.error_kind().unwrap_or("none");
        self.attempts.inc(AttemptLabels { status_class: class, error });
        let seconds = f64::from(duration_ms.max(0)) / 1000.0;
        self.attempt_duration.observe(StatusClassLabels { status_class: class }, seconds, None);
    }
}

/// Counts a delivery message as in flight until dropped.
#[derive(Debug)]
pub struct InFlightGuard(Gauge);

impl InFlightGuard {
    /// One more in flight.
    pub fn new(gauge: &Gauge) -> Self {
        gauge.add(&[], 1);
        Self(gauge.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.add(&[], -1);
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
        assert_eq!(m.attempts.get(AttemptLabels { status_class: "2xx", error: "none" }), 1);
        assert_eq!(m.attempts.get(AttemptLabels { status_class: "5xx", error: "none" }), 1);
        assert_eq!(m.attempts.get(AttemptLabels { status_class: "none", error: "timeout" }), 1);
        assert_eq!(m.attempts.get(AttemptLabels { status_class: "none", error: "connect" }), 1);
        let page = m.registry.render(hookline_telemetry::metrics::Format::Prometheus);
        assert!(page.contains("hookline_attempt_duration_seconds_count{status_class=\"none\"} 2\n"), "{page}");
        {
            let _a = InFlightGuard::new(&m.in_flight);
            let _b = InFlightGuard::new(&m.in_flight);
            assert_eq!(m.in_flight.get(&[]), 2);
        }
        assert_eq!(m.in_flight.get(&[]), 0);
    }
}
