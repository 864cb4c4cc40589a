//! Postgres, the system of record: webhooks, events, deliveries, attempts.
//!
//! The store knows nothing of RabbitMQ or HTTP. It maps rows to the validated
//! types of `hookline-core` (rebuilding them with their `parse` constructors,
//! so a corrupt row is an error rather than a bad value) and keeps every
//! multi-row change in one transaction.
//!
//! # Layout
//! - [`settings`]: [`PgSettings`], from which the pool is built.
//! - [`migrate`]: creates the database if missing and runs the numbered
//!   migrations under an advisory lock (producer and worker both migrate).
//! - [`webhook`]: webhook CRUD; `headers`: extra headers as stored (secret
//!   values sealed).
//! - [`fanout`]: who an event goes to: the active webhooks of a batch's
//!   tenants, read once, matched per event.
//! - [`event`]: recording events with their deliveries before they are
//!   attempted (the careful path, in group commits), redeliveries, and
//!   dispatched marks.
//! - [`delivery`]: a delivery as an attempt needs it, and the event log.
//! - [`attempt`]: recording attempts (successes in batches, a failure with
//!   its health decision).
//! - [`schedule`]: a delivery's next step as the record: claiming it for an
//!   attempt (fenced), holding, postponing, handing it off.
//! - [`probe`]: an unhealthy webhook's one request in flight, and the
//!   deliveries parked until its outcome.
//! - [`rate`]: the per-webhook rate limit shared by every worker (core::rate's
//!   rule as one statement).
//! - [`overdue`]: what reconciliation publishes again, and `recover`'s
//!   replays.
//! - [`recovery`]: recovery probes of suspended webhooks: due ones claimed
//!   under a lease, a probe recorded with the resume (and replay) or the
//!   next due time it brings.
//! - [`early`]: a fresh event's fast path: who it goes to, read before
//!   anything is written, then the event, deliveries and successful first
//!   attempts in one commit.
//! - [`health_change`]: webhooks' health changes as a trigger records them,
//!   claimed and marked by the workers' relays (operational events).
//! - [`retention`]: events past the retention window removed in paced
//!   batches, with their deliveries and attempts; one run at a time.
//! - [`stats`]: counts for the portal's charts (a webhook's attempts per
//!   hour over the last day), read through the indexes above.
//! - [`tenant`]: per-tenant summaries and deleting a tenant's data.
//! - [`secret`]: signing tokens sealed at rest (AES-256-GCM), key rotation.
//! - [`error`]: the crate's [`Error`], with [`Error::is_transient`].

pub mod attempt;
pub mod delivery;
pub mod early;
pub mod error;
pub mod event;
pub mod fanout;
mod headers;
pub mod health_change;
pub mod migrate;
pub mod overdue;
pub mod probe;
pub mod rate;
pub mod recovery;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod settings;
pub mod stats;
pub mod tenant;
pub mod webhook;

pub use attempt::{Decided, Facts, NewAttempt, RecordedFailure};
pub use delivery::{Attempt, Delivery, DeliveryFilter, DeliveryJob, RecoverWindow};
pub use early::{Delivered, Looked, goes_early};
pub use error::{Error, Result};
pub use event::{Dispatch, EventKey, NewEvent, RecordedEvent};
pub use fanout::FreshDelivery;
pub use health_change::{Announced, ChangeKind, ClaimedChange, HealthChange};
pub use overdue::Replay;
pub use probe::{Parked, Probe};
pub use recovery::{ProbeMade, ProbeRecorded, ProbeTarget, ReplayPace};
pub use retention::{DROP_LOCK_TIMEOUT, Dropped, Removed, RetentionRun};
pub use schedule::{Claim, Due};
pub use secret::{EncryptionKeys, InvalidEncryptionKeys};
pub use settings::PgSettings;
pub use stats::{HourCount, HourlyAttempts};
pub use tenant::{TenantDeletion, TenantSummary};
pub use webhook::{Created, NewWebhook, Webhook, WebhookPatch};

use deadpool_postgres::Pool;

/// A handle on the database: a connection pool plus the queries.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Seal and open signing tokens; rows never hold them in plaintext.
    keys: std::sync::Arc<EncryptionKeys>,
}

impl Store {
    /// [`Store::connect`] at a service's start-up: a transient failure
    /// (Postgres is starting alongside the service) is retried with backoff,
    /// up to ten times over about half a minute; a permanent one fails at
    /// once.
    pub async fn connect_at_start(settings: &PgSettings) -> Result<Self> {
        use backon::{ExponentialBuilder, Retryable};
        let backoff = ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_millis(200))
            .with_max_delay(std::time::Duration::from_secs(5))
            .with_max_times(10)
            .with_jitter();
        (|| Self::connect(settings))
            .retry(backoff)
            .when(Error::is_transient)
            .notify(|e, d| tracing::warn!(error.message = %e, retry_in = ?d, "database not ready"))
            .await
    }

    /// Creates the database if it is missing, runs the migrations and returns
    /// a store over a fresh pool.
    pub async fn connect(settings: &PgSettings) -> Result<Self> {
        migrate::ensure_database(settings).await?;
        migrate::run(settings).await?;
        let store = Self { pool: settings.pool()?, keys: std::sync::Arc::new(settings.encryption_keys.clone()) };
        if settings.encryption_keys.is_development() {
            tracing::warn!(
                "HOOKLINE_ENCRYPTION_KEYS is not set: webhook tokens are sealed with the public development key"
            );
        }
        store.reencrypt_tokens().await?;
        Ok(store)
    }

    /// A store over an existing pool (the schema must already be migrated).
    pub fn from_pool(pool: Pool, keys: EncryptionKeys) -> Self {
        Self { pool, keys: std::sync::Arc::new(keys) }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<()> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
