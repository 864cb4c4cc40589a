//! Exchange and queue names and arguments, as data, and declaring them.
//!
//! ```text
//! <ns>.events      topic exchange; routing key = event type
//!   └─ <ns>.dispatch    queue bound with `#`: every event, fanned out by workers
//! <ns>.deliveries  queue (default exchange): one message per delivery attempt
//! ```

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use crate::{AmqpSettings, Result};

/// Every name of one deployment's topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
    queue_expires: Option<Duration>,
}

impl Topology {
    /// The topology of the given namespace (`hookline` in production).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), queue_expires: None }
    }

    /// The topology described by the settings.
    pub fn from_settings(settings: &AmqpSettings) -> Self {
        Self { namespace: settings.namespace.clone(), queue_expires: settings.queue_expires }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The topic exchange events are published to, by the producer or
    /// directly by a licensing service.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// The queue every event lands in, to be fanned out.
    pub fn dispatch_queue(&self) -> String {
        format!("{}.dispatch", self.namespace)
    }

    /// The queue of delivery messages, one per attempt to make.
    pub fn deliveries_queue(&self) -> String {
        format!("{}.deliveries", self.namespace)
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        // Quorum queues replicate across a cluster and survive a node loss;
        // on a single node they cost little (and are faster than classic
        // durable queues for publish-with-confirms on this hardware).
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        if let Some(expires) = self.queue_expires {
            // Only set for tests: an abandoned test queue deletes itself.
            let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        args
    }

    /// Declares the exchanges, queues and bindings. Idempotent; both services
    /// call it at start.
    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                // Durable: publishers (including licensing services) may
                // publish while no worker runs.
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        // Durable queues: messages are persistent and must survive a broker
        // restart.
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        for queue in [self.dispatch_queue(), self.deliveries_queue()] {
            channel.queue_declare(queue.into(), durable, self.queue_args()).await?;
        }
        channel
            .queue_bind(
                self.dispatch_queue().into(),
                self.events_exchange().into(),
                // Every event type; webhooks' subscriptions are matched by the
                // worker, not by bindings, so changing them needs no rebinding.
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Topology;

    /// Every name derives from the namespace, so tests can isolate themselves.
    #[test]
    fn names_derive_from_namespace() {
        let t = Topology::new("t123");
        assert_eq!(t.events_exchange(), "t123.events");
        assert_eq!(t.dispatch_queue(), "t123.dispatch");
        assert_eq!(t.deliveries_queue(), "t123.deliveries");
        assert_eq!(Topology::new("hookline").events_exchange(), "hookline.events");
    }
}
