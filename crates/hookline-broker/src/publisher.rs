//! Publishing with publisher confirms.
//!
//! Every publish is `mandatory` (an unroutable message comes back instead of
//! vanishing) and persistent, and is awaited until the broker confirms it:
//! a caller that gets `Ok` knows the message is safely queued. Every publish
//! carries the current trace context in its headers ([`crate::trace`]).

use futures_util::future::try_join_all;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, PublisherConfirm,
    options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use crate::{DeliveryMessage, Error, EventMessage, Result, Topology, topology::tier_for};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// Header of an event published by the producer: when it was accepted, in
/// Unix milliseconds (the start of its ingest → delivery latency).
pub const INGESTED_AT_HEADER: &str = "x-hookline-ingested-ms";

/// A confirm-mode channel and the topology it publishes into. Cheap to clone;
/// clones share the channel.
#[derive(Clone, Debug)]
pub struct Publisher {
    channel: Channel,
    /// A second channel for passive queue declarations (queue depths): a
    /// failed one closes its channel, which must not be the publishing one.
    inspect: Channel,
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
        let inspect = connection.create_channel().await?;
        Ok(Self { channel, inspect, topology })
    }

    /// Declares the topology on this publisher's channel (idempotent).
    pub async fn declare_topology(&self) -> Result<()> {
        self.topology.declare(&self.channel).await
    }

    /// Closes the channel (before closing the connection, so the broker sees
    /// an orderly shutdown).
    pub async fn close(&self) -> Result<()> {
        let _ = self.inspect.close(200, "closing".into()).await;
        Ok(self.channel.close(200, "closing".into()).await?)
    }

    /// The number of ready messages in every queue of the topology, by role
    /// (`dispatch`, `deliveries`, `retries`, `parked`, `delay.<ms>`).
    pub async fn queue_depths(&self) -> Result<Vec<(String, u32)>> {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let mut depths = Vec::new();
        for (role, name) in self.topology.queues() {
            let queue = self.inspect.queue_declare(name.into(), passive, FieldTable::default()).await?;
            depths.push((role, queue.message_count()));
        }
        Ok(depths)
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
        let mut headers = crate::trace::current_headers();
        if let Some(given) = props.headers() {
            for (k, v) in given.inner() {
                headers.insert(k.clone(), v.clone());
            }
        }
        let props =
            props.with_delivery_mode(PERSISTENT).with_content_type("application/json".into()).with_headers(headers);
        Ok(self.channel.basic_publish(exchange.into(), routing_key.into(), options, body, props).await?)
    }

    /// Publishes an event to the events exchange with its type as routing key
    /// and waits for the broker's confirm.
    pub async fn publish_event(&self, message: &EventMessage) -> Result<()> {
        let mut headers = FieldTable::default();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        headers.insert(INGESTED_AT_HEADER.into(), AMQPValue::LongLongInt(now_ms));
        let mut props = BasicProperties::default().with_headers(headers);
        if let Some(id) = &message.id {
            props = props.with_message_id(id.clone().into());
        }
        let confirm =
            self.send(self.topology.events_exchange(), message.event.clone(), &message.encode(), props).await?;
        check(confirm.await?)
    }

    /// Publishes delivery messages to the deliveries queue (to be attempted
    /// now, whatever their due time says) and waits until the broker has
    /// confirmed all of them.
    pub async fn publish_deliveries(&self, messages: &[DeliveryMessage]) -> Result<()> {
        let queue = self.topology.deliveries_queue();
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            // The default exchange routes by queue name.
            confirms
                .push(self.send(String::new(), queue.clone(), &message.encode(), BasicProperties::default()).await?);
        }
        for confirmation in try_join_all(confirms).await? {
            check(confirmation)?;
        }
        Ok(())
    }
}

/// Header of a parked message: why it can never be processed.
pub const PARKED_REASON_HEADER: &str = "x-hookline-parked-reason";

/// Header of a parked message: the routing key it arrived with.
pub const PARKED_ROUTING_KEY_HEADER: &str = "x-hookline-routing-key";

impl Publisher {
    /// Parks a message that can never be processed in `<ns>.parked`, as it
    /// arrived (body and properties), with the reason and its routing key in
    /// headers, for an operator to inspect or replay.
    pub async fn park(&self, message: &crate::Message, reason: &str) -> Result<()> {
        let mut headers = message.properties.headers().clone().unwrap_or_default();
        headers.insert(PARKED_REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
        headers.insert(PARKED_ROUTING_KEY_HEADER.into(), AMQPValue::LongString(message.routing_key.as_str().into()));
        let props = message.properties.clone().with_headers(headers);
        let queue = self.topology.parked_queue();
        check(self.send(String::new(), queue, &message.body, props).await?.await?)
    }

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
