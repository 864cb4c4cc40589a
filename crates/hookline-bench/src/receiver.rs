//! The benchmark's webhook receiver on loopback: it answers fast, notes when
//! each (event, webhook) request arrived, and can fail or answer slowly on
//! purpose.
//!
//! It runs in its own process by default (`hookline-bench receive`, started
//! by [`Receiver::start`]), so its CPU time and memory are not the load
//! generator's and can be reported on their own; `--receiver in-process`
//! runs the same server inside the benchmark instead. Either way the
//! benchmark talks to it over HTTP: `GET /successes/{from}/{to}` and
//! `GET /requests/{from}/{to}` count (event, webhook) pairs answered and
//! requests made for webhooks `from..to`, `GET /arrivals` returns every
//! pair as one [`ArrivalRecord`] a line. Times are wall-clock (Unix
//! nanoseconds, [`unix_nanos`]) so they compare with send times taken in
//! another process.

use std::{
    collections::HashMap,
    net::SocketAddr,
    ops::Range,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context;
use axum::{
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::StatusCode,
};
use tokio::process::{Child, Command};

/// The clock both ends of a latency are read with: wall-clock time in
/// nanoseconds since the Unix epoch (comparable across processes).
pub(crate) fn unix_nanos() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Behaviour {
    /// Fail (500) the first request of every n-th event (0: never).
    pub(crate) fail_every: u64,
    /// How long requests to the slow URLs (`/slow/{w}`) take to answer.
    pub(crate) hang: Duration,
}

/// Where the receiver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Placement {
    /// Its own process (`hookline-bench receive`).
    Process,
    /// A task inside the benchmark's process (beside the load generator).
    InProcess,
}

/// What arrived for one (event, webhook). A delivery's `Webhook-Id` is one
/// (event, webhook) pair, so requests counted here are requests per
/// `Webhook-Id` too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// When the first request that was answered with success arrived, in
    /// Unix nanoseconds (for a slow URL, set once the answer is sent).
    pub(crate) delivered_at: Option<u64>,
    /// Every request, failed and unanswered ones included.
    pub(crate) requests: u32,
}

/// One line of `GET /arrivals`: `{event} {webhook} {requests} {delivered}`,
/// `delivered` in Unix nanoseconds or `-` when not (yet) answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArrivalRecord {
    pub(crate) event: u64,
    pub(crate) webhook: u32,
    pub(crate) arrival: Arrival,
}

impl std::fmt::Display for ArrivalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} ", self.event, self.webhook, self.arrival.requests)?;
        match self.arrival.delivered_at {
            Some(at) => write!(f, "{at}"),
            None => write!(f, "-"),
        }
    }
}

impl std::str::FromStr for ArrivalRecord {
    type Err = anyhow::Error;

    fn from_str(line: &str) -> anyhow::Result<Self> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [event, webhook, requests, delivered] = fields[..] else {
            anyhow::bail!("arrival record `{line}`: expected 4 fields")
        };
        let delivered_at = match delivered {
            "-" => None,
            at => Some(at.parse().with_context(|| format!("arrival record `{line}`"))?),
        };
        Ok(Self {
            event: event.parse().with_context(|| format!("arrival record `{line}`"))?,
            webhook: webhook.parse().with_context(|| format!("arrival record `{line}`"))?,
            arrival: Arrival {
                delivered_at,
                requests: requests.parse().with_context(|| format!("arrival record `{line}`"))?,
            },
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    arrivals: HashMap<(u64, u32), Arrival>,
    /// (event, webhook) pairs answered with success, by webhook.
    successes: HashMap<u32, u64>,
    /// Requests, by webhook.
    requests: HashMap<u32, u64>,
}

impl Inner {
    /// Counts a request to `key` and returns how many it has had.
    fn requested(&mut self, key: (u64, u32)) -> u32 {
        *self.requests.entry(key.1).or_default() += 1;
        let arrival = self.arrivals.entry(key).or_default();
        arrival.requests += 1;
        arrival.requests
    }

    /// Notes a successful answer to a request that arrived `at`.
    fn succeeded(&mut self, key: (u64, u32), at: u64) {
        let arrival = self.arrivals.entry(key).or_default();
        if arrival.delivered_at.is_none() {
            arrival.delivered_at = Some(at);
            *self.successes.entry(key.1).or_default() += 1;
        }
    }
}

#[derive(Debug, Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    behaviour: Behaviour,
}

impl Shared {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn event_index(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?["data"]["i"].as_u64()
}

async fn webhook(State(shared): State<Shared>, UrlPath(w): UrlPath<u32>, body: Bytes) -> StatusCode {
    let at = unix_nanos();
    let Some(i) = event_index(&body) else { return StatusCode::BAD_REQUEST };
    let mut inner = shared.inner();
    let requests = inner.requested((i, w));
    if shared.behaviour.fail_every > 0 && i % shared.behaviour.fail_every == 0 && requests == 1 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    inner.succeeded((i, w), at);
    StatusCode::NO_CONTENT
}

/// Answers `Behaviour::hang` after the request arrived.
async fn slow(State(shared): State<Shared>, UrlPath(w): UrlPath<u32>, body: Bytes) -> StatusCode {
    let at = unix_nanos();
    let Some(i) = event_index(&body) else { return StatusCode::BAD_REQUEST };
    drop(body);
    shared.inner().requested((i, w));
    tokio::time::sleep(shared.behaviour.hang).await;
    shared.inner().succeeded((i, w), at);
    StatusCode::NO_CONTENT
}

async fn successes(State(shared): State<Shared>, UrlPath((from, to)): UrlPath<(u32, u32)>) -> String {
    let inner = shared.inner();
    (from..to).filter_map(|w| inner.successes.get(&w)).sum::<u64>().to_string()
}

async fn requests(State(shared): State<Shared>, UrlPath((from, to)): UrlPath<(u32, u32)>) -> String {
    let inner = shared.inner();
    (from..to).filter_map(|w| inner.requests.get(&w)).sum::<u64>().to_string()
}

async fn arrivals(State(shared): State<Shared>) -> String {
    let inner = shared.inner();
    let mut text = String::with_capacity(inner.arrivals.len() * 36);
    for (&(event, webhook), &arrival) in &inner.arrivals {
        text.push_str(&ArrivalRecord { event, webhook, arrival }.to_string());
        text.push('\n');
    }
    text
}

/// Serves the receiver on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, behaviour: Behaviour) -> anyhow::Result<()> {
    let shared = Shared { inner: Arc::new(Mutex::new(Inner::default())), behaviour };
    let app = axum::Router::new()
        .route("/w/{w}", axum::routing::post(webhook))
        .route("/slow/{w}", axum::routing::post(slow))
        .route("/successes/{from}/{to}", axum::routing::get(successes))
        .route("/requests/{from}/{to}", axum::routing::get(requests))
        .route("/arrivals", axum::routing::get(arrivals))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(shared);
    axum::serve(listener, app).await.context("serving the receiver")
}

/// Where a receiver runs.
#[derive(Debug)]
enum Running {
    Process(Child),
    Task(tokio::task::JoinHandle<anyhow::Result<()>>),
}

/// A running receiver, and the way to ask it what arrived.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its process, or its task inside the benchmark.
    running: Running,
    http: reqwest::Client,
}

