//! RabbitMQ: the transport between producer and workers, and the scheduler.
//!
//! The broker crate knows nothing of Postgres or HTTP. All exchange and queue
//! names derive from one namespace string (`hookline` in production, a random
//! one per test), so the whole topology is data ([`Topology`]) that is then
//! declared on a channel.
//!
//! # Layout
//! - [`settings`]: [`AmqpSettings`] and [`connect`].
//! - [`topology`]: names, queue arguments, and `declare`.
//! - [`message`]: the wire messages: [`EventMessage`] (the public contract
//!   for direct publishing) and [`DeliveryMessage`] (internal, versioned).
//! - [`link`]: reconnecting with backoff, noticing a lost connection.
//! - [`publisher`]: publishing with publisher confirms.
//! - [`consumer`]: consuming with a prefetch bound and an ack-once guard.
//! - [`error`]: the crate's [`Error`], with [`Error::is_transient`].

pub mod consumer;
pub mod error;
pub mod link;
pub mod message;
pub mod publisher;
pub mod settings;
pub mod topology;
pub mod trace;

pub use consumer::{Ack, Consumed, Message, Subscription};
pub use error::{Error, Result};
pub use message::{CheckedEvent, DeliveryMessage, EventMessage, InvalidField, WireFence, WireTrigger};
pub use publisher::Publisher;
pub use settings::{AmqpSettings, QueueType, connect};
pub use topology::Topology;

pub use lapin;
/// A connection to the broker (the AMQP client's own type).
pub use lapin::Connection;
