//! `hookline-bench`: measures Hookline on this machine, against the local
//! Postgres and RabbitMQ, with the release producer and worker binaries as
//! separate processes, a receiver and a load generator on loopback.
//!
//! `hookline-bench run` runs every scenario (or those named with
//! `--scenario`) and prints and saves (JSON and Markdown) per scenario:
//! ingest requests/s and latency, deliveries/s end to end, ingest → delivery
//! latency percentiles, CPU seconds and peak RSS of each service, rows
//! written, and Hookline's rate as a fraction of the raw RabbitMQ
//! publish+consume rate measured in the same run. A run that loses or
//! duplicates a delivery fails. `hookline-bench fairness` measures healthy
//! webhooks' latency with and without a hanging one beside them.
//!
//! A scenario's measured webhooks may have slow endpoints beside them
//! ([`Beside`], possibly another account's), answering after `hang_ms`:
//! those deliveries are counted (requested, answered, duplicated), not
//! waited for. `slow-tenant` runs first without that load (`alone`) so the
//! measured p99 can be compared; `memory` stops at a time box and reports
//! the worker's peak RSS.
//!
//! Each scenario uses a fresh database (`hookline_bench_…`, dropped after)
//! and broker namespace.

mod baseline;
mod receiver;
mod stack;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use receiver::{Behaviour, Receiver};
use serde::Serialize;
use stack::{KEY, Stack, StackOptions, Usage};