impl Receiver {
    /// Starts a receiver at `placement`, its output (if a process) going to
    /// `log`.
    pub(crate) async fn start(placement: Placement, behaviour: Behaviour, log: &Path) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        match placement {
            Placement::InProcess => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let task = tokio::spawn(serve(listener, behaviour));
                Ok(Self { addr, running: Running::Task(task), http })
            }
            Placement::Process => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
                let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
                let mut child = Command::new(std::env::current_exe()?)
                    .arg("receive")
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--fail-every")
                    .arg(behaviour.fail_every.to_string())
                    .arg("--hang-ms")
                    .arg(behaviour.hang.as_millis().to_string())
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .kill_on_drop(true)
                    .spawn()
                    .context("starting the receiver process")?;
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Some(status) = child.try_wait()? {
                        anyhow::bail!("the receiver process exited early with {status}");
                    }
                    let ready = http.get(format!("http://{addr}/healthz")).send().await;
                    if ready.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    anyhow::ensure!(Instant::now() < deadline, "the receiver process did not answer within 30 s");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Self { addr, running: Running::Process(child), http })
            }
        }
    }

    /// Its process id, when it runs in its own process.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(child) => child.id(),
            Running::Task(_) => None,
        }
    }

    /// The URL of webhook `w`, answering at once.
    pub(crate) fn url(&self, w: u32) -> String {
        format!("http://{}/w/{w}", self.addr)
    }

    /// The URL of webhook `w`, answering after `Behaviour::hang`.
    pub(crate) fn slow_url(&self, w: u32) -> String {
        format!("http://{}/slow/{w}", self.addr)
    }

    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let response = self.http.get(format!("http://{}{path}", self.addr)).send().await?;
        anyhow::ensure!(response.status().is_success(), "receiver answered {} to {path}", response.status());
        Ok(response.text().await?)
    }

    /// (event, webhook) pairs of these webhooks delivered successfully so far.
    pub(crate) async fn successes(&self, webhooks: Range<u32>) -> anyhow::Result<u64> {
        let text = self.get(&format!("/successes/{}/{}", webhooks.start, webhooks.end)).await?;
        text.trim().parse().with_context(|| format!("receiver's success count `{text}`"))
    }

    /// Requests made to these webhooks so far.
    pub(crate) async fn requests(&self, webhooks: Range<u32>) -> anyhow::Result<u64> {
        let text = self.get(&format!("/requests/{}/{}", webhooks.start, webhooks.end)).await?;
        text.trim().parse().with_context(|| format!("receiver's request count `{text}`"))
    }

    /// Everything that arrived.
    pub(crate) async fn arrivals(&self) -> anyhow::Result<HashMap<(u64, u32), Arrival>> {
        let text = self.get("/arrivals").await?;
        text.lines().map(|line| line.parse::<ArrivalRecord>().map(|r| ((r.event, r.webhook), r.arrival))).collect()
    }

    /// Stops its process or task.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Running::Process(mut child) => child.kill().await.context("stopping the receiver process"),
            Running::Task(task) => {
                task.abort();
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record survives its line format, answered or not.
    #[test]
    fn arrival_record_round_trips() {
        for delivered_at in [Some(1_764_000_000_123_456_789), None] {
            let record = ArrivalRecord { event: 42, webhook: 7, arrival: Arrival { delivered_at, requests: 2 } };
            assert_eq!(record.to_string().parse::<ArrivalRecord>().expect("parses"), record);
        }
    }

    /// A malformed line is an error, not a panic.
    #[test]
    fn arrival_record_rejects_garbage() {
        for line in ["", "1 2 3", "1 2 x -", "1 2 3 4 5", "a b c d"] {
            assert!(line.parse::<ArrivalRecord>().is_err(), "{line:?}");
        }
    }
}
