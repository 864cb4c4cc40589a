//! Broker settings and connecting.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::Result;

/// The broker a service connects to and the namespace of its topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost` (`%2f` is the default vhost).
    pub url: String,
    /// Replaces `hookline` in every exchange and queue name.
    pub namespace: String,
    /// When set, queues are deleted after being unused this long. Tests set
    /// it so what they leave behind disappears; production leaves it unset.
    pub queue_expires: Option<Duration>,
    /// The type of the work queues (`HOOKLINE_QUEUE_TYPE`).
    pub queue_type: QueueType,
}

/// The type of the work queues (dispatch, deliveries, retries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated (Raft) queues: survive the loss of a broker node in a
    /// cluster. The default.
    #[default]
    Quorum,
    /// Single-node durable queues: lighter to create and delete (tests use
    /// them), lost with their node in a cluster.
    Classic,
}

impl QueueType {
    /// The `x-queue-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            namespace: "hookline".to_owned(),
            queue_expires: None,
            queue_type: QueueType::Quorum,
        }
    }
}

/// Opens a connection named after the service, so it is easy to find in the
/// management UI.
pub async fn connect(settings: &AmqpSettings, connection_name: &str) -> Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(connection_name.to_owned().into());
    Ok(Connection::connect(&settings.url, props).await?)
}

impl AmqpSettings {
    /// Reads `HOOKLINE_AMQP_URL`, `HOOKLINE_NAMESPACE`, `HOOKLINE_QUEUE_EXPIRES_MS`
    /// and `HOOKLINE_QUEUE_TYPE`.
    pub fn from_vars(vars: &hookline_core::config::Vars) -> Result<Self, hookline_core::config::ConfigError> {
        let default = Self::default();
        let url = vars.string("HOOKLINE_AMQP_URL", &default.url);
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(hookline_core::config::ConfigError::new(
                "HOOKLINE_AMQP_URL",
                "must start with amqp:// or amqps://",
            ));
        }
        let namespace = vars.string("HOOKLINE_NAMESPACE", &default.namespace);
        let valid = !namespace.is_empty()
            && namespace.len() <= 64
            && namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid {
            return Err(hookline_core::config::ConfigError::new(
                "HOOKLINE_NAMESPACE",
                "must be 1-64 letters, digits, `-` or `_`",
            ));
        }
        let queue_expires = match vars.get("HOOKLINE_QUEUE_EXPIRES_MS") {
            None => None,
            Some(_) => Some(vars.millis("HOOKLINE_QUEUE_EXPIRES_MS", 0)?).filter(|d| !d.is_zero()),
        };
        let queue_type = match vars.get("HOOKLINE_QUEUE_TYPE") {
            None | Some("quorum") => QueueType::Quorum,
            Some("classic") => QueueType::Classic,
            Some(other) => {
                return Err(hookline_core::config::ConfigError::new(
                    "HOOKLINE_QUEUE_TYPE",
                    format!("`{other}` is not `quorum` or `classic`"),
                ));
            }
        };
        Ok(Self { url, namespace, queue_expires, queue_type })
    }
}
