//! Exchange and queue names and arguments, as data, and declaring them.
//!
//! ```text
//! <ns>.events      topic exchange; routing key = event type
//!   └─ <ns>.dispatch    queue bound with `#`: every event, fanned out by workers
//! <ns>.deliveries  queue (default exchange): first attempts and manual retries
//! <ns>.retries     queue: retries that are due
//! <ns>.parked      queue: messages rejected as never processable (the work
//!                  queues dead-letter into it)
//! <ns>.delay.<ms>.quorum  delay tiers (quorum queues; `<ns>.delay.<ms>` when
//!                  the queue type is classic): messages expire after <ms>
//!                  and dead-letter into <ns>.retries
//! ```
//!
//! Every queue has the type of `HOOKLINE_QUEUE_TYPE`: quorum queues (the
//! default) are replicated on every node of a cluster and survive the loss
//! of a minority of them; a quorum tier dead-letters at least once (a message
//! leaves the tier only once `<ns>.retries` has confirmed it). Classic tiers,
//! for single-node installs, are named without the suffix: the names the
//! tiers had before they could be quorum queues, so the arguments of a queue
//! under one name never change (redeclaring with others fails). An install
//! upgraded from classic tiers leaves them behind; nothing is published to
//! them any more and they empty themselves into `<ns>.retries` within their
//! TTL (18.6 h at most), after which an operator may delete them.
//!
//! RabbitMQ expires messages only at a queue's head, so each tier holds one
//! delay. Tiers grow by ×4 from 16 ms to about 18.6 h; a delay is spent by
//! hopping through tiers (largest that fits first), each hop a worker
//! re-publishing the message until it is due. Every retry thus waits in the
//! broker, never in a worker's memory, and survives a restart of every worker.

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use crate::{AmqpSettings, Result, settings::QueueType};

/// The delay tiers in milliseconds: ×4 steps from 16 ms to about 18.6 h.
pub const TIERS_MS: [u64; 12] =
    [16, 64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864];

/// Where a message due in `remaining_ms` goes next: the largest tier that
/// fits, or `None` when it is due (less than the smallest tier remains).
pub fn tier_for(remaining_ms: i64) -> Option<u64> {
    let remaining = u64::try_from(remaining_ms).ok()?;
    TIERS_MS.iter().rev().copied().find(|&t| t <= remaining)
}

/// Deliveries of one message to consumers (the first included) after which
/// a quorum work queue parks it.
pub const DELIVERY_LIMIT: i64 = 20;

/// Every name of one deployment's topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
    queue_expires: Option<Duration>,
    queue_type: QueueType,
}

