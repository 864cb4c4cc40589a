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
        /// Seconds of the fixed-rate scenarios.
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

#[derive(Debug, Clone, Serialize)]
struct Scenario {
    name: &'static str,
    events: usize,
    fanout: u32,
    pace: Pace,
    source: Source,
    /// Fail the first request of every n-th event (0: none).
    fail_every: u64,
    /// A webhook whose endpoint hangs this long, and how many events go to it.
    hanging: Option<(u64, usize)>,
    workers: usize,
    retry_schedule: &'static str,
}

impl Scenario {
    fn new(name: &'static str, events: usize) -> Self {
        Self {
            name,
            events,
            fanout: 1,
            pace: Pace::FullSpeed { concurrency: 64 },
            source: Source::Http,
            fail_every: 0,
            hanging: None,
            workers: 1,
            retry_schedule: "5s,1m,5m,30m,2h,5h,10h,10h",
        }
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
            pace: Pace::Rate { per_sec: 200 },
            hanging: Some((10_000, 1000)),
            ..Scenario::new("hanging-beside-10", 10_000)
        },
        Scenario { source: Source::Direct, ..Scenario::new("direct-amqp", events) },
        Scenario { workers: 2, ..Scenario::new("two-workers", events) },
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
    lost: u64,
    duplicates: u64,
    rabbitmq_raw_per_sec: f64,
    fraction_of_raw: f64,
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

/// One event's body, its index in `data.i`.
fn event_body(event_type: &str, i: u64) -> String {
    format!(r#"{{"event":"{event_type}","id":"e{i}","data":{{"i":{i}}}}}"#)
}

struct Sent {
    at: Vec<Option<Instant>>,
    ingest: Vec<Duration>,
}

/// Drives the load: every event index `0..n`, typed by `event_type(i)`.
async fn drive(
    stack: &Stack,
    scenario: &Scenario,
    n: usize,
    event_at: impl Fn(usize) -> (String, u64),
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
                    let (kind, index) = event_at(i);
                    let body = event_body(&kind, index);
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
                let (kind, index) = event_at(i);
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        kind.as_str().into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        event_body(&kind, index).as_bytes(),
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
    events: &[String],
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "name": name, "url": url, "token": "bench-token-0123456789", "events": events
    });
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
    let receiver = Receiver::start(Behaviour {
        fail_every: scenario.fail_every,
        hang: Duration::from_millis(scenario.hanging.map_or(0, |(ms, _)| ms)),
    })
    .await?;
    let stack = Stack::start(&options).await?;
    let http = reqwest::Client::new();
    // With a hanging webhook each healthy webhook has its own event type
    // (so events can be addressed to one), else all share one.
    let separate = scenario.hanging.is_some();
    for w in 0..scenario.fanout {
        let events = if separate { vec![format!("h{w}.created")] } else { vec!["bench.created".to_owned()] };
        create_webhook(&http, &stack, &format!("w{w}"), &receiver.url(w), &events).await?;
    }
    if scenario.hanging.is_some() {
        create_webhook(&http, &stack, "hanging", &receiver.hang_url(), &["slow.created".to_owned()]).await?;
    }

