//! Broker settings and connecting, to one node or to any node of a cluster.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties, uri::AMQPUri};

use crate::{Error, Result};

/// Heartbeat interval asked of the broker when the URL names none (RabbitMQ
/// proposes 60 s). A connection that hears nothing for two intervals is
/// closed, so a node that vanished without closing its connections (a
/// machine lost, a network cut) is noticed within 10 s; a node that stops
/// closes them itself and is noticed at once.
const HEARTBEAT_SECS: u16 = 5;

/// Limit on opening the TCP connection to one address when the URL names
/// none, so an address that does not answer costs at most this before the
/// next one is tried.
const TCP_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Limit on the whole connection handshake with one address (TCP, AMQP
/// negotiation, login), for a node that accepts and then hangs.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker a service connects to and the namespace of its topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost` (`%2f` is the default vhost), or
    /// several such URLs separated by commas: the nodes of a cluster, any of
    /// which will do (see [`AmqpSettings::addresses`]).
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

/// Opens a connection named after the service (so it is easy to find in the
/// management UI) to the first address of `settings` that accepts one, in
/// the order given.
pub async fn connect(settings: &AmqpSettings, connection_name: &str) -> Result<Connection> {
    connect_from(settings, connection_name, 0).await
}

/// Like [`connect`], trying the addresses in turn from the one at `start`
/// (modulo their number) and wrapping around. Each address costs at most
/// its connect timeout; the error is the last address's.
pub(crate) async fn connect_from(settings: &AmqpSettings, connection_name: &str, start: usize) -> Result<Connection> {
    let addresses: Vec<&str> = settings.addresses().collect();
    let mut last = Error::Address("HOOKLINE_AMQP_URL names no address".to_owned());
    for i in 0..addresses.len() {
        let address = addresses[(start + i) % addresses.len()];
        match connect_to(address, connection_name).await {
            Ok(connection) => return Ok(connection),
            Err(e) => {
                if addresses.len() > 1 {
                    tracing::debug!(error.message = %e, address = %redacted(address), "broker address unreachable; trying the next");
                }
                last = e;
            }
        }
    }
    Err(last)
}

/// Connects to one address, with the default heartbeat and connect timeout
/// where the URL sets none.
async fn connect_to(address: &str, connection_name: &str) -> Result<Connection> {
    let mut uri = parse(address).map_err(Error::Address)?;
    uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
    uri.query.connection_timeout.get_or_insert(TCP_CONNECT_TIMEOUT_MS);
    let props = ConnectionProperties::default().with_connection_name(connection_name.to_owned().into());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Connection::connect_uri(uri, props)).await {
        Ok(connection) => Ok(connection?),
        Err(_) => Err(Error::HandshakeTimeout(HANDSHAKE_TIMEOUT)),
    }
}

/// Parses one address; the error says why without repeating the URL (it may
/// hold a password).
fn parse(address: &str) -> Result<AMQPUri, String> {
    if !(address.starts_with("amqp://") || address.starts_with("amqps://")) {
        return Err("must start with amqp:// or amqps://".to_owned());
    }
    address.parse::<AMQPUri>()
}

/// An address without its password, for logs.
fn redacted(address: &str) -> String {
    match (address.find("://"), address.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &address[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &address[..scheme + 3], &address[at..])
        }
        _ => address.to_owned(),
    }
}

impl AmqpSettings {
    /// The broker addresses, in the order given: the comma-separated URLs
    /// of [`AmqpSettings::url`], trimmed, empty ones skipped.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|a| !a.is_empty())
    }

    /// Reads `HOOKLINE_AMQP_URL`, `HOOKLINE_NAMESPACE`, `HOOKLINE_QUEUE_EXPIRES_MS`
    /// and `HOOKLINE_QUEUE_TYPE`.
    pub fn from_vars(vars: &hookline_core::config::Vars) -> Result<Self, hookline_core::config::ConfigError> {
        let default = Self::default();
        let url = vars.string("HOOKLINE_AMQP_URL", &default.url);
        let given: Vec<&str> = url.split(',').map(str::trim).collect();
        for (n, address) in given.iter().enumerate() {
            if let Err(why) = parse(address) {
                let which =
                    if given.len() > 1 { format!("address {} of {}: ", n + 1, given.len()) } else { String::new() };
                return Err(hookline_core::config::ConfigError::new("HOOKLINE_AMQP_URL", format!("{which}{why}")));
            }
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

#[cfg(test)]
mod tests {
    use hookline_core::config::Vars;

    use super::{AmqpSettings, redacted};

    fn load(url: &str) -> Result<AmqpSettings, hookline_core::config::ConfigError> {
        AmqpSettings::from_vars(&[("HOOKLINE_AMQP_URL", url)].into_iter().collect::<Vars>())
    }

    /// One URL, as before: one address.
    #[test]
    fn one_address() {
        let settings = load("amqp://u:p@10.0.0.1:5672/%2f").expect("valid");
        assert_eq!(settings.addresses().collect::<Vec<_>>(), ["amqp://u:p@10.0.0.1:5672/%2f"]);
        let default = AmqpSettings::from_vars(&Vars::default()).expect("defaults are valid");
        assert_eq!(default.addresses().collect::<Vec<_>>(), ["amqp://guest:guest@127.0.0.1:5672/%2f"]);
    }

    /// The nodes of a cluster, comma-separated (spaces allowed), in order.
    #[test]
    fn several_addresses() {
        let settings =
            load("amqp://u:p@rabbit-1:5672/%2f, amqp://u:p@rabbit-2:5672/%2f,amqps://u:p@rabbit-3/%2f?heartbeat=2")
                .expect("valid");
        assert_eq!(
            settings.addresses().collect::<Vec<_>>(),
            ["amqp://u:p@rabbit-1:5672/%2f", "amqp://u:p@rabbit-2:5672/%2f", "amqps://u:p@rabbit-3/%2f?heartbeat=2"]
        );
    }

    /// Every address is checked, and the error says which one is wrong
    /// without repeating it (it may hold a password).
    #[test]
    fn each_address_is_validated() {
        let e = load("amqp://u:secret@a:5672/%2f,http://u:secret@b/").expect_err("http is not AMQP");
        assert_eq!(e.var, "HOOKLINE_AMQP_URL");
        assert!(e.detail.contains("address 2 of 2") && e.detail.contains("amqp://"), "{e}");
        assert!(!e.detail.contains("secret"), "{e}");
        let e = load("amqp://a:5672/%2f,,amqp://b:5672/%2f").expect_err("an empty address");
        assert!(e.detail.contains("address 2 of 3"), "{e}");
        let e = load("amqp://a:notaport/%2f").expect_err("a bad port");
        assert!(!e.detail.contains("address"), "one address needs no number: {e}");
        assert!(load("amqp://a:5672/%2f?heartbeat=x").is_err(), "query values are checked too");
    }

    /// Logs name an address without its password.
    #[test]
    fn addresses_are_logged_without_passwords() {
        assert_eq!(redacted("amqp://u:secret@h:5672/%2f"), "amqp://u:***@h:5672/%2f");
        assert_eq!(redacted("amqp://h:5672/%2f"), "amqp://h:5672/%2f");
    }
}
