//! Consuming: a prefetch bound, and a guard that settles a message once.

use futures_util::StreamExt;
use lapin::{
    Acker, BasicProperties, Channel, Connection, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::FieldTable,
};

use crate::{Error, Result};

/// Starts consuming `queue` on `channel`, with at most `prefetch` unacked
/// messages handed to this consumer at a time.
async fn consume(channel: &Channel, queue: &str, consumer_tag: &str, prefetch: u16) -> Result<Consumer> {
    // Prefetch bounds what one worker holds: enough to keep every in-flight
    // slot busy, few enough that a stopped worker hands little back.
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    Ok(channel
        .basic_consume(queue.into(), consumer_tag.into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?)
}

/// One consumer on a channel of its own: messages in, each with the guard
/// that settles it. A service consumes through this and never sees the
/// AMQP client's types.
#[derive(Debug)]
pub struct Subscription {
    channel: Channel,
    consumer: Consumer,
    tag: String,
}

impl Subscription {
    /// Opens a channel on `connection` and consumes `queue` on it as
    /// `tag`, with at most `prefetch` unacked messages at a time.
    pub async fn open(connection: &Connection, queue: &str, tag: &str, prefetch: u16) -> Result<Self> {
        let channel = connection.create_channel().await?;
        let consumer = consume(&channel, queue, tag, prefetch).await?;
        Ok(Self { channel, consumer, tag: tag.to_owned() })
    }

    /// The next message; `None` once the consumer has ended (cancelled, or
    /// its channel or connection closed).
    pub async fn next(&mut self) -> Option<Result<Consumed>> {
        Some(self.consumer.next().await?.map(Consumed::from).map_err(Error::from))
    }

    /// Asks the broker to stop handing over messages; messages already
    /// received stay this consumer's to settle. A failure (the channel is
    /// gone) is ignored: the broker then hands back whatever was unsettled.
    pub async fn cancel(&self) {
        let _ = self.channel.basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default()).await;
    }
}

/// A received message and its settlement guard, kept apart so the handler
/// can own the message while the consume loop keeps the guard.
#[derive(Debug)]
pub struct Consumed {
    /// The message.
    pub message: Message,
    /// Acks, nacks or rejects it, once.
    pub ack: Ack,
}

/// A received message's content.
#[derive(Debug, Clone)]
pub struct Message {
    /// The body.
    pub body: Vec<u8>,
    /// The AMQP properties (message id, headers, …).
    pub properties: BasicProperties,
    /// The routing key it was published with.
    pub routing_key: String,
    /// True when the broker delivered it before (to this or another consumer).
    pub redelivered: bool,
}

impl Message {
    /// The AMQP `message_id`, if the publisher set one.
    pub fn message_id(&self) -> Option<&str> {
        self.properties.message_id().as_ref().map(|id| id.as_str())
    }

    /// When the producer accepted the event, from the header its publisher
    /// sets ([`crate::publisher::INGESTED_AT_HEADER`]); `None` for a
    /// message published by anyone else.
    pub fn ingested_at(&self) -> Option<time::OffsetDateTime> {
        let headers = self.properties.headers().as_ref()?;
        let (_, value) = headers.inner().iter().find(|(k, _)| k.as_str() == crate::publisher::INGESTED_AT_HEADER)?;
        let lapin::types::AMQPValue::LongLongInt(ms) = value else { return None };
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000).ok()
    }

    /// The AMQP `timestamp` (whole seconds), if the publisher set one.
    pub fn timestamp(&self) -> Option<time::OffsetDateTime> {
        let secs = i64::try_from(self.properties.timestamp().as_ref().copied()?).ok()?;
        time::OffsetDateTime::from_unix_timestamp(secs).ok()
    }
}

impl From<Delivery> for Consumed {
    fn from(delivery: Delivery) -> Self {
        Self {
            message: Message {
                body: delivery.data,
                properties: delivery.properties,
                routing_key: delivery.routing_key.to_string(),
                redelivered: delivery.redelivered,
            },
            ack: Ack { acker: Some(delivery.acker) },
        }
    }
}

/// Settles a message at most once: the second call reports
/// [`Error::AlreadySettled`] instead of confusing the broker.
#[derive(Debug)]
pub struct Ack {
    acker: Option<Acker>,
}

impl Ack {
    fn take(&mut self) -> Result<Acker> {
        self.acker.take().ok_or(Error::AlreadySettled)
    }

    /// Done: the outcome is durable, the broker may forget the message.
    pub async fn ack(&mut self) -> Result<()> {
        self.take()?.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Not done: hand the message back for another consumer to take.
    pub async fn requeue(&mut self) -> Result<()> {
        self.take()?.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
        Ok(())
    }

    /// Never processable: drop it (or dead-letter it, where configured).
    pub async fn reject(&mut self) -> Result<()> {
        self.take()?.reject(BasicRejectOptions { requeue: false }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, ShortString};

    use super::*;

    fn message(properties: BasicProperties) -> Message {
        Message { body: Vec::new(), properties, routing_key: String::new(), redelivered: false }
    }

    /// What the producer's publisher stamps is read back; a message from
    /// anyone else has none of it, and a header of the wrong type is ignored.
    #[test]
    fn reads_what_the_publisher_stamped() {
        let mut headers = FieldTable::default();
        headers.insert(crate::publisher::INGESTED_AT_HEADER.into(), AMQPValue::LongLongInt(1_796_032_800_123));
        let stamped = message(
            BasicProperties::default()
                .with_headers(headers)
                .with_timestamp(1_796_032_800)
                .with_message_id(ShortString::from("evt_1")),
        );
        assert_eq!(stamped.ingested_at().map(|t| t.unix_timestamp_nanos() / 1_000_000), Some(1_796_032_800_123));
        assert_eq!(stamped.timestamp().map(time::OffsetDateTime::unix_timestamp), Some(1_796_032_800));
        assert_eq!(stamped.message_id(), Some("evt_1"));
        let bare = message(BasicProperties::default());
        assert_eq!((bare.ingested_at(), bare.timestamp(), bare.message_id()), (None, None, None));
        let mut wrong = FieldTable::default();
        wrong.insert(crate::publisher::INGESTED_AT_HEADER.into(), AMQPValue::LongString("soon".into()));
        assert_eq!(message(BasicProperties::default().with_headers(wrong)).ingested_at(), None);
    }
}
