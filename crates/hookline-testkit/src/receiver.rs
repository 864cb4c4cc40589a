//! An in-process webhook receiver that records every request it gets.
//!
//! The raw body bytes are kept as received so tests can verify signatures.
//! The status it answers with can be changed while a test runs, scripted
//! per request, or made to fail the first request of each `Webhook-Id`.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use tokio::sync::Notify;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query of the request.
    pub uri: String,
    /// Every header, as sent.
    pub headers: HeaderMap,
    /// The body bytes exactly as received.
    pub body: Vec<u8>,
    /// When the request arrived.
    pub at: time::OffsetDateTime,
    /// The status code the receiver answered with.
    pub status: u16,
}

impl Received {
    /// The value of a header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One scripted answer: a status and optional extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Extra response headers, e.g. `Retry-After`.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A reply with only a status.
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Debug)]
struct Shared {
    delay_ms: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
    requests: Mutex<Vec<Received>>,
    script: Mutex<std::collections::VecDeque<Reply>>,
    status: AtomicU16,
    notify: Notify,
    /// Whether the first request of each `Webhook-Id` is answered `500`.
    fail_first: std::sync::atomic::AtomicBool,
    /// Every `Webhook-Id` seen while `fail_first` was on.
    seen_ids: Mutex<std::collections::HashSet<String>>,
}

/// An HTTP endpoint on `127.0.0.1:0`. It stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = shared.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let first_of_id = shared.fail_first.load(Ordering::SeqCst)
        && headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|id| shared.seen_ids.lock().expect("receiver lock is never poisoned").insert(id.to_owned()));
    let mut received =
        Received { uri: uri.to_string(), headers, body: body.to_vec(), at: time::OffsetDateTime::now_utc(), status: 0 };
    let reply = {
        let mut requests = shared.requests.lock().expect("receiver lock is never poisoned: no code panics holding it");
        let reply = shared.script.lock().expect("never poisoned").pop_front().unwrap_or_else(|| {
            if first_of_id { Reply::status(500) } else { Reply::status(shared.status.load(Ordering::Relaxed)) }
        });
        received.status = reply.status;
        requests.push(received);
        reply
    };
    shared.notify.notify_waiters();
    let mut response = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK).into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::try_from(name), axum::http::HeaderValue::try_from(value))
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

impl Receiver {
    /// Starts a receiver that answers `200 OK` to every POST on any path.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            delay_ms: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max_in_flight: std::sync::atomic::AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(std::collections::VecDeque::new()),
            status: AtomicU16::new(200),
            notify: Notify::new(),
            fail_first: std::sync::atomic::AtomicBool::new(false),
            seen_ids: Mutex::new(std::collections::HashSet::new()),
        });
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1:0 works on loopback");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A URL on this receiver with the given path (which should start with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sets the status code answered from now on.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    /// Answers the next requests with these replies, in order, then falls
    /// back to the status set with [`Receiver::set_status`].
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("never poisoned").extend(replies);
    }

    /// Makes every answer wait this long (a slow endpoint).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.shared.delay_ms.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// When `on`, answers the first request of each `Webhook-Id` (each
    /// delivery) with `500` and later ones as usual, so every delivery is
    /// retried once. A scripted reply still comes first (and its request
    /// still counts as its id's first). Off by default; turning it off keeps
    /// the ids already seen.
    pub fn fail_first_per_id(&self, on: bool) {
        self.shared.fail_first.store(on, Ordering::SeqCst);
    }

    /// The number of requests received so far (cheaper than
    /// [`Receiver::requests`] when polling).
    pub fn count(&self) -> usize {
        self.shared.requests.lock().expect("receiver lock is never poisoned").len()
    }

    /// The most requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Everything received so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().expect("receiver lock is never poisoned").clone()
    }

    /// Waits until at least `n` requests have arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.requests();
                if got.len() >= n {
                    return got;
                }
                panic!("receiver got {} of {n} expected requests within {timeout:?}", got.len());
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