#[derive(Debug, Parser)]
#[command(name = "hookline-bench", about = "Measure Hookline on this machine")]
enum Cli {
    /// Runs the scenarios and saves the results.
    Run {
        /// Only these scenarios (repeatable); all when none is given.
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// Events in the full-speed scenarios.
        #[arg(long, default_value_t = 30_000)]
        events: usize,
        /// Seconds of the fixed-rate scenarios (`rate-*`, `slow-tenant`).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Where the JSON and Markdown results go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// Healthy webhooks' latency with and without one hanging endpoint.
    Fairness {
        /// Healthy webhooks.
        #[arg(long, default_value_t = 10)]
        healthy: u32,
        /// Events per healthy webhook.
        #[arg(long, default_value_t = 1000)]
        events: usize,
        /// Events to the hanging webhook.
        #[arg(long, default_value_t = 1000)]
        slow_events: usize,
        /// How long the hanging endpoint takes to answer, in ms.
        #[arg(long, default_value_t = 10_000)]
        hang_ms: u64,
        /// Events ingested per second (all webhooks together).
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
}

/// How events are sent.
#[derive(Debug, Clone, Copy, Serialize)]
enum Pace {
    /// As fast as `concurrency` requests in flight allow.
    FullSpeed { concurrency: usize },
    /// At a fixed rate.
    Rate { per_sec: u32 },
}

/// How events enter Hookline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Source {
    Http,
    /// Published straight to the events exchange (with confirms).
    Direct,
}

/// Webhooks beside the measured ones whose endpoints answer after the
/// scenario's `hang_ms`, with events of their own interleaved evenly with
/// the measured events. Their deliveries are counted, not waited for.
#[derive(Debug, Clone, Serialize)]
struct Beside {
    /// Webhooks, each subscribed to `filter`.
    webhooks: u32,
    /// Events of type `event_type` (each goes to every one of the webhooks).
    events: usize,
    /// Their account (webhooks and events); `None`: the default one.
    tenant: Option<&'static str>,
    event_type: &'static str,
    filter: &'static str,
}

impl Beside {
    /// One webhook of the default account that hangs, on `events` events.
    fn hanging(events: usize) -> Self {
        Self { webhooks: 1, events, tenant: None, event_type: "slow.created", filter: "slow.created" }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Scenario {
    name: &'static str,
    /// Which phase of the scenario this is (`alone`, `beside`), or empty.
    phase: &'static str,
    /// Events to the measured webhooks.
    events: usize,
    /// Measured webhooks.
    fanout: u32,
    /// The measured webhooks' and events' account; `None`: the default one.
    tenant: Option<&'static str>,
    /// The measured events' type, and what every measured webhook subscribes
    /// to (unless `separate`).
    event_type: &'static str,
    filter: &'static str,
    /// Each measured webhook has its own event type (`h{w}.created`) and
    /// each event goes to one of them.
    separate: bool,
    /// Bytes of padding (a string in `data.pad`) in every event.
    payload_bytes: usize,
    pace: Pace,
    source: Source,
    /// Fail the first request of every n-th event (0: none).
    fail_every: u64,
    /// How long slow endpoints take to answer, in ms.
    hang_ms: u64,
    /// The measured webhooks' endpoints are slow too.
    slow: bool,
    /// Slow webhooks beside the measured ones.
    beside: Option<Beside>,
    /// Run the scenario first without `beside` (at the measured events'
    /// share of the rate) and report the p99 ratio.
    compare_alone: bool,
    /// Stop waiting for deliveries this many seconds after the first event
    /// was sent; deliveries not finished by then are reported, not failed.
    time_box_secs: Option<u64>,
    workers: usize,
    retry_schedule: &'static str,
}

impl Scenario {
    fn new(name: &'static str, events: usize) -> Self {
        Self {
            name,
            phase: "",
            events,
            fanout: 1,
            tenant: None,
            event_type: "bench.created",
            filter: "bench.created",
            separate: false,
            payload_bytes: 0,
            pace: Pace::FullSpeed { concurrency: 64 },
            source: Source::Http,
            fail_every: 0,
            hang_ms: 10_000,
            slow: false,
            beside: None,
            compare_alone: false,
            time_box_secs: None,
            workers: 1,
            retry_schedule: "5s,1m,5m,30m,2h,5h,10h,10h",
        }
    }

    /// The name with its phase.
    fn title(&self) -> String {
        if self.phase.is_empty() { self.name.to_owned() } else { format!("{} ({})", self.name, self.phase) }
    }

    /// The same scenario without the load beside: only the measured events,
    /// at their share of a fixed rate.
    fn alone(&self) -> Self {
        let beside = self.beside.as_ref().map_or(0, |b| b.events);
        let pace = match self.pace {
            Pace::Rate { per_sec } => {
                let share = u64::from(per_sec) * self.events as u64 / (self.events + beside).max(1) as u64;
                Pace::Rate { per_sec: u32::try_from(share).unwrap_or(u32::MAX).max(1) }
            }
            full => full,
        };
        Self { phase: "alone", beside: None, pace, ..self.clone() }
    }
}

fn scenarios(events: usize, seconds: u64) -> Vec<Scenario> {
    let rate_events = |rate: u32| usize::try_from(u64::from(rate) * seconds).unwrap_or(usize::MAX);
    vec![
        Scenario::new("fanout-1", events),
        Scenario { fanout: 10, ..Scenario::new("fanout-10", events / 10) },
        Scenario { pace: Pace::Rate { per_sec: 500 }, ..Scenario::new("rate-500", rate_events(500)) },
        Scenario { pace: Pace::Rate { per_sec: 200 }, ..Scenario::new("rate-200", rate_events(200)) },
        Scenario { fail_every: 10, retry_schedule: "200ms,1s", ..Scenario::new("failing-10pct", events / 3) },
        Scenario {
            fanout: 10,
            separate: true,
            pace: Pace::Rate { per_sec: 200 },
            hang_ms: 10_000,
            beside: Some(Beside::hanging(1000)),
            ..Scenario::new("hanging-beside-10", 10_000)
        },
        Scenario { source: Source::Direct, ..Scenario::new("direct-amqp", events) },
        Scenario { workers: 2, ..Scenario::new("two-workers", events) },
        // Account B (globex, one fast webhook on `b.*`, 10 events/s) beside
        // account A (acme, six webhooks on `a.*` answering after 8 s, 50
        // events/s): B's latency, and B's alone first.
        Scenario {
            phase: "beside",
            tenant: Some("globex"),
            event_type: "b.created",
            filter: "b.*",
            pace: Pace::Rate { per_sec: 60 },
            hang_ms: 8_000,
            beside: Some(Beside {
                webhooks: 6,
                events: rate_events(50),
                tenant: Some("acme"),
                event_type: "a.created",
                filter: "a.*",
            }),
            compare_alone: true,
            ..Scenario::new("slow-tenant", rate_events(10))
        },
        // 100 webhooks on `*` answering after 10 s, 300 events of ~250 KB
        // (under the producer's 256 KiB body limit): the worker's peak RSS
        // 40 s in.
        Scenario {
            fanout: 100,
            filter: "*",
            payload_bytes: 250_000,
            slow: true,
            hang_ms: 10_000,
            time_box_secs: Some(40),
            ..Scenario::new("memory", 300)
        },
    ]
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Percentiles {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentiles(mut values: Vec<Duration>) -> Percentiles {
    values.sort();
    let at = |p: f64| {
        if values.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1].as_secs_f64() * 1e3
    };
    Percentiles { p50_ms: at(50.0), p95_ms: at(95.0), p99_ms: at(99.0), max_ms: at(100.0) }
}

#[derive(Debug, Clone, Default, Serialize)]
struct Rows {
    events: i64,
    deliveries: i64,
    attempts: i64,
}

#[derive(Debug, Clone, Serialize)]
struct Outcome {
    scenario: Scenario,
    events_sent: usize,
    deliveries: u64,
    ingest_per_sec: f64,
    ingest_latency: Percentiles,
    deliveries_per_sec: f64,
    delivery_latency: Percentiles,
    producer: Usage,
    workers: Vec<Usage>,
    rows: Rows,
    /// Measured (event, webhook) pairs not delivered (when the scenario
    /// has a time box: not finished by then).
    lost: u64,
    duplicates: u64,
    /// The scenario's time box ended the wait before every measured
    /// delivery was done.
    stopped_at_time_box: bool,
    /// Deliveries to slow endpoints (those beside, else the measured ones
    /// when they are slow), counted when the run stopped waiting.
    slow: Option<SlowCounts>,
    rabbitmq_raw_per_sec: f64,
    fraction_of_raw: f64,
}

/// Deliveries to slow endpoints when the run stopped waiting: (event,
/// webhook) pairs expected, requested at least once, answered, and requests
/// beyond the first per pair (one pair is one `Webhook-Id`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct SlowCounts {
    webhooks: u32,
    expected: u64,
    requested: u64,
    answered: u64,
    duplicates: u64,
}

impl SlowCounts {
    fn count(
        arrivals: &std::collections::HashMap<(u64, u32), receiver::Arrival>,
        webhooks: std::ops::Range<u32>,
        expected: u64,
    ) -> Self {
        let mut counts = Self { webhooks: webhooks.end - webhooks.start, expected, ..Self::default() };
        for arrival in arrivals.iter().filter(|((_, w), _)| webhooks.contains(w)).map(|(_, a)| a) {
            counts.requested += u64::from(arrival.requests > 0);
            counts.answered += u64::from(arrival.delivered_at.is_some());
            counts.duplicates += u64::from(arrival.requests.saturating_sub(1));
        }
        counts
    }
}

/// Sends one event over HTTP; returns how long the API took.
async fn send_http(http: &reqwest::Client, api: std::net::SocketAddr, body: String) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = http
        .post(format!("http://{api}/v1/events"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 202, "ingest answered {}", response.status());
    Ok(started.elapsed())
}

/// One event to send.
struct EventSpec {
    event_type: String,
    /// Its index, sent in `data.i`.
    index: u64,
    tenant: Option<&'static str>,
}

/// One event's body, its index in `data.i`, `pad` bytes in `data.pad`.
fn event_body(event: &EventSpec, pad: usize) -> String {
    let EventSpec { event_type, index: i, tenant } = event;
    let pad = if pad > 0 { format!(r#","pad":"{}""#, "x".repeat(pad)) } else { String::new() };
    let tenant = tenant.map(|t| format!(r#","tenant":"{t}""#)).unwrap_or_default();
    format!(r#"{{"event":"{event_type}","id":"e{i}","data":{{"i":{i}{pad}}}{tenant}}}"#)
}

struct Sent {
    at: Vec<Option<Instant>>,
    ingest: Vec<Duration>,
}

/// Drives the load: every event `event_at(k)` for `k` in `0..n`.
async fn drive(
    stack: &Stack,
    scenario: &Scenario,
    n: usize,
    event_at: impl Fn(usize) -> EventSpec,
) -> anyhow::Result<(Sent, Duration)> {
    let sent = Arc::new(Mutex::new(Sent { at: vec![None; n], ingest: Vec::with_capacity(n) }));
    let started = Instant::now();
    match scenario.source {
        Source::Http => {
            let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
            let concurrency = match scenario.pace {
                Pace::FullSpeed { concurrency } => concurrency,
                Pace::Rate { .. } => 256,
            };
            let interval = match scenario.pace {
                Pace::Rate { per_sec } => Some(Duration::from_secs_f64(1.0 / f64::from(per_sec.max(1)))),
                Pace::FullSpeed { .. } => None,
            };
            let mut requests = futures_util::stream::iter(0..n)
                .map(|i| {
                    let http = http.clone();
                    let body = event_body(&event_at(i), scenario.payload_bytes);
                    let sent = sent.clone();
                    let api = stack.api;
                    async move {
                        if let Some(interval) = interval {
                            let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
                            tokio::time::sleep_until(due.into()).await;
                        }
                        let at = Instant::now();
                        let took = send_http(&http, api, body).await?;
                        let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                        sent.at[i] = Some(at);
                        sent.ingest.push(took);
                        Ok::<_, anyhow::Error>(())
                    }
                })
                .buffer_unordered(concurrency);
            while let Some(result) = requests.next().await {
                result?;
            }
        }
        Source::Direct => {
            use hookline_broker::lapin::{
                BasicProperties, Connection, ConnectionProperties,
                options::{BasicPublishOptions, ConfirmSelectOptions},
            };
            let connection =
                Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            let exchange = format!("{}.events", stack.namespace);
            let mut pending = futures_util::stream::FuturesUnordered::new();
            for i in 0..n {
                if pending.len() >= 256 {
                    let (i, at, confirm): (usize, Instant, _) = pending.next().await.expect("not empty");
                    let confirm: hookline_broker::lapin::Confirmation = confirm?;
                    anyhow::ensure!(confirm.is_ack(), "publish not confirmed");
                    let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                    sent.ingest.push(at.elapsed());
                    sent.at[i] = Some(at);
                }
                let at = Instant::now();
                let event = event_at(i);
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        event.event_type.as_str().into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        event_body(&event, scenario.payload_bytes).as_bytes(),
                        BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()),
                    )
                    .await?;
                pending.push(async move { (i, at, confirm.await) });
            }
            while let Some((i, at, confirm)) = pending.next().await {
                anyhow::ensure!(confirm?.is_ack(), "publish not confirmed");
                let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                sent.ingest.push(at.elapsed());
                sent.at[i] = Some(at);
            }
            let _ = connection.close(200, "done".into()).await;
        }
    }
    let took = started.elapsed();
    let sent = Arc::try_unwrap(sent).map_err(|_| anyhow::anyhow!("load tasks still running"))?;
    Ok((sent.into_inner().unwrap_or_else(PoisonError::into_inner), took))
}

async fn create_webhook(
    http: &reqwest::Client,
    stack: &Stack,
    name: &str,
    url: &str,
    filter: &str,
    tenant: Option<&str>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({
        "name": name, "url": url, "token": "bench-token-0123456789", "events": [filter]
    });
    if let Some(tenant) = tenant {
        body["tenant"] = tenant.into();
    }
    let response = http.post(format!("http://{}/v1/webhooks", stack.api)).bearer_auth(KEY).json(&body).send().await?;
    anyhow::ensure!(response.status() == 201, "create webhook: {}", response.status());
    Ok(())
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(db.query_one(sql, &[]).await?.get(0))
}

/// Runs one scenario from start to stop.
async fn run_scenario(scenario: &Scenario, raw_rate: f64) -> anyhow::Result<Outcome> {
    let options = StackOptions {
        workers: scenario.workers,
        retry_schedule: scenario.retry_schedule.to_owned(),
        extra_env: Vec::new(),
    };
    let receiver =
        Receiver::start(Behaviour { fail_every: scenario.fail_every, hang: Duration::from_millis(scenario.hang_ms) })
            .await?;
    let stack = Stack::start(&options).await?;
    let http = reqwest::Client::new();
    // Measured webhooks are receiver webhooks `0..fanout` (named `w…`),
    // those beside come after them (named `beside…`).
    let fanout = scenario.fanout;
    let separate = scenario.separate;
    for w in 0..fanout {
        let filter = if separate { format!("h{w}.created") } else { scenario.filter.to_owned() };
        let url = if scenario.slow { receiver.slow_url(w) } else { receiver.url(w) };
        create_webhook(&http, &stack, &format!("w{w}"), &url, &filter, scenario.tenant).await?;
    }
    let beside_webhooks = fanout..fanout + scenario.beside.as_ref().map_or(0, |b| b.webhooks);
    if let Some(beside) = &scenario.beside {
        for w in beside_webhooks.clone() {
            let url = receiver.slow_url(w);
            create_webhook(&http, &stack, &format!("beside{w}"), &url, beside.filter, beside.tenant).await?;
        }
    }

    let healthy_events = scenario.events;
    let slow_events = scenario.beside.as_ref().map_or(0, |b| b.events);
    let total = healthy_events + slow_events;
    // Slow events spread evenly among the healthy ones; indexes past
    // `healthy_events` are slow.
    let order: Vec<u64> = {
        let mut order = Vec::with_capacity(total);
        let (mut h, mut s) = (0u64, healthy_events as u64);
        for k in 0..total {
            let slow_turn = slow_events > 0 && (k * slow_events / total) != ((k + 1) * slow_events / total);
            if slow_turn {
                order.push(s);
                s += 1;
            } else {
                order.push(h);
                h += 1;
            }
        }
        order
    };
    let (sent, ingest_took) = drive(&stack, scenario, total, |k| {
        let index = order[k];
        match &scenario.beside {
            Some(beside) if index >= healthy_events as u64 => {
                EventSpec { event_type: beside.event_type.to_owned(), index, tenant: beside.tenant }
            }
            _ if separate => EventSpec {
                event_type: format!("h{}.created", index % u64::from(fanout.max(1))),
                index,
                tenant: scenario.tenant,
            },
            _ => EventSpec { event_type: scenario.event_type.to_owned(), index, tenant: scenario.tenant },
        }
    })
    .await?;
    // `sent.at` is by position in `order`; map it back to event indexes.
    let mut sent_at = vec![None; total];
    for (k, at) in sent.at.iter().enumerate() {
        sent_at[usize::try_from(order[k]).unwrap_or(0)] = *at;
    }
    let first_sent = sent_at.iter().flatten().min().copied().unwrap_or_else(Instant::now);

    // Which (event, webhook) pairs must arrive.
    let expected: Vec<(u64, u32)> = (0..healthy_events as u64)
        .flat_map(|i| {
            if separate {
                vec![(i, u32::try_from(i % u64::from(fanout.max(1))).unwrap_or(0))]
            } else {
                (0..fanout).map(|w| (i, w)).collect()
            }
        })
        .collect();
    let want = expected.len() as u64;
    let time_box = scenario.time_box_secs.map(|s| first_sent + Duration::from_secs(s));
    let mut stopped_at_time_box = false;
    let mut last_progress = (receiver.successes(0..fanout), Instant::now());
    while receiver.successes(0..fanout) < want {
        if time_box.is_some_and(|end| Instant::now() >= end) {
            stopped_at_time_box = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = receiver.successes(0..fanout);
        if now != last_progress.0 {
            last_progress = (now, Instant::now());
        }
        anyhow::ensure!(
            last_progress.1.elapsed() < Duration::from_secs(60),
            "{}: stalled at {now} of {want} deliveries",
            scenario.title()
        );
    }
    let (producer_usage, worker_usage) = stack.usage();
    let arrivals = receiver.arrivals();
    let mut latencies = Vec::with_capacity(expected.len());
    let mut lost = 0;
    let mut duplicates = 0;
    let mut requests = 0u64;
    let mut last = first_sent;
    for key in &expected {
        match arrivals.get(key) {
            Some(arrival) => {
                let planned_failures = u32::from(scenario.fail_every > 0 && key.0 % scenario.fail_every == 0);
                duplicates += u64::from(arrival.requests.saturating_sub(1 + planned_failures));
                requests += u64::from(arrival.requests);
                match (arrival.delivered_at, sent_at[usize::try_from(key.0).unwrap_or(0)]) {
                    (Some(at), Some(sent)) => {
                        latencies.push(at.saturating_duration_since(sent));
                        last = last.max(at);
                    }
                    (None, _) => lost += 1,
                    (Some(_), None) => {}
                }
            }
            None => lost += 1,
        }
    }
    let delivered = want - lost;
    let slow = match &scenario.beside {
        Some(beside) => {
            Some(SlowCounts::count(&arrivals, beside_webhooks, beside.events as u64 * u64::from(beside.webhooks)))
        }
        None if scenario.slow => Some(SlowCounts::count(&arrivals, 0..fanout, want)),
        None => None,
    };

    // Every attempt made to a measured webhook is recorded: when they answer
    // at once, as many as requests arrived; when they are slow, at least the
    // requests answered before and at most those arrived by now (the others
    // are recorded once answered).
    let db = stack.db().await?;
    let measured_attempts = "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
                             JOIN webhooks w ON w.id = d.webhook_id WHERE w.name NOT LIKE 'beside%'";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = u64::try_from(count(&db, measured_attempts).await?).unwrap_or(0);
        let (ok, wanted) = if scenario.slow {
            let arrived: u64 =
                receiver.arrivals().iter().filter(|((_, w), _)| *w < fanout).map(|(_, a)| u64::from(a.requests)).sum();
            (delivered <= recorded && recorded <= arrived, format!("{delivered} to {arrived}"))
        } else {
            (recorded == requests, requests.to_string())
        };
        if ok {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: {wanted} attempts expected but {recorded} are recorded",
            scenario.title()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = Rows {
        events: count(&db, "SELECT count(*) FROM events").await?,
        deliveries: count(&db, "SELECT count(*) FROM deliveries").await?,
        attempts: count(&db, "SELECT count(*) FROM attempts").await?,
    };
    drop(db);
    stack.stop().await?;

    let span = last.saturating_duration_since(first_sent).as_secs_f64().max(1e-9);
    let deliveries_per_sec = delivered as f64 / span;
    Ok(Outcome {
        scenario: scenario.clone(),
        events_sent: total,
        deliveries: delivered,
        ingest_per_sec: total as f64 / ingest_took.as_secs_f64().max(1e-9),
        ingest_latency: percentiles(sent.ingest),
        deliveries_per_sec,
        delivery_latency: percentiles(latencies),
        producer: producer_usage,
        workers: worker_usage,
        rows,
        lost,
        duplicates,
        stopped_at_time_box,
        slow,
        rabbitmq_raw_per_sec: raw_rate,
        fraction_of_raw: deliveries_per_sec / raw_rate.max(1e-9),
    })
}

/// B's p99 beside the other load against alone, for the scenarios run both
/// ways: (scenario, p99 alone, p99 beside).
fn comparisons(outcomes: &[Outcome]) -> Vec<(&'static str, f64, f64)> {
    outcomes
        .iter()
        .filter(|o| o.scenario.phase == "alone")
        .filter_map(|alone| {
            let beside =
                outcomes.iter().find(|o| o.scenario.name == alone.scenario.name && o.scenario.phase != "alone")?;
            Some((alone.scenario.name, alone.delivery_latency.p99_ms, beside.delivery_latency.p99_ms))
        })
        .collect()
}

fn markdown(outcomes: &[Outcome], raw: &BTreeMap<&str, f64>) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Raw RabbitMQ persistent publish+consume on this machine: {:.0} msg/s (classic), {:.0} msg/s (quorum).\n\n",
        raw.get("classic").copied().unwrap_or_default(),
        raw.get("quorum").copied().unwrap_or_default()
    ));
    md.push_str(
        "| scenario | events | deliveries | ingest/s | ingest p99 ms | deliveries/s | of raw | latency p50 / p95 / p99 / max ms | producer CPU s / MiB | worker CPU s / MiB | rows e/d/a | lost | dup |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        let workers: Vec<String> =
            o.workers.iter().map(|w| format!("{:.1} / {:.0}", w.cpu_seconds, w.peak_rss_mib)).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.0} % | {:.1} / {:.1} / {:.1} / {:.0} | {:.1} / {:.0} | {} | {}/{}/{} | {}{} | {} |\n",
            o.scenario.title(),
            o.events_sent,
            o.deliveries,
            o.ingest_per_sec,
            o.ingest_latency.p99_ms,
            o.deliveries_per_sec,
            o.fraction_of_raw * 100.0,
            o.delivery_latency.p50_ms,
            o.delivery_latency.p95_ms,
            o.delivery_latency.p99_ms,
            o.delivery_latency.max_ms,
            o.producer.cpu_seconds,
            o.producer.peak_rss_mib,
            workers.join(", "),
            o.rows.events,
            o.rows.deliveries,
            o.rows.attempts,
            o.lost,
            if o.stopped_at_time_box { " (unfinished at the time box)" } else { "" },
            o.duplicates,
        ));
    }
    let slow: Vec<&Outcome> = outcomes.iter().filter(|o| o.slow.is_some()).collect();
    if !slow.is_empty() {
        md.push_str(
            "\nSlow endpoints' deliveries when the run stopped waiting ((event, webhook) pairs; dup: requests beyond the first per `Webhook-Id`):\n\n",
        );
        md.push_str("| scenario | slow webhooks | answer after ms | expected | requested | answered | dup |\n");
        md.push_str("|---|---|---|---|---|---|---|\n");
        for o in slow {
            let c = o.slow.unwrap_or_default();
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                o.scenario.title(),
                c.webhooks,
                o.scenario.hang_ms,
                c.expected,
                c.requested,
                c.answered,
                c.duplicates
            ));
        }
    }
    let comparisons = comparisons(outcomes);
    if !comparisons.is_empty() {
        md.push('\n');
        for (name, alone, beside) in comparisons {
            md.push_str(&format!(
                "{name}: measured p99 alone {alone:.1} ms, beside the slow load {beside:.1} ms, ratio {:.2} (goal: under 1,000 ms, ideally a ratio of at most 2)\n",
                beside / alone.max(1e-9)
            ));
        }
    }
    md
}

