//! The end-to-end harness: a producer and a worker running in-process
//! against the real Postgres and RabbitMQ, each test in its own database and
//! broker namespace, plus typed helpers for the API.

use std::{net::SocketAddr, time::Duration};

use hookline_broker::AmqpSettings;
use hookline_producer::settings::Secret;
use hookline_store::PgSettings;
use hookline_testkit::{TestBroker, TestDb};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod webdriver;

pub use hookline_testkit::{Received, Receiver, Reply, eventually};
pub use webdriver::Browser as WebBrowser;

/// The admin API key every test app accepts.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// The secret that signs tenant tokens in tests (so tests can mint their own,
/// expired ones included).
pub const TOKEN_SECRET: &str = "test-tenant-token-secret-0123456789";

/// How long a test waits for something asynchronous to happen.
pub const WAIT: Duration = Duration::from_secs(20);

/// The event type of sentinel events (see [`TestApp::pass_sentinel`]).
pub const SENTINEL: &str = "sentinel.passed";

/// How long [`TestApp::pass_sentinel`] waits after its sentinel is through.
/// A worker handles many messages of a queue at once, so one it took before
/// the sentinel's may still be finishing when the sentinel arrives: a few
/// database round trips and a local request. The slack covers that overlap,
/// counted from a moment the pipeline is known to have moved past the
/// earlier messages, not from an arbitrary earlier one.
pub const SENTINEL_SLACK: Duration = Duration::from_millis(100);

/// A running producer + worker pair and their private database and namespace.
#[derive(Debug)]
pub struct TestApp {
    /// The producer's address.
    pub addr: SocketAddr,
    /// The worker's health address.
    pub worker_addr: SocketAddr,
    /// This test's database.
    pub db: TestDb,
    /// This test's broker namespace.
    pub broker: TestBroker,
    /// Stops both services.
    pub shutdown: CancellationToken,
    /// An HTTP client for the API.
    pub http: reqwest::Client,
    /// The worker settings, for starting more workers.
    pub worker_settings: hookline_worker::Settings,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    workers: Vec<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>,
}

/// A JSON response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body, parsed (Null when empty; a string when it is not JSON).
    pub body: Value,
}

/// Settings of both services for this test's database and namespace.
pub fn settings(db: &TestDb, broker: &TestBroker) -> (hookline_producer::Settings, hookline_worker::Settings) {
    let pg = PgSettings { url: db.url().to_owned(), pool_size: 4, ..Default::default() };
    let amqp = AmqpSettings {
        url: broker.url().to_owned(),
        namespace: broker.namespace().to_owned(),
        // Whatever a failed test leaves on the broker deletes itself.
        queue_expires: Some(Duration::from_secs(120)),
        // Classic queues are much cheaper to create and delete, and tests
        // create many; the broker crate's tests cover quorum queues.
        queue_type: hookline_broker::QueueType::Classic,
    };
    let producer = hookline_producer::Settings {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pg: pg.clone(),
        amqp: amqp.clone(),
        api_keys: vec![Secret::new(ADMIN_KEY.to_owned())],
        allowed_networks: hookline_core::AllowList::loopback(),
        tenant_token_secret: Some(Secret::new(TOKEN_SECRET.to_owned())),
        ..Default::default()
    };
    let worker = hookline_worker::Settings {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pg,
        amqp,
        concurrency: 16,
        request_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(5),
        // No retries unless a test asks for them (with millisecond delays).
        retry_schedule: hookline_core::RetrySchedule::from_delays(Vec::new()),
        allowed_networks: hookline_core::AllowList::loopback(),
        ..Default::default()
    };
    (producer, worker)
}

