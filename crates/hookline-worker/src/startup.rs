//! Assembling a worker: connect, migrate, declare, consume, drain.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use hookline_broker::{Connection, Publisher, Subscription, Topology, link};
use hookline_store::Store;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{Settings, consume, deliver, dispatch, outbound};

/// What every handler needs, shared by all in-flight tasks.
#[derive(Debug)]
pub struct Context {
    /// The database.
    pub store: Store,
    /// Publishes delivery messages (confirm mode); replaced on reconnect.
    publisher: hookline_broker::link::Current,
    /// The outbound HTTP client.
    pub client: reqwest::Client,
    /// Bytes of response body kept per attempt.
    pub excerpt_limit: usize,
    /// Largest event message dispatched (see [`crate::Settings::max_body_bytes`]).
    pub max_body_bytes: usize,
    /// Delays between attempts.
    pub retry_schedule: hookline_core::RetrySchedule,
    /// Consecutive failures that suspend a webhook.
    pub suspend_after_failures: u32,
    /// The request timeout (for retry reasons).
    pub request_timeout: Duration,
    /// Per-webhook in-flight slots.
    pub in_flight: crate::fairness::InFlight,
    /// Per-account shares of the attempts.
    pub shares: crate::fairness::Shares,
    /// What this worker last saw of each webhook (account, health).
    pub known: crate::known::Known,
    /// Events being dispatched early here.
    pub(crate) underway: crate::early::Underway,
    /// Webhooks whose rate limit this worker found full within a tick.
    pub rate_waiting: crate::rate::Waiting,
    /// Private ranges deliveries may go to anyway.
    pub allowed_networks: hookline_core::AllowList,
    /// What this worker counts (served at `/metrics`).
    pub metrics: crate::metrics::WorkerMetrics,
    /// Group-committed writes of the hot path.
    pub batches: crate::batch::Batches,
    /// First attempts made straight from event messages, at most
    /// `HOOKLINE_WORKER_CONCURRENCY` at once.
    pub attempts: tokio::sync::Semaphore,
    /// Room for event bytes being dispatched, in KiB
    /// ([`crate::dispatch::DISPATCH_BUDGET_KIB`]).
    pub dispatch_budget: tokio::sync::Semaphore,
    /// How long a claim on a delivery (an attempt in progress) and a
    /// dispatch of an event last: the request timeout plus a margin.
    pub lease: time::Duration,
    /// How late messages lately were when taken (reconciliation waits
    /// longer while the queues are backed up).
    pub lateness: crate::reconcile::Lateness,
    /// Cancelled when the worker stops: handlers waiting for the database
    /// give up and hand their message back.
    pub stopping: CancellationToken,
}

/// A fault that may pass (the database restarting, a lost connection, a
/// lost serialization race) or one that will not.
pub(crate) trait Fault: std::fmt::Display {
    /// Whether trying again later may succeed.
    fn is_transient(&self) -> bool;
}

impl Fault for hookline_store::Error {
    fn is_transient(&self) -> bool {
        hookline_store::Error::is_transient(self)
    }
}

impl Fault for crate::batch::BatchError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => e.is_transient(),
            Self::Stopped(_) => false,
        }
    }
}

/// The first and the longest wait between tries of a store operation.
const STORE_WAIT: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

impl Context {
    /// The current publisher.
    pub fn publisher(&self) -> Publisher {
        self.publisher.last().expect("build sets a publisher; reconnects only replace it")
    }

