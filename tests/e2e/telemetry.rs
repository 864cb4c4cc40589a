//! Traces and metrics: one trace per event across producer and worker
//! (through the delay tiers, and from a direct publisher's `traceparent`),
//! exported over OTLP/HTTP to an in-test collector; `/metrics` counts a
//! known load exactly; the Grafana dashboard queries only exported metrics.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use hookline_e2e::{Receiver, Reply, TestApp, WAIT, eventually, webhook};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::{Value, json};

/// One exported span: its name, trace id and the ids that link it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver: decodes every `POST /v1/traces` body.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = spans.clone();
    let handler = move |body: axum::body::Bytes| {
        let sink = sink.clone();
        async move {
            let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            let mut sink = sink.lock().expect("lock");
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        let attributes = span
                            .attributes
                            .iter()
                            .map(|kv| {
                                let value = kv.value.as_ref().and_then(|v| v.value.as_ref()).map(|v| {
                                    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
                                    match v {
                                        V::StringValue(s) => s.clone(),
                                        V::IntValue(i) => i.to_string(),
                                        V::BoolValue(b) => b.to_string(),
                                        V::DoubleValue(d) => d.to_string(),
                                        other => format!("{other:?}"),
                                    }
                                });
                                (kv.key.clone(), value.unwrap_or_default())
                            })
                            .collect();
                        sink.push(Span {
                            name: span.name,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            attributes,
                        });
                    }
                }
            }
            axum::http::StatusCode::OK
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().route("/v1/traces", axum::routing::post(handler))).await
    });
    (format!("http://{addr}/v1/traces"), spans)
}

fn in_trace(spans: &[Span], trace_id: &str) -> Vec<Span> {
    spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect()
}