impl Topology {
    /// The topology of the given namespace (`hookline` in production).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), queue_expires: None, queue_type: QueueType::Quorum }
    }

    /// The topology described by the settings.
    pub fn from_settings(settings: &AmqpSettings) -> Self {
        Self {
            namespace: settings.namespace.clone(),
            queue_expires: settings.queue_expires,
            queue_type: settings.queue_type,
        }
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

    /// The queue of retries that are due.
    pub fn retries_queue(&self) -> String {
        format!("{}.retries", self.namespace)
    }

    /// Where messages that can never be processed (undecodable, invalid, or
    /// for a deleted webhook) are parked for an operator, instead of being
    /// dropped or redelivered forever.
    pub fn parked_queue(&self) -> String {
        format!("{}.parked", self.namespace)
    }

    /// Every queue with a short role name for metrics: `dispatch`,
    /// `deliveries`, `retries`, `parked`, `delay.<ms>`.
    pub fn queues(&self) -> Vec<(String, String)> {
        let mut queues = vec![
            ("dispatch".to_owned(), self.dispatch_queue()),
            ("deliveries".to_owned(), self.deliveries_queue()),
            ("retries".to_owned(), self.retries_queue()),
            ("parked".to_owned(), self.parked_queue()),
        ];
        queues.extend(TIERS_MS.iter().map(|ms| (format!("delay.{ms}"), self.tier_queue(*ms))));
        queues
    }

    /// The delay tier queue holding messages for `ms` milliseconds; its
    /// name says its type (see the module docs).
    pub fn tier_queue(&self, ms: u64) -> String {
        match self.queue_type {
            QueueType::Quorum => format!("{}.delay.{ms}.quorum", self.namespace),
            QueueType::Classic => format!("{}.delay.{ms}", self.namespace),
        }
    }

    /// The arguments of the tier holding messages for `ms` milliseconds.
    fn tier_args(&self, ms: u64) -> FieldTable {
        let mut args = self.base_args();
        // One TTL per tier, so the head is always the first to expire and
        // expiry (which happens only at the head) is exact.
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)));
        // Expired messages go back through the default exchange to the
        // retries queue.
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(self.retries_queue().into()));
        if self.queue_type == QueueType::Quorum {
            // A quorum queue dead-letters at most once by default: a message
            // whose republication is lost (the retries queue's leader
            // moving) would be gone. At least once keeps it in the tier
            // until the retries queue confirms it; a duplicate is fenced by
            // the worker.
            args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
            // Required by at-least-once; with no length limit nothing is
            // ever rejected.
            args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        }
        args
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = self.base_args();
        if self.queue_type == QueueType::Quorum {
            // Stated, not left to the broker's default (none before 4.0, 20
            // from 4.0), so every supported version behaves the same: a
            // message handed back this often (workers that crashed on it, or
            // lost their connection while holding it) is parked instead of
            // circling. Workers never hand a message back to wait for
            // something, so only faults count towards it.
            args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        }
        // A rejected message (a worker's verdict: never processable) goes
        // to the parking queue.
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(self.parked_queue().into()));
        args
    }

    /// Arguments every queue has: type and (tests) expiry.
    fn base_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        // Quorum queues (the default) replicate across a cluster and survive
        // the loss of a minority of its nodes; on a single node they cost little at run time (and
        // are faster than classic durable queues for publish-with-confirms
        // on this hardware), but are slower to create and delete.
        args.insert("x-queue-type".into(), AMQPValue::LongString(self.queue_type.as_str().into()));
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
        channel.queue_declare(self.parked_queue().into(), durable, self.base_args()).await?;
        for queue in [self.dispatch_queue(), self.deliveries_queue()] {
            channel.queue_declare(queue.into(), durable, self.queue_args()).await?;
        }
        channel.queue_declare(self.retries_queue().into(), durable, self.queue_args()).await?;
        for ms in TIERS_MS {
            channel.queue_declare(self.tier_queue(ms).into(), durable, self.tier_args(ms)).await?;
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
        assert_eq!(t.retries_queue(), "t123.retries");
        assert_eq!(t.tier_queue(64), "t123.delay.64.quorum");
        assert_eq!(t.parked_queue(), "t123.parked");
    }

    /// Quorum tiers (the default) have names of their own, so an install
    /// whose classic tiers exist declares them without a conflict; classic
    /// tiers keep the names they always had. Metrics' role names are the
    /// same for both.
    #[test]
    fn tier_names_follow_the_queue_type() {
        use crate::{AmqpSettings, QueueType};
        let classic = AmqpSettings { namespace: "t1".into(), queue_type: QueueType::Classic, ..Default::default() };
        let classic = Topology::from_settings(&classic);
        assert_eq!(classic.tier_queue(16), "t1.delay.16");
        let quorum = Topology::new("t1");
        assert_eq!(quorum.tier_queue(16), "t1.delay.16.quorum");
        let roles = |t: &Topology| t.queues().into_iter().map(|(role, _)| role).collect::<Vec<_>>();
        assert_eq!(roles(&classic), roles(&quorum));
        assert!(roles(&quorum).contains(&"delay.16".to_owned()));
        assert!(quorum.queues().contains(&("delay.16".to_owned(), "t1.delay.16.quorum".to_owned())));
    }

    /// A quorum tier dead-letters at least once (which needs
    /// `reject-publish`); a classic one has neither argument.
    #[test]
    fn quorum_tiers_dead_letter_at_least_once() {
        use lapin::types::AMQPValue;
        let text = |args: &lapin::types::FieldTable, key: &str| match args.inner().get(key) {
            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
            _ => None,
        };
        let quorum = Topology::new("t1").tier_args(64);
        assert_eq!(text(&quorum, "x-queue-type").as_deref(), Some("quorum"));
        assert_eq!(text(&quorum, "x-dead-letter-strategy").as_deref(), Some("at-least-once"));
        assert_eq!(text(&quorum, "x-overflow").as_deref(), Some("reject-publish"));
        assert_eq!(text(&quorum, "x-dead-letter-routing-key").as_deref(), Some("t1.retries"));
        assert!(matches!(quorum.inner().get("x-message-ttl"), Some(AMQPValue::LongLongInt(64))));
        let settings =
            crate::AmqpSettings { namespace: "t1".into(), queue_type: crate::QueueType::Classic, ..Default::default() };
        let classic = Topology::from_settings(&settings).tier_args(64);
        assert_eq!(text(&classic, "x-queue-type").as_deref(), Some("classic"));
        assert_eq!(text(&classic, "x-dead-letter-strategy"), None);
        assert_eq!(text(&classic, "x-overflow"), None);
    }

    /// A delay goes to the largest tier that fits; under 16 ms it is due.
    #[test]
    fn tiers() {
        use super::tier_for;
        assert_eq!(tier_for(-5), None);
        assert_eq!(tier_for(15), None);
        assert_eq!(tier_for(16), Some(16));
        assert_eq!(tier_for(63), Some(16));
        assert_eq!(tier_for(5_000), Some(4096));
        assert_eq!(tier_for(36_000_000), Some(16_777_216));
        assert_eq!(tier_for(i64::MAX), Some(67_108_864));
    }
}
