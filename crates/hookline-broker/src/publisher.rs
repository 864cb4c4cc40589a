//! Publishing with publisher confirms.
//!
//! Every publish is `mandatory` (an unroutable message comes back instead of
//! vanishing) and persistent, and is awaited until the broker confirms it:
//! a caller that gets `Ok` knows the message is safely queued.

use futures_util::future::try_join_all;
use hookline_core::{DeliveryId, WebhookId};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, PublisherConfirm,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};

use crate::{DeliveryMessage, Error, EventMessage, Result, Topology, topology::tier_for};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// A confirm-mode channel and the topology it publishes into. Cheap to clone;
/// clones share the channel.
#[derive(Clone, Debug)]
pub struct Publisher {
    channel: Channel,
    topology: Topology,
}

fn check(confirmation: Confirmation) -> Result<()> {
    if confirmation.is_nack() {
        return Err(Error::Nacked);
    }
    if let Some(returned) = confirmation.take_message() {
        return Err(Error::Unroutable(format!(
            "{} {} (exchange `{}`, routing key `{}`)",
            returned.reply_code, returned.reply_text, returned.delivery.exchange, returned.delivery.routing_key
        )));
    }
    Ok(())
}

impl Publisher {
    /// Opens a channel in confirm mode on `connection`.
    pub async fn open(connection: &Connection, topology: Topology) -> Result<Self> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { channel, topology })
    }

    /// Declares the topology on this publisher's channel (idempotent).
    pub async fn declare_topology(&self) -> Result<()> {
        self.topology.declare(&self.channel).await
    }

    /// Closes the channel (before closing the connection, so the broker sees
    /// an orderly shutdown).
    pub async fn close(&self) -> Result<()> {
        Ok(self.channel.close(200, "closing".into()).await?)
    }

    /// The topology this publisher targets.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether the channel is usable.
    pub fn is_connected(&self) -> bool {
        self.channel.status().connected()
    }

    async fn send(
        &self,
        exchange: String,
        routing_key: String,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<PublisherConfirm> {
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let props = props.with_delivery_mode(PERSISTENT).with_content_type("application/json".into());
        Ok(self.channel.basic_publish(exchange.into(), routing_key.into(), options, body, props).await?)
    }

    /// Publishes an event to the events exchange with its type as routing key
    /// and waits for the broker's confirm.
    pub async fn publish_event(&self, message: &EventMessage) -> Result<()> {
        let mut props = BasicProperties::default();
        if let Some(id) = &message.id {
            props = props.with_message_id(id.clone().into());
        }
        let confirm =
            self.send(self.topology.events_exchange(), message.event.clone(), &message.encode(), props).await?;
        check(confirm.await?)
    }

    /// Publishes one delivery message per id to the deliveries queue and waits
    /// until the broker has confirmed all of them.
    pub async fn publish_deliveries(&self, ids: &[(DeliveryId, WebhookId)]) -> Result<()> {
        let queue = self.topology.deliveries_queue();
        let mut confirms = Vec::with_capacity(ids.len());
        for (id, webhook) in ids {
            let body = DeliveryMessage::first(id.as_uuid(), webhook.as_uuid()).encode();
            // The default exchange routes by queue name.
            confirms.push(self.send(String::new(), queue.clone(), &body, BasicProperties::default()).await?);
        }
        for confirmation in try_join_all(confirms).await? {
            check(confirmation)?;
        }
        Ok(())
    }
}

impl Publisher {
    /// Publishes a delivery message to be attempted now (a manual retry):
    /// straight to the deliveries queue.
    pub async fn publish_now(&self, message: &DeliveryMessage) -> Result<()> {
        let queue = self.topology.deliveries_queue();
        check(self.send(String::new(), queue, &message.encode(), BasicProperties::default()).await?.await?)
    }

    /// Publishes a delivery message that must wait until its
    /// `not_before_ms`: into the delay tier that fits the time left at
    /// `now_ms`, or to the retries queue when it is due.
    pub async fn schedule(&self, message: &DeliveryMessage, now_ms: i64) -> Result<()> {
        let remaining = message.not_before_ms().map_or(0, |due| due.saturating_sub(now_ms));
        let queue = match tier_for(remaining) {
            Some(tier) => self.topology.tier_queue(tier),
            None => self.topology.retries_queue(),
        };
        check(self.send(String::new(), queue, &message.encode(), BasicProperties::default()).await?.await?)
    }
}