impl TestApp {
    /// Starts a producer and a worker on a fresh database and namespace.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_, _| {}).await
    }

    /// Like [`TestApp::spawn`], with the settings adjusted by `adjust` first.
    pub async fn spawn_with(
        adjust: impl FnOnce(&mut hookline_producer::Settings, &mut hookline_worker::Settings),
    ) -> Self {
        hookline_telemetry::init_for_tests();
        let db = TestDb::new().await;
        let broker = TestBroker::new().await;
        let (mut producer_settings, mut worker_settings) = settings(&db, &broker);
        adjust(&mut producer_settings, &mut worker_settings);
        let shutdown = CancellationToken::new();
        let (producer, worker) =
            tokio::join!(hookline_producer::build(&producer_settings), hookline_worker::build(&worker_settings));
        let producer = producer.expect("producer starts");
        let worker = worker.expect("worker starts");
        let addr = producer.local_addr();
        let worker_addr = worker.local_addr();
        let tasks = vec![tokio::spawn({
            let shutdown = shutdown.clone();
            async move { Ok(producer.run_until_stopped(shutdown).await?) }
        })];
        let token = shutdown.child_token();
        let workers = vec![(token.clone(), tokio::spawn(worker.run_until_stopped(token)))];
        Self { addr, worker_addr, db, broker, shutdown, http: reqwest::Client::new(), worker_settings, tasks, workers }
    }

    /// Starts one more worker (competing for the same queues).
    pub async fn add_worker(&mut self) {
        let worker = hookline_worker::build(&self.worker_settings).await.expect("worker starts");
        let token = self.shutdown.child_token();
        self.workers.push((token.clone(), tokio::spawn(worker.run_until_stopped(token))));
    }

    /// Stops every worker (SIGTERM-style) and waits for clean exits.
    pub async fn stop_workers(&mut self) {
        for (token, task) in self.workers.drain(..) {
            token.cancel();
            task.await.expect("worker task does not panic").expect("worker exits cleanly");
        }
    }

    /// The API URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Response {
        Self::read(request.bearer_auth(ADMIN_KEY).send().await.expect("the producer answers")).await
    }

    /// Sends `method path` with an optional JSON body and the given bearer
    /// credential (none when `None`), as a tenant or an intruder would.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        Self::read(request.send().await.expect("the producer answers")).await
    }

    async fn read(response: reqwest::Response) -> Response {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else if content_type.contains("json") {
            serde_json::from_slice(&bytes).expect("a JSON body")
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        Response { status, content_type, body }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST path` with a raw body and content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> Response {
        self.send(self.http.post(self.url(path)).header("content-type", content_type).body(body.to_owned())).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Creates a webhook and returns its id; panics unless the API says 201.
    pub async fn create_webhook(&self, body: &Value) -> String {
        let response = self.post("/v1/webhooks", body).await;
        assert_eq!(response.status, 201, "create webhook: {:?}", response.body);
        response.body["id"].as_str().expect("an id").to_owned()
    }

    /// Posts an event; panics unless the API says 202. Returns the event id.
    pub async fn post_event(&self, body: &Value) -> String {
        let response = self.post("/v1/events", body).await;
        assert_eq!(response.status, 202, "post event: {:?}", response.body);
        response.body["id"].as_str().expect("an id").to_owned()
    }

    /// A webhook's deliveries, newest first (the first 100).
    pub async fn deliveries(&self, webhook_id: &str) -> Vec<Value> {
        let response = self.get(&format!("/v1/webhooks/{webhook_id}/deliveries?limit=100")).await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        response.body["data"].as_array().expect("a data array").clone()
    }

    /// Every delivery of a webhook, following the cursor through all pages.
    pub async fn deliveries_all(&self, webhook_id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = format!("/v1/webhooks/{webhook_id}/deliveries?limit=100");
        loop {
            let page = self.get(&path).await;
            assert_eq!(page.status, 200, "{:?}", page.body);
            all.extend(page.body["data"].as_array().expect("data").iter().cloned());
            match page.body["nextCursor"].as_str() {
                Some(cursor) => path = format!("/v1/webhooks/{webhook_id}/deliveries?limit=100&cursor={cursor}"),
                None => return all,
            }
        }
    }

    /// Waits until the webhook has `n` deliveries in a final state, and
    /// returns each one's detail (with attempts), newest first.
    pub async fn settled_deliveries(&self, webhook_id: &str, n: usize) -> Vec<Value> {
        eventually(WAIT, || async {
            let list = self.deliveries(webhook_id).await;
            let settled = list.iter().filter(|d| d["state"] != "pending" && d["state"] != "retrying").count();
            if list.len() == n && settled == n {
                let mut details = Vec::new();
                for d in &list {
                    let id = d["id"].as_str().expect("an id");
                    details.push(self.get(&format!("/v1/deliveries/{id}")).await.body);
                }
                Ok(details)
            } else {
                Err(format!("{} deliveries, {settled} settled, want {n}: {list:?}", list.len()))
            }
        })
        .await
    }

    /// A webhook as the API shows it.
    pub async fn webhook(&self, id: &str) -> Value {
        let response = self.get(&format!("/v1/webhooks/{id}")).await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        response.body
    }

    /// Proves the worker has processed past everything sent before: posts a
    /// sentinel event ([`SENTINEL`], for `tenant`, the default one when
    /// `None`) and waits until `receiver` has it; then asks for a manual
    /// retry of its delivery and waits until that arrives too; then waits
    /// [`SENTINEL_SLACK`]. The event goes through the events exchange and
    /// the dispatch queue, the retry through the deliveries queue, each
    /// behind whatever was published there before it, and the worker takes
    /// a queue's messages in order: an absence asserted afterwards is not
    /// merely "not yet". It does not pass retries waiting in the delay
    /// tiers: those come when they are due.
    ///
    /// The caller provides the webhook that carries it: one of `tenant`'s
    /// on `receiver` subscribed to [`SENTINEL`] (`*`, or [`sentinel_webhook`]).
    /// Its requests are told apart by [`is_sentinel`].
    pub async fn pass_sentinel(&self, receiver: &Receiver, tenant: Option<&str>) {
        let id = format!("sentinel-{}", hookline_testkit::unique_suffix());
        let mut body = serde_json::json!({"event": SENTINEL, "data": {"sentinel": id}});
        if let Some(tenant) = tenant {
            body["tenant"] = serde_json::json!(tenant);
        }
        self.post_event(&body).await;
        let carrying = |request: &Received| {
            serde_json::from_slice::<Value>(&request.body).is_ok_and(|b| b["data"]["sentinel"] == id.as_str())
        };
        let delivery = eventually(WAIT, || async {
            let first = receiver.requests().into_iter().find(|r| carrying(r));
            first.and_then(|r| r.header("webhook-id").map(str::to_owned)).ok_or("the sentinel has not arrived")
        })
        .await;
        // Its first attempt may be sent before it is recorded; a manual
        // retry is taken once the delivery is recorded delivered.
        eventually(WAIT, || async {
            let detail = self.get(&format!("/v1/deliveries/{delivery}")).await.body;
            if detail["state"] == "delivered" { Ok(()) } else { Err(format!("the sentinel's delivery: {detail}")) }
        })
        .await;
        let retry = self.post(&format!("/v1/deliveries/{delivery}/retry"), &serde_json::json!({})).await;
        assert_eq!(retry.status, 202, "manual retry of the sentinel: {:?}", retry.body);
        eventually(WAIT, || async {
            let arrived = receiver.requests().iter().filter(|r| r.header("webhook-id") == Some(&delivery)).count();
            if arrived >= 2 { Ok(()) } else { Err("the sentinel's manual retry has not arrived") }
        })
        .await;
        tokio::time::sleep(SENTINEL_SLACK).await;
    }

    /// Stops both services and waits for them to exit cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let workers = self.workers.drain(..).map(|(_, task)| task);
        for task in self.tasks.drain(..).chain(workers).collect::<Vec<_>>() {
            task.await.expect("service task does not panic").expect("service exits cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A valid webhook body pointing at `url`, subscribed to `events`.
pub fn webhook(name: &str, url: &str, events: &[&str]) -> Value {
    serde_json::json!({
        "name": name,
        "url": url,
        "token": format!("whsec-{name}-0123456789abcdef"),
        "events": events,
        "active": true,
    })
}

/// A webhook body subscribed to [`SENTINEL`] events only, at `receiver_url`
/// (for [`TestApp::pass_sentinel`]), in `tenant` (the default when `None`).
pub fn sentinel_webhook(receiver_url: &str, tenant: Option<&str>) -> Value {
    let mut body = webhook("sentinel", receiver_url, &[SENTINEL]);
    if let Some(tenant) = tenant {
        body["tenant"] = serde_json::json!(tenant);
    }
    body
}

/// Whether a request carried a sentinel event (see [`TestApp::pass_sentinel`]).
pub fn is_sentinel(request: &Received) -> bool {
    serde_json::from_slice::<Value>(&request.body).is_ok_and(|b| b["event"] == SENTINEL)
}
