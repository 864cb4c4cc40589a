//! The broker's error type.

/// Everything that can go wrong talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection, a channel or an operation on it failed.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused a published message (basic.nack).
    #[error("the broker did not confirm the message")]
    Nacked,
    /// A `mandatory` message matched no queue and came back.
    #[error("the message could not be routed to any queue ({0})")]
    Unroutable(String),
    /// A message body is not what its type promises.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The message was acked or rejected already.
    #[error("the message was already settled")]
    AlreadySettled,
    /// A broker node accepted the connection but did not complete the
    /// handshake in time.
    #[error("no AMQP handshake within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// A broker address is not an AMQP URL (settings validate them, so
    /// only a settings value built by hand gets here).
    #[error("not a usable AMQP URL: {0}")]
    Address(String),
}

/// The broker's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when trying again (possibly after reconnecting) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Amqp(_) | Self::Nacked | Self::HandshakeTimeout(_) => true,
            Self::Unroutable(_) | Self::Malformed(_) | Self::AlreadySettled | Self::Address(_) => false,
        }
    }
}
