//! Assembling the producer: connect, migrate, declare, bind, serve.

use std::{net::SocketAddr, sync::Arc};

use hookline_broker::{AmqpSettings, Topology, lapin::Connection, link};
use hookline_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use hookline_core::TokenSecret;

use crate::{
    Settings,
    auth::{ApiKeys, Auth, derived_token_secret},
    settings::Secret,
    state::AppState,
    web::Limits,
};

/// Start-up failed; the message says which step.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Store(#[from] hookline_store::Error),
    /// The broker could not be reached or the topology declared.
    #[error(transparent)]
    Broker(#[from] hookline_broker::Error),
    /// No API key is configured and the address is not loopback: refusing
    /// to serve an open API.
    #[error(
        "HOOKLINE_API_KEYS is not set and {0} is not a loopback address: refusing to start an open API (set HOOKLINE_API_KEYS)"
    )]
    NoApiKeys(SocketAddr),
    /// No encryption key is configured and the API is not on loopback.
    #[error(
        "HOOKLINE_ENCRYPTION_KEYS is not set and {0} is not a loopback address: refusing to keep webhook tokens under the public development key (set HOOKLINE_ENCRYPTION_KEYS)"
    )]
    NoEncryptionKey(SocketAddr),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The API keys and tenant-token secret. Without configured keys (allowed
/// only on loopback) a key is generated and printed once.
fn auth(settings: &Settings) -> Result<Auth, StartupError> {
    let mut keys = settings.api_keys.clone();
    if keys.is_empty() {
        if !settings.listen_addr.ip().is_loopback() {
            return Err(StartupError::NoApiKeys(settings.listen_addr));
        }
        let key = format!("hk_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        tracing::warn!("HOOKLINE_API_KEYS is not set; generated an API key for this run (printed on standard error)");
        eprintln!("\nhookline: no HOOKLINE_API_KEYS set; for this run the API key is:\n\n    {key}\n");
        keys.push(Secret::new(key));
    }
    let tokens = match &settings.tenant_token_secret {
        Some(secret) => TokenSecret::new(secret.expose().as_bytes().to_vec()).expect("settings validated its length"),
        None => derived_token_secret(&keys),
    };
    Ok(Auth { keys: ApiKeys::new(&keys), tokens })
}

/// A producer that is connected and bound, not yet serving.
#[derive(Debug)]
pub struct Producer {
    listener: TcpListener,
    state: AppState,
    connection: Connection,
    amqp: AmqpSettings,
    topology: Topology,
    limits: Limits,
}

/// Connects to Postgres (creating and migrating the schema) and RabbitMQ
/// (declaring the topology), and binds the listener.
pub async fn build(settings: &Settings) -> Result<Producer, StartupError> {
    let auth = auth(settings)?;
    if settings.pg.encryption_keys.is_development() && !settings.listen_addr.ip().is_loopback() {
        return Err(StartupError::NoEncryptionKey(settings.listen_addr));
    }
    let store = Store::connect_at_start(&settings.pg).await?;
    let connection = link::connect_at_start(&settings.amqp, "hookline-producer").await?;
    let topology = Topology::from_settings(&settings.amqp);
    let publisher = link::open_publisher(&connection, &topology).await?;
    let broker = Arc::new(link::Current::default());
    broker.set(Some(publisher));
    let listener = TcpListener::bind(settings.listen_addr)
        .await
        .map_err(|source| StartupError::Bind { addr: settings.listen_addr, source })?;
    Ok(Producer {
        listener,
        amqp: settings.amqp.clone(),
        topology,
        state: AppState {
            store,
            broker,
            auth,
            max_webhooks_per_tenant: settings.max_webhooks_per_tenant,
            recover_rate_per_sec: settings.recover_rate_per_sec,
            allowed_networks: settings.allowed_networks.clone(),
            metrics: crate::metrics::ProducerMetrics::default(),
            grafana_trace_url: settings.grafana_trace_url.clone(),
        },
        connection,
        limits: Limits { max_body_bytes: settings.max_body_bytes, timeout: settings.api_timeout },
    })
}

impl Producer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound TCP listener has a local address")
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests
    /// and closes the broker connection.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let addr = self.local_addr();
        let supervisor = tokio::spawn(supervise_broker(
            self.state.broker.clone(),
            self.connection,
            self.amqp,
            self.topology,
            shutdown.clone(),
        ));
        let app = app(self.state, self.limits);
        tracing::info!(%addr, "producer listening");
        let result = axum::serve(self.listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        let _ = supervisor.await;
        tracing::info!("producer stopped");
        result
    }
}

/// The whole HTTP surface: the API, the portal and `/metrics`, behind the
/// layers every request passes (`web`).
fn app(state: AppState, limits: Limits) -> axum::Router {
    let state = Arc::new(state);
    let routes = axum::Router::new()
        .merge(crate::api::router(&state))
        .merge(crate::ui::router())
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .fallback(|| async { crate::ApiError::not_found("route") });
    crate::web::layered(routes, state, limits)
}

/// Keeps the broker link up: when the connection is lost, the link is
/// emptied (ingestion answers 503, `/readyz` says not ready) and the
/// connection is re-established with backoff, the topology re-declared and
/// the link filled again. Closes the connection on shutdown.
async fn supervise_broker(
    current: Arc<link::Current>,
    mut connection: Connection,
    amqp: AmqpSettings,
    topology: Topology,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = link::lost(&connection) => {}
        }
        current.set(None);
        tracing::warn!("broker connection lost; reconnecting");
        let Some((fresh, publisher)) = link::reconnect(&amqp, "hookline-producer", &topology, &shutdown).await else {
            return;
        };
        connection = fresh;
        current.set(Some(publisher));
    }
    if let Some(publisher) = current.get() {
        let _ = publisher.close().await;
    }
    current.set(None);
    let _ = connection.close(200, "producer stopping".into()).await;
}

/// `build` then `run_until_stopped`.
pub async fn run(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let producer = build(settings).await?;
    producer.run_until_stopped(shutdown).await?;
    Ok(())
}
