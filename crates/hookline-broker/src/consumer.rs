//! Consuming: a prefetch bound, and a guard that settles a message once.

use lapin::{
    Acker, BasicProperties, Channel, Consumer,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions},
    types::FieldTable,
};

use crate::{Error, Result};

/// Starts consuming `queue` on `channel`, with at most `prefetch` unacked
/// messages handed to this consumer at a time.
pub async fn consume(channel: &Channel, queue: &str, consumer_tag: &str, prefetch: u16) -> Result<Consumer> {
    // Prefetch bounds what one worker holds: enough to keep every in-flight
    // slot busy, few enough that a stopped worker hands little back.
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    Ok(channel
        .basic_consume(queue.into(), consumer_tag.into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?)
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
