//! The messages on the wire.
//!
//! [`EventMessage`] is a public contract: licensing services may publish it
//! straight to `<ns>.events` (see the README). Fields may be added, never
//! removed or changed in meaning. [`DeliveryMessage`] is internal and tagged
//! with a version so that workers of two releases can share a queue.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event as published to the events exchange (body of the AMQP message,
/// JSON; routing key = the event type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMessage {
    /// The event type, e.g. `license.created`.
    pub event: String,
    /// The payload, a JSON object or array.
    pub data: serde_json::Value,
    /// The event id; delivering the same id twice produces one set of
    /// deliveries. When absent, the AMQP `message_id` property is used, and
    /// failing that an id is generated (redeliveries are then not deduplicated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// RFC 3339 time the event happened; the time of dispatch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_at: Option<String>,
    /// The account the event belongs to; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl EventMessage {
    /// Parses a message body.
    pub fn decode(body: &[u8]) -> crate::Result<Self> {
        Ok(serde_json::from_slice(body)?)
    }

    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an EventMessage always serialises: its fields are strings and a JSON value")
    }
}

/// "Attempt this delivery now." Internal to Hookline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DeliveryMessage {
    /// Version 1: the delivery's id; everything else is read from Postgres,
    /// so a changed URL or token takes effect for the next attempt.
    #[serde(rename = "delivery.v1", rename_all = "camelCase")]
    V1 {
        /// The delivery to attempt.
        delivery_id: Uuid,
    },
}

impl DeliveryMessage {
    /// Parses a message body.
    pub fn decode(body: &[u8]) -> crate::Result<Self> {
        Ok(serde_json::from_slice(body)?)
    }

    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a DeliveryMessage always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct-publishing contract: only `event` and `data` are required.
    #[test]
    fn event_message_minimal_contract() {
        let m = EventMessage::decode(br#"{"event":"license.created","data":{"a":1}}"#).expect("valid");
        assert_eq!(m.event, "license.created");
        assert_eq!(m.id, None);
        assert_eq!(m.tenant, None);
        let full = br#"{"event":"x.y","data":[],"id":"e1","triggeredAt":"2020-01-01T00:00:00Z","tenant":"acme"}"#;
        let m = EventMessage::decode(full).expect("valid");
        assert_eq!(EventMessage::decode(&m.encode()).expect("round trip"), m);
    }

    /// Delivery messages carry their version tag on the wire.
    #[test]
    fn delivery_message_is_versioned() {
        let id = Uuid::nil();
        let m = DeliveryMessage::V1 { delivery_id: id };
        let body = m.encode();
        assert_eq!(
            String::from_utf8(body.clone()).expect("utf-8"),
            r#"{"type":"delivery.v1","deliveryId":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_eq!(DeliveryMessage::decode(&body).expect("round trip"), m);
        assert!(DeliveryMessage::decode(br#"{"type":"delivery.v9","deliveryId":"x"}"#).is_err());
    }
}
