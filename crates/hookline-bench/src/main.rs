//! `hookline-bench`: measures Hookline on this machine, against the local
//! Postgres and RabbitMQ, with producer and worker in-process and receivers
//! on loopback.
//!
//! - `fairness`: healthy webhooks' ingest → delivery latency, first alone,
//!   then beside one webhook whose endpoint hangs on every request; prints
//!   both p99s and their ratio.
//!
//! Each run uses a fresh database (`hookline_bench_<id>`, dropped after)
//! and broker namespace.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "hookline-bench", about = "Measure Hookline on this machine")]
enum Cli {
    /// Healthy webhooks' latency with and without one hanging endpoint.
    Fairness {
        /// Healthy webhooks.
        #[arg(long, default_value_t = 10)]
        healthy: usize,
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

const KEY: &str = "bench-admin-key-0123456789";

/// When each event reached a receiver, by event index.
type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

async fn receiver(arrivals: Arrivals, hang: Duration) -> anyhow::Result<SocketAddr> {
    let handler = move |body: axum::body::Bytes| {
        let arrivals = arrivals.clone();
        async move {
            let at = Instant::now();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(i) = v["data"]["i"].as_u64()
            {
                arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(i).or_insert(at);
            }
            if !hang.is_zero() {
                tokio::time::sleep(hang).await;
            }
            "ok"
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
    Ok(addr)
}

struct Stack {
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    database: String,
}

async fn start_stack() -> anyhow::Result<Stack> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let database = format!("hookline_bench_{id}");
    let pg = hookline_store::PgSettings {
        url: format!("postgres://postgres@127.0.0.1:5432/{database}"),
        pool_size: 16,
        ..Default::default()
    };
    let amqp = hookline_broker::AmqpSettings { namespace: format!("bench{id}"), ..Default::default() };
    let producer = hookline_producer::Settings {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pg: pg.clone(),
        amqp: amqp.clone(),
        api_keys: vec![hookline_producer::settings::Secret::new(KEY.to_owned())],
        max_webhooks_per_tenant: 10_000,
        allowed_networks: hookline_core::AllowList::loopback(),
        ..Default::default()
    };
    let worker = hookline_worker::Settings {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pg,
        amqp,
        request_timeout: Duration::from_secs(30),
        drain_timeout: Duration::from_secs(1),
        allowed_networks: hookline_core::AllowList::loopback(),
        ..Default::default()
    };
    let producer = hookline_producer::build(&producer).await.context("starting the producer")?;
    let worker = hookline_worker::build(&worker).await.context("starting the worker")?;
    let addr = producer.local_addr();
    let shutdown = CancellationToken::new();
    let tasks = vec![
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move { Ok(producer.run_until_stopped(shutdown).await?) }
        }),
        tokio::spawn(worker.run_until_stopped(shutdown.clone())),
    ];
    Ok(Stack { addr, shutdown, tasks, database })
}

impl Stack {
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let (client, connection) =
            tokio_postgres::connect("postgres://postgres@127.0.0.1:5432/postgres", tokio_postgres::NoTls)
                .await
                .context("connecting to drop the bench database")?;
        tokio::spawn(connection);
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database)).await?;
        Ok(())
    }
}

async fn api(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let response = http.post(format!("http://{addr}{path}")).bearer_auth(KEY).json(&body).send().await?;
    let status = response.status();
    let value: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{path}: {status} {value}");
    Ok(value)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One fairness run: returns the healthy deliveries' latencies, sorted.
async fn fairness_run(
    healthy: usize,
    events: usize,
    slow_events: usize,
    hang: Duration,
    rate: u32,
) -> anyhow::Result<Vec<Duration>> {
    let stack = start_stack().await?;
    let http = reqwest::Client::new();
    let arrivals: Arrivals = Arc::default();
    let fast = receiver(arrivals.clone(), Duration::ZERO).await?;
    let slow = receiver(Arc::default(), hang).await?;
    for w in 0..healthy {
        api(
            &http,
            stack.addr,
            "/v1/webhooks",
            serde_json::json!({
                "name": format!("healthy-{w}"), "url": format!("http://{fast}/{w}"),
                "token": "bench-token-0123456789", "events": [format!("healthy{w}.created")]
            }),
        )
        .await?;
    }
    if slow_events > 0 {
        api(
            &http,
            stack.addr,
            "/v1/webhooks",
            serde_json::json!({
                "name": "hanging", "url": format!("http://{slow}/"),
                "token": "bench-token-0123456789", "events": ["slow.created"]
            }),
        )
        .await?;
    }
    // Interleave: slow events spread evenly among the healthy ones.
    let total = healthy * events + slow_events;
    let mut plan = Vec::with_capacity(total);
    let mut h = 0u64;
    for k in 0..total {
        let slow_turn = slow_events > 0 && (k * slow_events / total) != ((k + 1) * slow_events / total);
        if slow_turn {
            plan.push(None);
        } else {
            plan.push(Some(h));
            h += 1;
        }
    }
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = Instant::now();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    for (k, item) in plan.into_iter().enumerate() {
        tokio::time::sleep_until((start + interval * u32::try_from(k).unwrap_or(u32::MAX)).into()).await;
        let (event, i) = match item {
            Some(i) => (format!("healthy{}.created", i as usize % healthy), i),
            None => ("slow.created".to_owned(), u64::MAX - k as u64),
        };
        let http = http.clone();
        let sent = sent.clone();
        let addr = stack.addr;
        in_flight.push(tokio::spawn(async move {
            let at = Instant::now();
            let body = serde_json::json!({"event": event, "data": {"i": i}});
            let result = api(&http, addr, "/v1/events", body).await;
            if i < u64::MAX / 2 {
                sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(i, at);
            }
            result
        }));
    }
    use futures_util::StreamExt;
    while let Some(result) = in_flight.next().await {
        result??;
    }
    let want = healthy * events;
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() < want {
        anyhow::ensure!(Instant::now() < deadline, "healthy deliveries did not all arrive within 300 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let arrivals = arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut latencies: Vec<Duration> =
        sent.iter().filter_map(|(i, at)| arrivals.get(i).map(|got| got.saturating_duration_since(*at))).collect();
    latencies.sort();
    stack.stop().await?;
    Ok(latencies)
}

fn describe(name: &str, l: &[Duration]) -> String {
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        l.len(),
        percentile(l, 50.0).as_secs_f64() * 1e3,
        percentile(l, 95.0).as_secs_f64() * 1e3,
        percentile(l, 99.0).as_secs_f64() * 1e3,
        l.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Fairness { healthy, events, slow_events, hang_ms, rate } => {
            let hang = Duration::from_millis(hang_ms);
            eprintln!("fairness: {healthy} healthy webhooks × {events} events, rate {rate}/s; baseline run…");
            let alone = fairness_run(healthy, events, 0, hang, rate).await?;
            eprintln!("…and beside a webhook hanging {hang_ms} ms on each of {slow_events} events…");
            let beside = fairness_run(healthy, events, slow_events, hang, rate).await?;
            println!("| healthy deliveries | n | p50 ms | p95 ms | p99 ms | max ms |");
            println!("|---|---|---|---|---|---|");
            println!("{}", describe("alone", &alone));
            println!("{}", describe("beside a hanging endpoint", &beside));
            let ratio = percentile(&beside, 99.0).as_secs_f64() / percentile(&alone, 99.0).as_secs_f64().max(1e-9);
            println!("\np99 ratio (beside / alone): {ratio:.2} (target: at most 2)");
        }
    }
    Ok(())
}