    /// Runs a store operation until it succeeds. A transient fault is
    /// waited out with backoff while the message stays unacked and its
    /// handler keeps its slot, so a worker whose database is down stops
    /// taking messages instead of spinning them through redeliveries. A
    /// permanent fault parks the message (`Reject`); stopping hands it back
    /// once (`Requeue`).
    pub(crate) async fn stored<T, E: Fault, Fut: std::future::Future<Output = Result<T, E>>>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Fut,
    ) -> Result<T, consume::Settle> {
        let mut wait = STORE_WAIT.0;
        loop {
            let e = match op().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if !e.is_transient() {
                tracing::error!(error.message = %e, "{what} failed and cannot succeed; parking the message");
                return Err(consume::Settle::Reject);
            }
            self.metrics.store_waits.inc(&[]);
            tracing::warn!(error.message = %e, wait_ms = wait.as_millis(), "{what} failed; waiting for the database");
            tokio::select! {
                () = self.stopping.cancelled() => return Err(consume::Settle::Requeue),
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(STORE_WAIT.1);
        }
    }

    /// Parks a message that can never be processed, with its reason, in
    /// `<ns>.parked` (then acks it); if that publish fails, rejects it, and
    /// the queue dead-letters it there without the reason.
    pub(crate) async fn park(&self, message: &hookline_broker::Message, reason: &str) -> consume::Settle {
        tracing::warn!(reason, routing_key = %message.routing_key, "parking a message that can never be processed");
        match self.publisher().park(message, reason).await {
            Ok(()) => consume::Settle::Ack,
            Err(e) => {
                tracing::warn!(error.message = %e, "parking with a reason failed; rejecting instead");
                consume::Settle::Reject
            }
        }
    }

    /// Marks an event dispatched (group-committed), waiting out transient
    /// faults as [`Context::stored`] does.
    pub(crate) async fn mark_dispatched(&self, event: &hookline_store::EventKey) -> Result<(), consume::Settle> {
        self.stored("marking an event dispatched", || self.batches.dispatched.submit(event.clone())).await
    }

    /// Publishes one delivery message per step to the deliveries queue,
    /// each fenced by its due time, and waits for the broker's confirms.
    pub(crate) async fn publish_steps(&self, steps: &[hookline_store::Due]) -> Result<(), hookline_broker::Error> {
        if steps.is_empty() {
            return Ok(());
        }
        let messages: Vec<hookline_broker::DeliveryMessage> = steps.iter().map(step_message).collect();
        self.publish_messages(&messages).await
    }

    /// Publishes delivery messages whose steps are committed.
    pub(crate) async fn publish_messages(
        &self,
        messages: &[hookline_broker::DeliveryMessage],
    ) -> Result<(), hookline_broker::Error> {
        if messages.is_empty() {
            return Ok(());
        }
        self.publisher().publish_deliveries(messages).await
    }

    /// A publish whose step is already committed failed: the step's due
    /// time is in Postgres, so reconciliation publishes it again; nothing
    /// waits here.
    pub(crate) fn publish_failed(&self, what: &str, error: &hookline_broker::Error) {
        self.metrics.publish_failures.inc(&[]);
        tracing::warn!(error.message = %error, "{what} failed; reconciliation will publish it again");
    }
}

/// The delivery message for a step: due at its time, fenced by it.
pub(crate) fn step_message(step: &hookline_store::Due) -> hookline_broker::DeliveryMessage {
    hookline_broker::DeliveryMessage::due(
        step.id.as_uuid(),
        step.webhook_id.as_uuid(),
        hookline_core::fence::unix_ms(step.at),
        step.trigger,
    )
}