/// An event that fails once and then succeeds is one trace: the API
/// request, dispatch, two attempts (the retry crossing a delay tier) each
/// with its outbound request; attempt rows carry that trace id. An event
/// published straight to the exchange with a `traceparent` continues it.
/// (Multi-threaded: flushing blocks a thread while the in-test collector,
/// on the same runtime, answers the export.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_event_across_services() {
    let (endpoint, spans) = collector().await;
    let settings = hookline_telemetry::TelemetrySettings {
        otlp_traces_endpoint: Some(endpoint),
        service_name: "hookline-test".to_owned(),
        filter: Some("warn".to_owned()),
        ..Default::default()
    };
    let guard = hookline_telemetry::init(&settings).expect("telemetry starts");
    let app = TestApp::spawn_with(|_, worker| {
        worker.retry_schedule = hookline_core::RetrySchedule::parse("50ms").expect("valid");
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503)]);
    let id = app.create_webhook(&webhook("traced", &receiver.url(), &["*"])).await;

    app.post_event(&json!({"event": "license.created", "id": "traced-1", "data": {}})).await;
    let details = app.settled_deliveries(&id, 1).await;
    let attempts = details[0]["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 2, "{details:?}");
    let trace_id = attempts[0]["traceId"].as_str().expect("the attempt has a trace id").to_owned();
    assert_eq!(trace_id.len(), 32);
    assert_eq!(attempts[1]["traceId"], trace_id.as_str(), "the retry joins the same trace");

    let trace = eventually(WAIT, || async {
        guard.flush();
        let all = spans.lock().expect("lock").clone();
        let trace = in_trace(&all, &trace_id);
        let attempts = trace.iter().filter(|s| s.name == "attempt").count();
        let has_request = trace.iter().any(|s| s.name == "POST /v1/events");
        let has_dispatch = trace.iter().any(|s| s.name == "dispatch");
        if attempts == 2 && has_request && has_dispatch { Ok(trace) } else { Err(format!("{trace:#?}")) }
    })
    .await;
    let request = trace.iter().find(|s| s.name == "POST /v1/events").expect("request span");
    assert_eq!(trace.iter().filter(|s| s.name == "POST /v1/events").count(), 1, "one server span per request");
    assert_eq!(request.attributes.get("http.response.status_code").map(String::as_str), Some("202"));
    let dispatch = trace.iter().find(|s| s.name == "dispatch").expect("dispatch span");
    assert_eq!(dispatch.attributes.get("event_id").map(String::as_str), Some("traced-1"));
    let mut attempt_spans: Vec<&Span> = trace.iter().filter(|s| s.name == "attempt").collect();
    attempt_spans.sort_by_key(|s| s.attributes.get("attempt_no").cloned());
    assert_eq!(attempt_spans[0].attributes.get("attempt_no").map(String::as_str), Some("1"));
    assert_eq!(attempt_spans[0].attributes.get("http.response.status_code").map(String::as_str), Some("503"));
    assert_eq!(attempt_spans[0].attributes.get("retry_reason").map(String::as_str), Some("HTTP 503"));
    assert_eq!(attempt_spans[0].attributes.get("webhook_id").map(String::as_str), Some(id.as_str()));
    assert_eq!(attempt_spans[1].attributes.get("attempt_no").map(String::as_str), Some("2"));
    assert_eq!(attempt_spans[1].attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    for attempt in &attempt_spans {
        let client = trace.iter().find(|s| s.name == "POST" && s.parent == attempt.span_id);
        assert!(client.is_some(), "the outbound request is a child of attempt {attempt:?}");
    }
    // Every span of the trace hangs off another span of it, but the root.
    let ids: BTreeSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&Span> = trace.iter().filter(|s| !ids.contains(s.parent.as_str())).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0].name, "POST /v1/events");

    // A direct publisher's trace continues.
    let publisher_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = hookline_broker::lapin::types::FieldTable::default();
    headers.insert(
        "traceparent".into(),
        hookline_broker::lapin::types::AMQPValue::LongString(
            format!("00-{publisher_trace}-00f067aa0ba902b7-01").into(),
        ),
    );
    publish_direct(&app, &json!({"event": "license.updated", "id": "traced-2", "data": {}}), headers).await;
    let details = app.settled_deliveries(&id, 2).await;
    let newest = &details[0];
    assert_eq!(newest["eventId"], "traced-2");
    assert_eq!(newest["attempts"][0]["traceId"], publisher_trace, "{newest}");
    eventually(WAIT, || async {
        guard.flush();
        let trace = in_trace(&spans.lock().expect("lock"), publisher_trace);
        let dispatch = trace.iter().find(|s| s.name == "dispatch" && s.parent == "00f067aa0ba902b7");
        if dispatch.is_some() && trace.iter().any(|s| s.name == "attempt") {
            Ok(())
        } else {
            Err(format!("{trace:#?}"))
        }
    })
    .await;
    app.stop().await;
    drop(guard);
}

