//! The benchmark's webhook receiver on loopback: it answers fast, notes when
//! each (event, webhook) request arrived, and can fail or answer slowly on
//! purpose.

use std::{
    collections::HashMap,
    net::SocketAddr,
    ops::Range,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Behaviour {
    /// Fail (500) the first request of every n-th event (0: never).
    pub(crate) fail_every: u64,
    /// How long requests to the slow URLs (`/slow/{w}`) take to answer.
    pub(crate) hang: Duration,
}

/// What arrived for one (event, webhook). A delivery's `Webhook-Id` is one
/// (event, webhook) pair, so requests counted here are requests per
/// `Webhook-Id` too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// When the first request that was answered with success arrived (for a
    /// slow URL, set once the answer is sent).
    pub(crate) delivered_at: Option<Instant>,
    /// Every request, failed and unanswered ones included.
    pub(crate) requests: u32,
}

#[derive(Debug, Default)]
struct Inner {
    arrivals: HashMap<(u64, u32), Arrival>,
    /// (event, webhook) pairs answered with success, by webhook.
    successes: HashMap<u32, u64>,
}

impl Inner {
    fn arrival(&mut self, key: (u64, u32)) -> &mut Arrival {
        self.arrivals.entry(key).or_insert(Arrival { delivered_at: None, requests: 0 })
    }

    /// Notes a successful answer to a request that arrived `at`.
    fn succeeded(&mut self, key: (u64, u32), at: Instant) {
        let arrival = self.arrival(key);
        let first = arrival.delivered_at.is_none();
        arrival.delivered_at.get_or_insert(at);
        if first {
            *self.successes.entry(key.1).or_default() += 1;
        }
    }
}

/// A running receiver.
#[derive(Debug, Clone)]
pub(crate) struct Receiver {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Clone)]
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

async fn webhook(State(shared): State<Shared>, Path(w): Path<u32>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let Some(i) = event_index(&body) else { return StatusCode::BAD_REQUEST };
    let mut inner = shared.inner();
    let arrival = inner.arrival((i, w));
    arrival.requests += 1;
    let fail = shared.behaviour.fail_every > 0 && i % shared.behaviour.fail_every == 0 && arrival.requests == 1;
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    inner.succeeded((i, w), at);
    StatusCode::NO_CONTENT
}

/// Answers `Behaviour::hang` after the request arrived.
async fn slow(State(shared): State<Shared>, Path(w): Path<u32>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let Some(i) = event_index(&body) else { return StatusCode::BAD_REQUEST };
    drop(body);
    shared.inner().arrival((i, w)).requests += 1;
    tokio::time::sleep(shared.behaviour.hang).await;
    shared.inner().succeeded((i, w), at);
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Starts listening on a free loopback port.
    pub(crate) async fn start(behaviour: Behaviour) -> anyhow::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = Shared { inner: inner.clone(), behaviour };
        let app = axum::Router::new()
            .route("/w/{w}", axum::routing::post(webhook))
            .route("/slow/{w}", axum::routing::post(slow))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, inner })
    }

    /// The URL of webhook `w`, answering at once.
    pub(crate) fn url(&self, w: u32) -> String {
        format!("http://{}/w/{w}", self.addr)
    }

    /// The URL of webhook `w`, answering after `Behaviour::hang`.
    pub(crate) fn slow_url(&self, w: u32) -> String {
        format!("http://{}/slow/{w}", self.addr)
    }

    /// (event, webhook) pairs of these webhooks delivered successfully so far.
    pub(crate) fn successes(&self, webhooks: Range<u32>) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        webhooks.filter_map(|w| inner.successes.get(&w)).sum()
    }

    /// Everything that arrived.
    pub(crate) fn arrivals(&self) -> HashMap<(u64, u32), Arrival> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).arrivals.clone()
    }
}
