//! Assembling a worker: connect, migrate, declare, consume, drain.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use backon::{ExponentialBuilder, Retryable};
use hookline_broker::{
    Publisher, Topology,
    lapin::{Connection, options::BasicCancelOptions},
};
use hookline_store::Store;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{Settings, consume, deliver, dispatch, http};

/// What every handler needs, shared by all in-flight tasks.
#[derive(Debug)]
pub struct Context {
    /// The database.
    pub store: Store,
    /// Publishes delivery messages (confirm mode).
    pub publisher: Publisher,
    /// The outbound HTTP client.
    pub client: reqwest::Client,
    /// Bytes of response body kept per attempt.
    pub excerpt_limit: usize,
    /// Delays between attempts.
    pub retry_schedule: hookline_core::RetrySchedule,
    /// Consecutive failures that suspend a webhook.
    pub suspend_after_failures: u32,
    /// The request timeout (for retry reasons).
    pub request_timeout: Duration,
}

impl Context {
    /// Logs an infrastructure fault and hands the message back. The short
    /// pause keeps a worker whose database is down from spinning through
    /// redeliveries.
    pub(crate) async fn infrastructure_fault(
        &self,
        what: &str,
        error: &(dyn std::error::Error + Send + Sync),
    ) -> consume::Settle {
        tracing::error!(error.message = %error, "{what} failed; requeueing");
        tokio::time::sleep(Duration::from_millis(500)).await;
        consume::Settle::Requeue
    }
}

/// Start-up failed; the message says which step.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] hookline_store::Error),
    /// The broker could not be reached or the topology declared.
    #[error(transparent)]
    Broker(#[from] hookline_broker::Error),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    /// The health address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(10)
        .with_jitter()
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
    let store = (|| Store::connect(&settings.pg))
        .retry(startup_backoff())
        .when(hookline_store::Error::is_transient)
        .notify(|e, d| tracing::warn!(error.message = %e, retry_in = ?d, "database not ready"))
        .await?;
    let connection = (|| hookline_broker::connect(&settings.amqp, "hookline-worker"))
        .retry(startup_backoff())
        .when(hookline_broker::Error::is_transient)
        .notify(|e, d| tracing::warn!(error.message = %e, retry_in = ?d, "broker not ready"))
        .await?;
    let topology = Topology::from_settings(&settings.amqp);
    let publisher = Publisher::open(&connection, topology.clone()).await?;
    publisher.declare_topology().await?;
    let client = http::client(settings)?;
    let listener = TcpListener::bind(settings.listen_addr)
        .await
        .map_err(|source| StartupError::Bind { addr: settings.listen_addr, source })?;
    let ctx = Arc::new(Context {
        store,
        publisher,
        client,
        excerpt_limit: settings.response_excerpt_bytes,
        retry_schedule: settings.retry_schedule.clone(),
        suspend_after_failures: settings.suspend_after_failures,
        request_timeout: settings.request_timeout,
    });
    Ok(Worker { settings: settings.clone(), ctx, connection, topology, listener })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(ctx): State<Arc<Context>>) -> StatusCode {
    if ctx.store.ping().await.is_ok() && ctx.publisher.is_connected() {
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
        let Self { settings, ctx, connection, topology, listener } = self;
        let health =
            Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(ctx.clone());
        let health_stop = shutdown.clone();
        let health_task = tokio::spawn(async move {
            axum::serve(listener, health).with_graceful_shutdown(health_stop.cancelled_owned()).await
        });

        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let dispatch_channel = connection.create_channel().await?;
        let delivery_channel = connection.create_channel().await?;
        let retry_channel = connection.create_channel().await?;
        let dispatch_tag = format!("dispatch-{suffix}");
        let delivery_tag = format!("deliver-{suffix}");
        let retry_tag = format!("retry-{suffix}");
        let dispatch_consumer = hookline_broker::consumer::consume(
            &dispatch_channel,
            &topology.dispatch_queue(),
            &dispatch_tag,
            u16::try_from(settings.dispatch_concurrency).unwrap_or(u16::MAX),
        )
        .await?;
        let delivery_consumer = hookline_broker::consumer::consume(
            &delivery_channel,
            &topology.deliveries_queue(),
            &delivery_tag,
            u16::try_from(settings.concurrency).unwrap_or(u16::MAX),
        )
        .await?;
        // Due retries have their own queue and slots, so first attempts never
        // wait behind a mass of retries.
        let retry_consumer = hookline_broker::consumer::consume(
            &retry_channel,
            &topology.retries_queue(),
            &retry_tag,
            u16::try_from(settings.concurrency).unwrap_or(u16::MAX),
        )
        .await?;
        tracing::info!(namespace = topology.namespace(), concurrency = settings.concurrency, "worker consuming");

        // Either loop ending on its own (connection lost) stops the worker:
        // a supervisor restarts it, and the broker redelivers what it held.
        let stop = shutdown.child_token();
        let tracker = TaskTracker::new();
        let dispatch_ctx = ctx.clone();
        let dispatch_loop = async {
            let handler = move |m| {
                let ctx = dispatch_ctx.clone();
                async move { dispatch::handle(&ctx, m).await }
            };
            consume::run(dispatch_consumer, settings.dispatch_concurrency, tracker.clone(), stop.clone(), handler)
                .await;
            stop.cancel();
        };
        let deliver_ctx = ctx.clone();
        let delivery_loop = async {
            let handler = move |m| {
                let ctx = deliver_ctx.clone();
                async move { deliver::handle(&ctx, m).await }
            };
            consume::run(delivery_consumer, settings.concurrency, tracker.clone(), stop.clone(), handler).await;
            stop.cancel();
        };
        let retry_ctx = ctx.clone();
        let retry_loop = async {
            let handler = move |m| {
                let ctx = retry_ctx.clone();
                async move { deliver::handle(&ctx, m).await }
            };
            consume::run(retry_consumer, settings.concurrency, tracker.clone(), stop.clone(), handler).await;
            stop.cancel();
        };
        tokio::join!(dispatch_loop, delivery_loop, retry_loop);
        let requested = shutdown.is_cancelled();

        // Stop the broker from handing over more, then drain.
        for (channel, tag) in
            [(&dispatch_channel, &dispatch_tag), (&delivery_channel, &delivery_tag), (&retry_channel, &retry_tag)]
        {
            let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
        }
        tracker.close();
        if tokio::time::timeout(settings.drain_timeout, tracker.wait()).await.is_err() {
            tracing::warn!(drain_timeout = ?settings.drain_timeout, "in-flight deliveries did not finish; handing them back");
        }
        let _ = connection.close(200, "worker stopping".into()).await;
        shutdown.cancel();
        let _ = health_task.await;
        tracing::info!("worker stopped");
        if requested { Ok(()) } else { anyhow::bail!("the broker connection was lost") }
    }
}

/// `build` then `run_until_stopped`.
pub async fn run(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    build(settings).await?.run_until_stopped(shutdown).await
}
