//! The operations: everything the producer does, whoever asked. The API
//! (`api`) and the portal (`ui`) parse their input into domain values
//! (`hookline_core` and `hookline_store` types), call one operation with
//! the [`Caller`](crate::auth::Caller), and render what it returns — a
//! value or an [`Error`] — each in its own way (problem+json, a page).
//!
//! Operations scope every read and write with the caller (`Caller::scope`,
//! `tenant_for_write`, `tenant_for_read`, or an [`Admin`](crate::auth::Admin)
//! proof), so a tenant sees another tenant's resources as absent.
//!
//! # Layout
//! - [`webhooks`]: create, list, read, update, delete, resume, rotate the
//!   token, send a test event.
//! - [`recover`]: replay a webhook's failed and suspended deliveries.
//! - [`deliveries`]: the event log, one delivery, retry now.
//! - [`events`]: ingest an event (publish with confirms).
//! - [`tenants`]: the accounts, deleting one, minting tenant tokens.
//! - `destination`: refusing webhook URLs that point inward (SSRF).

pub(crate) mod deliveries;
mod destination;
pub(crate) mod events;
pub(crate) mod recover;
pub(crate) mod tenants;
pub(crate) mod webhooks;

use hookline_core::TenantId;

use crate::{auth::Refused, state::AppState};

/// What an operation can fail with; the API and the portal each say it
/// their own way.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The resource does not exist, or the caller may not see it.
    #[error("{0} not found")]
    NotFound(Resource),
    /// The caller may not do this.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The webhook URL is or resolves to an address deliveries may not go to.
    #[error("url: {0}")]
    Blocked(hookline_core::Blocked),
    /// The tenant has as many webhooks as it may.
    #[error("tenant `{tenant}` already has the maximum of {max} webhooks; delete one first")]
    WebhookLimit {
        /// The tenant.
        tenant: TenantId,
        /// Its limit.
        max: i64,
    },
    /// A delivery of an inactive webhook cannot be retried.
    #[error("the webhook is inactive; activate it before retrying its deliveries")]
    WebhookInactive,
    /// The broker did not take the message (or is away): nothing was done.
    #[error("the event could not be queued; nothing was accepted, try again")]
    BrokerUnavailable,
    /// The database failed; [`hookline_store::Error::is_transient`] says
    /// whether trying again may help.
    #[error(transparent)]
    Store(#[from] hookline_store::Error),
    /// Anything else that should not happen.
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// A webhook.
    Webhook,
    /// A delivery.
    Delivery,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Webhook => "webhook",
            Self::Delivery => "delivery",
        })
    }
}

impl AppState {
    /// The publisher, or [`Error::BrokerUnavailable`] while the broker is down.
    fn publisher_or_unavailable(&self) -> Result<hookline_broker::Publisher> {
        self.publisher().ok_or(Error::BrokerUnavailable)
    }
}

/// Whether the producer can take events: the database answers and the
/// broker is connected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readiness {
    /// The database answered a ping.
    pub(crate) database: bool,
    /// A publisher is connected.
    pub(crate) broker: bool,
}

/// Checks the database and the broker link.
pub(crate) async fn readiness(state: &AppState) -> Readiness {
    Readiness { database: state.store.ping().await.is_ok(), broker: state.publisher().is_some() }
}