async fn publish_direct(app: &TestApp, body: &Value, headers: hookline_broker::lapin::types::FieldTable) {
    use hookline_broker::lapin::{
        BasicProperties, Connection, ConnectionProperties, options::BasicPublishOptions, options::ConfirmSelectOptions,
    };
    let connection = Connection::connect(app.broker.url(), ConnectionProperties::default()).await.expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let confirm = channel
        .basic_publish(
            format!("{}.events", app.broker.namespace()).into(),
            body["event"].as_str().expect("event").into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            body.to_string().as_bytes(),
            BasicProperties::default().with_delivery_mode(2).with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
    let _ = connection.close(200, "done".into()).await;
}

/// The value of one sample in a Prometheus text page (0 when absent).
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

async fn scrape(url: String, openmetrics: bool) -> String {
    let mut request = reqwest::Client::new().get(url);
    if openmetrics {
        request = request.header("accept", "application/openmetrics-text; version=1.0.0");
    }
    let response = request.send().await.expect("metrics answer");
    assert_eq!(response.status(), 200);
    response.text().await.expect("text")
}

/// After a known load, `/metrics` of producer and worker show exact counts;
/// the dashboard queries only metrics the services export.
#[tokio::test]
async fn metrics_count_a_known_load_exactly() {
    let app = TestApp::spawn_with(|_, worker| {
        worker.retry_schedule = hookline_core::RetrySchedule::parse("20ms").expect("valid");
    })
    .await;
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_status(500);
    app.create_webhook(&webhook("good", &good.url(), &["*"])).await;
    let failing = app.create_webhook(&webhook("bad", &bad.url(), &["license.*"])).await;
    let mut inactive = webhook("off", &good.url(), &["*"]);
    inactive["active"] = json!(false);
    app.create_webhook(&inactive).await;
    for i in 0..10 {
        app.post_event(&json!({"event": "license.created", "data": {"i": i}})).await;
    }
    for i in 0..5 {
        app.post_event(&json!({"event": "other.thing", "data": {"i": i}})).await;
    }
    // 15 events: 15 deliveries to `good`, 10 to `bad` (2 attempts each),
    // none to the inactive `off`.
    good.wait_for(15, WAIT).await;
    let settled = app.settled_deliveries(&failing, 10).await;
    assert!(settled.iter().all(|d| d["state"] == "failed"));

    let worker = eventually(WAIT, || async {
        let page = scrape(format!("http://{}/metrics", app.worker_addr), false).await;
        let done = sample(&page, "hookline_deliveries_total{outcome=\"delivered\"}") == 15.0
            && sample(&page, "hookline_deliveries_total{outcome=\"failed\"}") == 10.0;
        if done { Ok(page) } else { Err(page) }
    })
    .await;
    assert_eq!(sample(&worker, "hookline_events_dispatched_total"), 15.0);
    assert_eq!(sample(&worker, "hookline_deliveries_created_total"), 25.0);
    assert_eq!(sample(&worker, "hookline_deliveries_total{outcome=\"skipped\"}"), 0.0);
    assert_eq!(sample(&worker, "hookline_attempts_total{status_class=\"2xx\",error=\"none\"}"), 15.0);
    assert_eq!(sample(&worker, "hookline_attempts_total{status_class=\"5xx\",error=\"none\"}"), 20.0);
    assert_eq!(sample(&worker, "hookline_retries_scheduled_total"), 10.0);
    assert_eq!(sample(&worker, "hookline_attempt_duration_seconds_count{status_class=\"5xx\"}"), 20.0);
    assert_eq!(sample(&worker, "hookline_delivery_latency_seconds_count"), 15.0);
    assert_eq!(sample(&worker, "hookline_deliveries_in_flight"), 0.0);

    let producer = scrape(app.url("/metrics"), false).await;
    assert_eq!(sample(&producer, "hookline_events_ingested_total"), 15.0);
    assert_eq!(
        sample(&producer, "hookline_http_requests_total{route=\"/v1/events\",method=\"POST\",status=\"202\"}"),
        15.0
    );
    assert_eq!(
        sample(&producer, "hookline_http_requests_total{route=\"/v1/webhooks\",method=\"POST\",status=\"201\"}"),
        3.0
    );
    assert_eq!(sample(&producer, "hookline_webhooks{status=\"healthy\"}"), 2.0);
    assert_eq!(sample(&producer, "hookline_webhooks{status=\"unhealthy\"}"), 1.0);
    assert_eq!(sample(&producer, "hookline_webhooks{status=\"suspended\"}"), 0.0);
    for queue in ["dispatch", "deliveries", "retries", "parked", "delay.16"] {
        assert!(producer.contains(&format!("hookline_queue_depth{{queue=\"{queue}\"}} ")), "{queue}: {producer}");
    }
    // A path nobody routes is counted as `unmatched`, not by its text.
    app.get("/v1/no/such/path").await;
    let producer = scrape(app.url("/metrics"), false).await;
    assert!(!producer.contains("/v1/no/such/path"));

    // OpenMetrics: exemplars carry trace ids (none here: tracing is off in
    // this test, so only the format is checked).
    let open = scrape(format!("http://{}/metrics", app.worker_addr), true).await;
    assert!(open.ends_with("# EOF\n") && open.contains("# TYPE hookline_attempts counter"));

    // Every metric the dashboard queries is exported by one of the services.
    let exported: BTreeSet<String> = [producer.as_str(), worker.as_str()]
        .iter()
        .flat_map(|page| page.lines())
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/dashboard_metrics.txt"))
        .expect("deploy/dashboard_metrics.txt");
    let queried: BTreeSet<String> =
        dashboard.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics nobody exports: {missing:?}");
    let unused: Vec<&String> = exported.difference(&queried).collect();
    assert!(unused.is_empty(), "exported metrics missing from the dashboard: {unused:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.stop().await;
}
