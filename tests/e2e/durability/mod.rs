//! Postgres is the record: lost, duplicated and stale broker messages,
//! `recover` and manual retries, and a database outage under load. Retry
//! delays and the reconciler's interval and grace are shrunk by settings.
//!
//! # Layout
//! - this module: helpers the tests share (metrics, timestamps, a
//!   delivery's detail once it is in a state);
//! - `messages`: lost, duplicated and missing broker messages (reconciled
//!   or fenced);
//! - `replay`: manual retries and `recover`;
//! - `outage`: Postgres stopped under load.

mod messages;
mod outage;
mod replay;

use hookline_broker::{Publisher, Topology};
use hookline_core::{RetrySchedule, fence::unix_ms};
use hookline_e2e::{TestApp, WAIT, eventually};
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A retry schedule from its text form.
fn schedule(text: &str) -> RetrySchedule {
    RetrySchedule::parse(text).expect("valid schedule")
}

/// The sum of a worker metric's samples (all label sets).
async fn worker_metric(app: &TestApp, name: &str) -> f64 {
    let page = reqwest::get(format!("http://{}/metrics", app.worker_addr))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text");
    page.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A timestamp of the API in Unix milliseconds.
fn ms(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp: {value}"));
    unix_ms(OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339"))
}

/// A time in Unix milliseconds.
fn at_ms(at: OffsetDateTime) -> i64 {
    unix_ms(at)
}

/// The one delivery of webhook `id`, as the API shows it, once `ready`.
async fn delivery_when(app: &TestApp, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, || async {
        let list = app.deliveries(id).await;
        let Some(first) = list.first() else { return Err("no delivery yet".to_owned()) };
        let detail = app.get(&format!("/v1/deliveries/{}", first["id"].as_str().expect("id"))).await.body;
        if ready(&detail) { Ok(detail) } else { Err(format!("{detail}")) }
    })
    .await
}

/// How many attempts a delivery's detail lists.
fn attempt_count(delivery: &Value) -> usize {
    delivery["attempts"].as_array().map_or(0, Vec::len)
}

/// A confirm-mode publisher into the test's namespace.
async fn publisher(app: &TestApp) -> (hookline_broker::lapin::Connection, Publisher) {
    let connection = app.broker.connect().await;
    let publisher =
        Publisher::open(&connection, Topology::from_settings(&app.worker_settings.amqp)).await.expect("publisher");
    (connection, publisher)
}

/// State counts straight from Postgres.
async fn states(app: &TestApp) -> std::collections::BTreeMap<String, i64> {
    let client = app.db.client().await;
    client
        .query("SELECT state, count(*) FROM deliveries GROUP BY state", &[])
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