async fn run(names: Vec<String>, events: usize, seconds: u64, out: PathBuf) -> anyhow::Result<()> {
    let all = scenarios(events, seconds);
    let known: Vec<&str> = all.iter().map(|s| s.name).collect();
    let known = known.join(", ");
    let selected: Vec<Scenario> =
        all.into_iter().filter(|s| names.is_empty() || names.iter().any(|n| n == s.name)).collect();
    anyhow::ensure!(!selected.is_empty(), "no such scenario; known: {known}");
    eprintln!("measuring raw RabbitMQ publish+consume…");
    let mut raw = BTreeMap::new();
    raw.insert("classic", baseline::rabbitmq_rate("classic", 50_000).await.context("raw RabbitMQ rate")?);
    raw.insert("quorum", baseline::rabbitmq_rate("quorum", 50_000).await.context("raw RabbitMQ rate")?);
    eprintln!("  classic {:.0} msg/s, quorum {:.0} msg/s", raw["classic"], raw["quorum"]);
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let phases =
        selected.iter().flat_map(|s| if s.compare_alone { vec![s.alone(), s.clone()] } else { vec![s.clone()] });
    for scenario in phases {
        let title = scenario.title();
        eprintln!("scenario {title} …");
        match run_scenario(&scenario, raw["quorum"]).await {
            Ok(outcome) => {
                eprintln!(
                    "  {:.0} deliveries/s, p50 / p95 / p99 / max {:.1} / {:.1} / {:.1} / {:.1} ms, lost {}{}, duplicates {}, worker peak RSS {} MiB",
                    outcome.deliveries_per_sec,
                    outcome.delivery_latency.p50_ms,
                    outcome.delivery_latency.p95_ms,
                    outcome.delivery_latency.p99_ms,
                    outcome.delivery_latency.max_ms,
                    outcome.lost,
                    if outcome.stopped_at_time_box { " (unfinished at the time box)" } else { "" },
                    outcome.duplicates,
                    outcome.workers.iter().map(|w| format!("{:.0}", w.peak_rss_mib)).collect::<Vec<_>>().join(", "),
                );
                if let Some(c) = outcome.slow {
                    eprintln!(
                        "  slow endpoints: {} of {} deliveries requested, {} answered, duplicates {}",
                        c.requested, c.expected, c.answered, c.duplicates
                    );
                }
                // Deliveries not finished within a time box are reported,
                // not failed; a duplicate always fails.
                let lost = if scenario.time_box_secs.is_some() { 0 } else { outcome.lost };
                let slow_duplicates = outcome.slow.map_or(0, |c| c.duplicates);
                if lost > 0 || outcome.duplicates > 0 || slow_duplicates > 0 {
                    failures.push(format!(
                        "{title}: lost {}, duplicated {}, slow endpoints' duplicated {slow_duplicates}",
                        outcome.lost, outcome.duplicates
                    ));
                }
                outcomes.push(outcome);
            }
            Err(e) => failures.push(format!("{title}: {e:#}")),
        }
    }
    let md = markdown(&outcomes, &raw);
    println!("{md}");
    std::fs::create_dir_all(&out)?;
    let ratios: Vec<serde_json::Value> = comparisons(&outcomes)
        .into_iter()
        .map(|(name, alone, beside)| {
            serde_json::json!({ "scenario": name, "p99_alone_ms": alone, "p99_beside_ms": beside,
                                "ratio": beside / alone.max(1e-9) })
        })
        .collect();
    let json = serde_json::json!({ "rabbitmq_raw_per_sec": raw, "outcomes": outcomes, "p99_ratios": ratios });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("results.md"), &md)?;
    eprintln!("saved {}", out.join("results.{json,md}").display());
    anyhow::ensure!(failures.is_empty(), "failed: {}", failures.join("; "));
    Ok(())
}

