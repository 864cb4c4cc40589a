//! Deliveries: the event log, one delivery with every attempt, and "retry
//! now".

use hookline_broker::DeliveryMessage;
use hookline_core::DeliveryId;
use hookline_store::{Attempt, Delivery, DeliveryFilter};

use super::{Error, Resource, Result};
use crate::{auth::Caller, state::AppState};

/// One page of the deliveries `caller` sees that match `filter` (its
/// `tenant` is the one asked for), newest first, older than `before`.
pub(crate) async fn list(
    state: &AppState,
    caller: &Caller,
    mut filter: DeliveryFilter,
    before: Option<DeliveryId>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    filter.tenant = caller.tenant_for_read(filter.tenant.take())?;
    Ok(state.store.list_deliveries(&filter, before, limit).await?)
}

/// A delivery with its payload and attempts.
#[derive(Debug)]
pub(crate) struct Detail {
    pub(crate) delivery: Delivery,
    /// The exact body that was (or will be) POSTed.
    pub(crate) body: Vec<u8>,
    pub(crate) attempts: Vec<Attempt>,
}

/// One delivery `caller` sees.
pub(crate) async fn get(state: &AppState, caller: &Caller, id: DeliveryId) -> Result<Detail> {
    let (delivery, body, attempts) =
        state.store.get_delivery(id, caller.scope()).await?.ok_or(Error::NotFound(Resource::Delivery))?;
    Ok(Detail { delivery, body, attempts })
}

/// Queues one attempt of a delivery of `caller`'s now, whatever the
/// webhook's health (a success makes it healthy).
pub(crate) async fn retry(state: &AppState, caller: &Caller, id: DeliveryId) -> Result<()> {
    let Detail { delivery, .. } = get(state, caller, id).await?;
    let webhook = state
        .store
        .get_webhook(delivery.webhook_id, caller.scope())
        .await?
        .ok_or(Error::NotFound(Resource::Delivery))?;
    if !webhook.active {
        return Err(Error::WebhookInactive);
    }
    // Fenced by the attempts made so far: one attempt, even if the message
    // is delivered twice, and none if another attempt got there first.
    let message = DeliveryMessage::manual(id.as_uuid(), webhook.id.as_uuid(), delivery.attempt_count);
    if let Err(e) = state.publisher_or_unavailable()?.publish_now(&message).await {
        tracing::error!(error.message = %e, "publishing a manual retry failed");
        return Err(Error::BrokerUnavailable);
    }
    Ok(())
}