/// Start-up failed; the message says which step.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Postgres could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] hookline_store::Error),
    /// The outbound HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    /// RabbitMQ could not be reached, or the topology not declared.
    #[error(transparent)]
    Broker(#[from] hookline_broker::Error),
    /// The health address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A connected worker, not yet consuming.
#[derive(Debug)]
pub struct Worker {
    settings: Settings,
    ctx: Arc<Context>,
    connection: Connection,
    topology: Topology,
    listener: TcpListener,
}

/// Connects to Postgres (creating and migrating the schema) and RabbitMQ
/// (declaring the topology), and binds the health endpoint.
pub async fn build(settings: &Settings) -> Result<Worker, StartupError> {
    let store = Store::connect_at_start(&settings.pg).await?;
    let connection = link::connect_at_start(&settings.amqp, "hookline-worker").await?;
    let topology = Topology::from_settings(&settings.amqp);
    let publisher = link::open_publisher(&connection, &topology).await?;
    let current = hookline_broker::link::Current::default();
    current.set(Some(publisher));
    let client = outbound::client(settings)?;
    let listener = TcpListener::bind(settings.listen_addr)
        .await
        .map_err(|source| StartupError::Bind { addr: settings.listen_addr, source })?;
    let ctx = Arc::new(Context {
        store: store.clone(),
        publisher: current,
        client,
        excerpt_limit: settings.response_excerpt_bytes,
        max_body_bytes: settings.max_body_bytes,
        retry_schedule: settings.retry_schedule.clone(),
        suspend_after_failures: settings.suspend_after_failures,
        request_timeout: settings.request_timeout,
        in_flight: crate::fairness::InFlight::new(settings.max_in_flight_per_webhook),
        shares: crate::fairness::Shares::new(settings.tenant_share()),
        known: crate::known::Known::default(),
        underway: crate::early::Underway::default(),
        rate_waiting: crate::rate::Waiting::new(settings.rate_tick),
        allowed_networks: settings.allowed_networks.clone(),
        metrics: crate::metrics::WorkerMetrics::default(),
        batches: crate::batch::Batches::spawn(&store, crate::dispatch::dispatch_lease(settings.request_timeout)),
        attempts: tokio::sync::Semaphore::new(settings.concurrency),
        lease: crate::dispatch::dispatch_lease(settings.request_timeout),
        stopping: CancellationToken::new(),
        lateness: crate::reconcile::Lateness::default(),
        dispatch_budget: tokio::sync::Semaphore::new(crate::dispatch::DISPATCH_BUDGET_KIB),
    });
    Ok(Worker { settings: settings.clone(), ctx, connection, topology, listener })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(
    State(ctx): State<Arc<Context>>,
    headers: axum::http::HeaderMap,
) -> ([(axum::http::header::HeaderName, &'static str); 1], String) {
    use hookline_telemetry::metrics::Format;
    let format = Format::negotiate(headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()));
    ([(axum::http::header::CONTENT_TYPE, format.content_type())], ctx.metrics.registry.render(format))
}

async fn readyz(State(ctx): State<Arc<Context>>) -> StatusCode {
    if ctx.store.ping().await.is_ok() && ctx.publisher().is_connected() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

impl Worker {
    /// The bound address of the health endpoint.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound TCP listener has a local address")
    }

    /// The shared handler context (tests drive handlers through it).
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Consumes until `shutdown` is cancelled, then stops taking messages,
    /// waits up to the drain timeout for in-flight ones, and closes the
    /// connection (which hands anything unfinished back to the broker).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, ctx, mut connection, topology, listener } = self;
        let health = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(ctx.clone());
        let health_stop = shutdown.clone();
        let health_task = tokio::spawn(async move {
            axum::serve(listener, health).with_graceful_shutdown(health_stop.cancelled_owned()).await
        });

        let stopping = ctx.stopping.clone();
        let stop_watch = shutdown.clone();
        tokio::spawn(async move {
            stop_watch.cancelled().await;
            stopping.cancel();
        });
        let reconciler = tokio::spawn(crate::reconcile::run(
            ctx.clone(),
            crate::reconcile::Every { interval: settings.reconcile_interval, grace: settings.reconcile_grace },
            shutdown.clone(),
        ));
        let prober =
            tokio::spawn(crate::recovery::run(ctx.clone(), crate::recovery::Probing::of(&settings), shutdown.clone()));
        let relay = tokio::spawn(crate::operational::run(
            ctx.clone(),
            crate::operational::Pace { poll: settings.operational_poll, settle: settings.operational_settle },
            shutdown.clone(),
        ));
        let retention = tokio::spawn(crate::retention::run(ctx.clone(), settings.retention, shutdown.clone()));
        // In-flight work outlives a lost connection (its acks then fail and
        // the broker redelivers); the tracker spans every session, and the
        // rate pump's attempts.
        let tracker = TaskTracker::new();
        let rate_pump =
            tokio::spawn(crate::rate::run(ctx.clone(), settings.rate_tick, tracker.clone(), shutdown.clone()));
        loop {
            if let Err(e) = consume_session(&settings, &ctx, &connection, &topology, &tracker, &shutdown).await {
                tracing::warn!(error.message = %e, "consuming failed");
            }
            if shutdown.is_cancelled() {
                break;
            }
            tracing::warn!("broker connection lost; reconnecting");
            link::close(&connection, "reconnecting").await;
            let Some((fresh, publisher)) =
                link::reconnect(&settings.amqp, "hookline-worker", &topology, &shutdown).await
            else {
                break;
            };
            connection = fresh;
            ctx.publisher.set(Some(publisher));
        }

        let _ = reconciler.await;
        let _ = prober.await;
        let _ = relay.await;
        let _ = retention.await;
        let _ = rate_pump.await;
        tracker.close();
        if tokio::time::timeout(settings.drain_timeout, tracker.wait()).await.is_err() {
            tracing::warn!(drain_timeout = ?settings.drain_timeout, "in-flight deliveries did not finish; handing them back");
        }
        // A broker that does not answer (blocked, or gone) does not hold
        // the exit: whatever was not acked is redelivered either way.
        let _ = tokio::time::timeout(CLOSE_WAIT, ctx.publisher().close()).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, link::close(&connection, "worker stopping")).await;
        let _ = health_task.await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// How long a stopping worker waits for the broker to confirm a close.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// What a queue's messages are.
#[derive(Clone, Copy, Debug)]
enum Work {
    Dispatch,
    Deliver,
}

/// Consumes the three work queues on `connection` until `shutdown` is
/// cancelled or the connection is lost, then cancels the consumers so the
/// broker stops handing over messages.
async fn consume_session(
    settings: &Settings,
    ctx: &Arc<Context>,
    connection: &Connection,
    topology: &Topology,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), hookline_broker::Error> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    // Due retries have their own queue and slots, so first attempts never
    // wait behind a mass of retries.
    let queues = [
        (Work::Dispatch, topology.dispatch_queue(), format!("dispatch-{suffix}"), settings.dispatch_concurrency),
        (Work::Deliver, topology.deliveries_queue(), format!("deliver-{suffix}"), settings.concurrency),
        (Work::Deliver, topology.retries_queue(), format!("retry-{suffix}"), settings.concurrency),
    ];
    let session = shutdown.child_token();
    let mut loops = Vec::new();
    for (work, queue, tag, limit) in queues {
        let prefetch = u16::try_from(limit).unwrap_or(u16::MAX);
        let subscription = Subscription::open(connection, &queue, &tag, prefetch).await?;
        let ctx = ctx.clone();
        let handler = move |m| {
            let ctx = ctx.clone();
            async move {
                match work {
                    Work::Dispatch => dispatch::handle(&ctx, m).await,
                    Work::Deliver => deliver::handle(&ctx, m).await,
                }
            }
        };
        let session = session.clone();
        let tracker = tracker.clone();
        loops.push(async move {
            let subscription = consume::run(subscription, limit, tracker, session.clone(), handler).await;
            // One loop ending (the connection was lost) ends the session.
            session.cancel();
            subscription
        });
    }
    tracing::info!(namespace = topology.namespace(), concurrency = settings.concurrency, "worker consuming");
    for subscription in futures_util::future::join_all(loops).await {
        subscription.cancel().await;
    }
    Ok(())
}

/// `build` then `run_until_stopped`.
pub async fn run(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    build(settings).await?.run_until_stopped(shutdown).await
}
