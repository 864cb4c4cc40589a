//! The benchmark's webhook receiver on loopback: it answers fast, notes when
//! each (event, webhook) request arrived, and can fail or hang on purpose.

use std::{
    collections::HashMap,
    net::SocketAddr,
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
    /// How long `/hang` requests take.
    pub(crate) hang: Duration,
}

/// What arrived for one (event, webhook).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// The first successful request.
    pub(crate) delivered_at: Option<Instant>,
    /// Every request, failed ones included.
    pub(crate) requests: u32,
}

#[derive(Debug, Default)]
struct Inner {
    arrivals: HashMap<(u64, u32), Arrival>,
    successes: u64,
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

fn event_index(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?["data"]["i"].as_u64()
}

async fn webhook(State(shared): State<Shared>, Path(w): Path<u32>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let Some(i) = event_index(&body) else { return StatusCode::BAD_REQUEST };
    let mut inner = shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
    let arrival = inner.arrivals.entry((i, w)).or_insert(Arrival { delivered_at: None, requests: 0 });
    arrival.requests += 1;
    let fail = shared.behaviour.fail_every > 0 && i % shared.behaviour.fail_every == 0 && arrival.requests == 1;
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let first = arrival.delivered_at.is_none();
    arrival.delivered_at.get_or_insert(at);
    if first {
        inner.successes += 1;
    }
    StatusCode::NO_CONTENT
}

async fn hang(State(shared): State<Shared>) -> StatusCode {
    tokio::time::sleep(shared.behaviour.hang).await;
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Starts listening on a free loopback port.
    pub(crate) async fn start(behaviour: Behaviour) -> anyhow::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = Shared { inner: inner.clone(), behaviour };
        let app = axum::Router::new()
            .route("/w/{w}", axum::routing::post(webhook))
            .route("/hang", axum::routing::post(hang))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, inner })
    }

    /// The URL of webhook `w`.
    pub(crate) fn url(&self, w: u32) -> String {
        format!("http://{}/w/{w}", self.addr)
    }

    /// The URL that hangs.
    pub(crate) fn hang_url(&self) -> String {
        format!("http://{}/hang", self.addr)
    }

    /// (event, webhook) pairs delivered successfully so far.
    pub(crate) fn successes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).successes
    }

    /// Everything that arrived.
    pub(crate) fn arrivals(&self) -> HashMap<(u64, u32), Arrival> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).arrivals.clone()
    }
}