async fn fairness(healthy: u32, events: usize, slow_events: usize, hang_ms: u64, rate: u32) -> anyhow::Result<()> {
    let base = Scenario {
        fanout: healthy,
        separate: true,
        pace: Pace::Rate { per_sec: rate },
        hang_ms,
        beside: Some(Beside::hanging(0)),
        ..Scenario::new("alone", events * healthy as usize)
    };
    let beside =
        Scenario { name: "beside a hanging endpoint", beside: Some(Beside::hanging(slow_events)), ..base.clone() };
    eprintln!("fairness: {healthy} healthy webhooks × {events} events at {rate}/s; alone…");
    let alone = run_scenario(&base, 1.0).await?;
    eprintln!("…and beside a webhook hanging {hang_ms} ms on each of {slow_events} events…");
    let with = run_scenario(&beside, 1.0).await?;
    println!("| healthy deliveries | n | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, o) in [("alone", &alone), ("beside a hanging endpoint", &with)] {
        let l = o.delivery_latency;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            o.deliveries, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
        );
    }
    let ratio = with.delivery_latency.p99_ms / alone.delivery_latency.p99_ms.max(1e-9);
    println!("\np99 ratio (beside / alone): {ratio:.2} (target: at most 2)");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Run { scenarios, events, seconds, out } => run(scenarios, events, seconds, out).await,
        Cli::Fairness { healthy, events, slow_events, hang_ms, rate } => {
            fairness(healthy, events, slow_events, hang_ms, rate).await
        }
    }
}
