//! W3C trace context in AMQP message headers.
//!
//! Every publish carries the current span's context as `traceparent` (and
//! `tracestate`) headers; a consumer makes its span a child of what the
//! message carries. So one trace follows an event from the HTTP request
//! through dispatch to every attempt, across the delay tiers (a retry hours
//! later joins the same trace), and an event that a licensing service
//! publishes with its own `traceparent` continues the publisher's trace.
//! Injection goes through the globally installed propagator
//! (`hookline-telemetry` installs the W3C one); with none, nothing is added.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, ShortString},
};
use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::TraceContextExt,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(ShortString::from(key.to_owned()), AMQPValue::LongString(value.into()));
    }
}

struct HeaderExtractor<'a>(&'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().iter().find(|(k, _)| k.as_str().eq_ignore_ascii_case(key))?.1 {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

/// Headers carrying the current span's trace context.
pub fn current_headers() -> FieldTable {
    let mut headers = FieldTable::default();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut headers)));
    headers
}

/// Makes `span` a child of the trace context a message carries, if any.
pub fn continue_trace(span: &tracing::Span, properties: &BasicProperties) {
    let Some(headers) = properties.headers() else { return };
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if cx.span().span_context().is_valid() {
        // Fails only when the span is disabled or already started a trace
        // of its own; then it simply stays where it is.
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span` (32 hex digits), when it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers are read whatever their case or string type; anything else
    /// is ignored.
    #[test]
    fn reads_headers() {
        let mut headers = FieldTable::default();
        headers.insert("Traceparent".into(), AMQPValue::LongString("00-abc-def-01".into()));
        headers.insert("tracestate".into(), AMQPValue::ShortString("k=v".into()));
        headers.insert("other".into(), AMQPValue::LongLongInt(5));
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get("traceparent"), Some("00-abc-def-01"));
        assert_eq!(extractor.get("tracestate"), Some("k=v"));
        assert_eq!(extractor.get("other"), None);
        let mut out = FieldTable::default();
        HeaderInjector(&mut out).set("traceparent", "x".to_owned());
        assert_eq!(HeaderExtractor(&out).get("traceparent"), Some("x"));
    }
}