    let healthy_events = scenario.events;
    let slow_events = scenario.hanging.map_or(0, |(_, n)| n);
    let total = healthy_events + slow_events;
    // Slow events spread evenly among the healthy ones; indexes past
    // `healthy_events` are slow.
    let fanout = scenario.fanout;
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
        let i = order[k];
        let kind = if i >= healthy_events as u64 {
            "slow.created".to_owned()
        } else if separate {
            format!("h{}.created", i % u64::from(fanout))
        } else {
            "bench.created".to_owned()
        };
        (kind, i)
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
                vec![(i, u32::try_from(i % u64::from(fanout)).unwrap_or(0))]
            } else {
                (0..fanout).map(|w| (i, w)).collect()
            }
        })
        .collect();
    let want = expected.len() as u64;
    let mut last_progress = (receiver.successes(), Instant::now());
    while receiver.successes() < want {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = receiver.successes();
        if now != last_progress.0 {
            last_progress = (now, Instant::now());
        }
        anyhow::ensure!(
            last_progress.1.elapsed() < Duration::from_secs(60),
            "{}: stalled at {now} of {want} deliveries",
            scenario.name
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
                if let (Some(at), Some(sent)) = (arrival.delivered_at, sent_at[usize::try_from(key.0).unwrap_or(0)]) {
                    latencies.push(at.saturating_duration_since(sent));
                    last = last.max(at);
                }
            }
            None => lost += 1,
        }
    }

    // Every attempt made to a healthy webhook is recorded.
    let db = stack.db().await?;
    let healthy_attempts = "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
                            JOIN webhooks w ON w.id = d.webhook_id WHERE w.name <> 'hanging'";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = count(&db, healthy_attempts).await?;
        if u64::try_from(recorded).unwrap_or(0) == requests {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: {requests} requests arrived but {recorded} attempts are recorded",
            scenario.name
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
    let deliveries_per_sec = want as f64 / span;
    Ok(Outcome {
        scenario: scenario.clone(),
        events_sent: total,
        deliveries: want,
        ingest_per_sec: total as f64 / ingest_took.as_secs_f64().max(1e-9),
        ingest_latency: percentiles(sent.ingest),
        deliveries_per_sec,
        delivery_latency: percentiles(latencies),
        producer: producer_usage,
        workers: worker_usage,
        rows,
        lost,
        duplicates,
        rabbitmq_raw_per_sec: raw_rate,
        fraction_of_raw: deliveries_per_sec / raw_rate.max(1e-9),
    })
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
            "| {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.0} % | {:.1} / {:.1} / {:.1} / {:.0} | {:.1} / {:.0} | {} | {}/{}/{} | {} | {} |\n",
            o.scenario.name,
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
            o.duplicates,
        ));
    }
    md
}

async fn run(names: Vec<String>, events: usize, seconds: u64, out: PathBuf) -> anyhow::Result<()> {
    let selected: Vec<Scenario> = scenarios(events, seconds)
        .into_iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
        .collect();
    anyhow::ensure!(
        !selected.is_empty(),
        "no such scenario; known: fanout-1, fanout-10, rate-500, rate-200, failing-10pct, hanging-beside-10, direct-amqp, two-workers"
    );
    eprintln!("measuring raw RabbitMQ publish+consume…");
    let mut raw = BTreeMap::new();
    raw.insert("classic", baseline::rabbitmq_rate("classic", 50_000).await.context("raw RabbitMQ rate")?);
    raw.insert("quorum", baseline::rabbitmq_rate("quorum", 50_000).await.context("raw RabbitMQ rate")?);
    eprintln!("  classic {:.0} msg/s, quorum {:.0} msg/s", raw["classic"], raw["quorum"]);
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for scenario in &selected {
        eprintln!("scenario {} …", scenario.name);
        match run_scenario(scenario, raw["quorum"]).await {
            Ok(outcome) => {
                eprintln!(
                    "  {:.0} deliveries/s, p99 {:.1} ms, lost {}, duplicates {}",
                    outcome.deliveries_per_sec, outcome.delivery_latency.p99_ms, outcome.lost, outcome.duplicates
                );
                if outcome.lost > 0 || outcome.duplicates > 0 {
                    failures
                        .push(format!("{}: lost {}, duplicated {}", scenario.name, outcome.lost, outcome.duplicates));
                }
                outcomes.push(outcome);
            }
            Err(e) => failures.push(format!("{}: {e:#}", scenario.name)),
        }
    }
    let md = markdown(&outcomes, &raw);
    println!("{md}");
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({ "rabbitmq_raw_per_sec": raw, "outcomes": outcomes });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("results.md"), &md)?;
    eprintln!("saved {}", out.join("results.{json,md}").display());
    anyhow::ensure!(failures.is_empty(), "failed: {}", failures.join("; "));
    Ok(())
}

async fn fairness(healthy: u32, events: usize, slow_events: usize, hang_ms: u64, rate: u32) -> anyhow::Result<()> {
    let base = Scenario {
        fanout: healthy,
        pace: Pace::Rate { per_sec: rate },
        hanging: Some((hang_ms, 0)),
        ..Scenario::new("alone", events * healthy as usize)
    };
    let beside = Scenario { name: "beside a hanging endpoint", hanging: Some((hang_ms, slow_events)), ..base.clone() };
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
