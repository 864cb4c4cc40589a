//! The messages on the wire.
//!
//! [`EventMessage`] is a public contract: licensing services may publish it
//! straight to `<ns>.events` (see the README). Fields may be added, never
//! removed or changed in meaning. [`DeliveryMessage`] is internal and tagged
//! with a version so that workers of two releases can share a queue.

use hookline_core::{EventId, EventType, TenantId, parse_timestamp, validate_data};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
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

/// An event envelope whose fields passed [`EventMessage::check`]; the
/// optional ones are still optional (the producer and the worker fill them
/// in differently).
#[derive(Debug, Clone)]
pub struct CheckedEvent {
    /// The event type.
    pub event_type: EventType,
    /// The payload, a JSON object or array.
    pub data: serde_json::Value,
    /// The event id, when given.
    pub id: Option<EventId>,
    /// When the event happened, when given.
    pub triggered_at: Option<OffsetDateTime>,
    /// The account, when given.
    pub tenant: Option<TenantId>,
}

/// The first field of an event envelope that is invalid, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct InvalidField {
    /// The field, as named in the JSON (`event`, `data`, `id`,
    /// `triggeredAt`, `tenant`).
    pub field: &'static str,
    /// What is wrong with it.
    pub detail: String,
}

impl InvalidField {
    fn of(field: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Self {
        move |e| Self { field, detail: e.to_string() }
    }
}

impl EventMessage {
    /// Parses a message body.
    pub fn decode(body: &[u8]) -> crate::Result<Self> {
        Ok(serde_json::from_slice(body)?)
    }

    /// Checks every field by the rules both the API and the worker apply:
    /// an event type, a JSON object or array as data, and, when given, an
    /// event id, an RFC 3339 time and a tenant id.
    pub fn check(self) -> Result<CheckedEvent, InvalidField> {
        let event_type = EventType::parse(&self.event).map_err(|e| InvalidField::of("event")(&e))?;
        validate_data(&self.data).map_err(|e| InvalidField::of("data")(&e))?;
        let id = self.id.as_deref().map(EventId::parse).transpose().map_err(|e| InvalidField::of("id")(&e))?;
        let triggered_at = self
            .triggered_at
            .as_deref()
            .map(parse_timestamp)
            .transpose()
            .map_err(|e| InvalidField::of("triggeredAt")(&e))?;
        let tenant =
            self.tenant.as_deref().map(TenantId::parse).transpose().map_err(|e| InvalidField::of("tenant")(&e))?;
        Ok(CheckedEvent { event_type, data: self.data, id, triggered_at, tenant })
    }

    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an EventMessage always serialises: its fields are strings and a JSON value")
    }
}

/// What caused an attempt, on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireTrigger {
    /// First attempt or scheduled retry.
    #[default]
    Scheduled,
    /// A manual retry.
    Manual,
    /// A `recover` replay.
    Recover,
    /// A recovery probe. Never sent: a probe has no delivery message (it
    /// is listed so the mapping from `Trigger` is total).
    Probe,
}

impl From<WireTrigger> for hookline_core::Trigger {
    fn from(t: WireTrigger) -> Self {
        match t {
            WireTrigger::Scheduled => Self::Scheduled,
            WireTrigger::Manual => Self::Manual,
            WireTrigger::Recover => Self::Recover,
            WireTrigger::Probe => Self::Probe,
        }
    }
}

impl From<hookline_core::Trigger> for WireTrigger {
    fn from(t: hookline_core::Trigger) -> Self {
        match t {
            hookline_core::Trigger::Scheduled => Self::Scheduled,
            hookline_core::Trigger::Manual => Self::Manual,
            hookline_core::Trigger::Recover => Self::Recover,
            hookline_core::Trigger::Probe => Self::Probe,
        }
    }
}

/// Which step of a delivery a message is for, on the wire (see
/// `hookline_core::fence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WireFence {
    /// The automatic step due at this Unix millisecond.
    Due(i64),
    /// A manual attempt asked for after this many attempts.
    Manual(i32),
}

/// "Attempt this delivery (not before a time)." Internal to Hookline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DeliveryMessage {
    /// Version 1: the delivery's id; everything else is read from Postgres,
    /// so a changed URL or token takes effect for the next attempt.
    #[serde(rename = "delivery.v1", rename_all = "camelCase")]
    V1 {
        /// The delivery to attempt.
        delivery_id: Uuid,
        /// The delivery's webhook, when the sender knows it: lets a worker
        /// apply the per-webhook in-flight cap before reading Postgres.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook_id: Option<Uuid>,
        /// What caused the attempt.
        #[serde(default)]
        trigger: WireTrigger,
        /// Unix milliseconds before which the attempt must not be made; a
        /// worker that gets the message earlier sends it through another
        /// delay tier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before_ms: Option<i64>,
        /// How often it was deferred because its webhook was at its
        /// in-flight cap (each deferral waits longer).
        #[serde(default, skip_serializing_if = "is_zero")]
        deferrals: u32,
        /// Which step it is for; a message that no longer matches its
        /// delivery's row is acked without an attempt. Absent on messages
        /// of releases before fences.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fence: Option<WireFence>,
        /// A slot of its webhook's rate limit this message holds (Unix
        /// milliseconds): it arrives a little before, and is sent at that
        /// moment without taking another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_ms: Option<i64>,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl DeliveryMessage {
    /// The automatic step of a delivery due at `due_ms` (a first attempt,
    /// a retry, a replay): not attempted before then, and only while the
    /// delivery is still due at exactly that time.
    pub fn due(delivery_id: Uuid, webhook_id: Uuid, due_ms: i64, trigger: hookline_core::Trigger) -> Self {
        Self::V1 {
            delivery_id,
            webhook_id: Some(webhook_id),
            trigger: trigger.into(),
            not_before_ms: Some(due_ms),
            deferrals: 0,
            fence: Some(WireFence::Due(due_ms)),
            slot_ms: None,
        }
    }

    /// One manual attempt now, of a delivery that has made `attempts`
    /// attempts so far.
    pub fn manual(delivery_id: Uuid, webhook_id: Uuid, attempts: i32) -> Self {
        Self::V1 {
            delivery_id,
            webhook_id: Some(webhook_id),
            trigger: WireTrigger::Manual,
            not_before_ms: None,
            deferrals: 0,
            fence: Some(WireFence::Manual(attempts)),
            slot_ms: None,
        }
    }

    /// The webhook, when the message names it.
    pub fn webhook_id(&self) -> Option<Uuid> {
        match self {
            Self::V1 { webhook_id, .. } => *webhook_id,
        }
    }

    /// Which step it is for.
    pub fn fence(&self) -> hookline_core::Fence {
        match self {
            Self::V1 { fence: Some(WireFence::Due(ms)), .. } => hookline_core::Fence::Due(*ms),
            Self::V1 { fence: Some(WireFence::Manual(n)), .. } => hookline_core::Fence::Manual(*n),
            Self::V1 { fence: None, .. } => hookline_core::Fence::Legacy,
        }
    }

    /// How often it was deferred so far.
    pub fn deferrals(&self) -> u32 {
        match self {
            Self::V1 { deferrals, .. } => *deferrals,
        }
    }

    /// The same message, not before `not_before_ms` (its fence unchanged),
    /// without counting a deferral.
    pub fn later(self, not_before_ms: i64) -> Self {
        match self {
            Self::V1 { delivery_id, webhook_id, trigger, deferrals, fence, slot_ms, .. } => Self::V1 {
                delivery_id,
                webhook_id,
                trigger,
                not_before_ms: Some(not_before_ms),
                deferrals,
                fence,
                slot_ms,
            },
        }
    }

    /// The same message for the step now due at `due_ms` (its delivery's
    /// due time was moved there).
    pub fn with_due(self, due_ms: i64) -> Self {
        match self {
            Self::V1 { delivery_id, webhook_id, trigger, deferrals, slot_ms, .. } => Self::V1 {
                delivery_id,
                webhook_id,
                trigger,
                not_before_ms: Some(due_ms),
                deferrals,
                fence: Some(WireFence::Due(due_ms)),
                slot_ms,
            },
        }
    }

    /// The same message deferred once more, due no earlier than
    /// `not_before_ms`; a rate-limit slot it held is given up.
    pub fn deferred(self, not_before_ms: i64) -> Self {
        match self {
            Self::V1 { delivery_id, webhook_id, trigger, deferrals, fence, .. } => Self::V1 {
                delivery_id,
                webhook_id,
                trigger,
                not_before_ms: Some(not_before_ms),
                deferrals: deferrals.saturating_add(1),
                fence,
                slot_ms: None,
            },
        }
    }

    /// The same message holding the slot of its webhook's rate limit at
    /// `slot_ms`.
    pub fn holding_slot(self, slot_ms: i64) -> Self {
        match self {
            Self::V1 { delivery_id, webhook_id, trigger, not_before_ms, deferrals, fence, .. } => {
                Self::V1 { delivery_id, webhook_id, trigger, not_before_ms, deferrals, fence, slot_ms: Some(slot_ms) }
            }
        }
    }

    /// The rate-limit slot it holds (taken when it was deferred), in Unix
    /// milliseconds.
    pub fn slot_ms(&self) -> Option<i64> {
        match self {
            Self::V1 { slot_ms, .. } => *slot_ms,
        }
    }

    /// The delivery's id.
    pub fn delivery_id(&self) -> Uuid {
        match self {
            Self::V1 { delivery_id, .. } => *delivery_id,
        }
    }

    /// When it is due, in unix milliseconds (`None`: now).
    pub fn not_before_ms(&self) -> Option<i64> {
        match self {
            Self::V1 { not_before_ms, .. } => *not_before_ms,
        }
    }

    /// What caused it.
    pub fn trigger(&self) -> hookline_core::Trigger {
        match self {
            Self::V1 { trigger, .. } => (*trigger).into(),
        }
    }

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
        let m = DeliveryMessage::due(id, id, 1_500, hookline_core::Trigger::Scheduled);
        let body = m.encode();
        assert_eq!(
            String::from_utf8(body.clone()).expect("utf-8"),
            r#"{"type":"delivery.v1","deliveryId":"00000000-0000-0000-0000-000000000000","webhookId":"00000000-0000-0000-0000-000000000000","trigger":"scheduled","notBeforeMs":1500,"fence":{"due":1500}}"#
        );
        assert_eq!(m.fence(), hookline_core::Fence::Due(1_500));
        assert_eq!(DeliveryMessage::manual(id, id, 3).fence(), hookline_core::Fence::Manual(3));
        assert_eq!(m.later(9).fence(), hookline_core::Fence::Due(1_500), "moving a message keeps its fence");
        assert_eq!(DeliveryMessage::decode(&body).expect("round trip"), m);
        // Older messages without webhook, trigger or due time still decode.
        let old = br#"{"type":"delivery.v1","deliveryId":"00000000-0000-0000-0000-000000000000"}"#;
        let decoded = DeliveryMessage::decode(old).expect("decodes");
        assert_eq!((decoded.delivery_id(), decoded.webhook_id(), decoded.not_before_ms()), (id, None, None));
        assert_eq!(decoded.fence(), hookline_core::Fence::Legacy);
        let later = DeliveryMessage::V1 {
            delivery_id: id,
            webhook_id: None,
            trigger: WireTrigger::Recover,
            not_before_ms: Some(5),
            deferrals: 2,
            fence: Some(WireFence::Manual(1)),
            slot_ms: Some(7),
        };
        assert_eq!(DeliveryMessage::decode(&later.encode()).expect("round trip"), later);
        // Deferring gives the slot up; a due time moved keeps it.
        assert_eq!(later.deferred(9).slot_ms(), None);
        assert_eq!(later.with_due(9).slot_ms(), Some(7));
        assert_eq!(later.deferred(9).holding_slot(8).slot_ms(), Some(8));
        assert_eq!(decoded.slot_ms(), None);
        assert!(DeliveryMessage::decode(br#"{"type":"delivery.v9","deliveryId":"x"}"#).is_err());
    }

    /// Every field is checked, the first bad one named; the optional ones
    /// stay absent when absent.
    #[test]
    fn check_names_the_bad_field() {
        let good = || EventMessage {
            event: "license.created".into(),
            data: serde_json::json!({"k": 1}),
            id: None,
            triggered_at: None,
            tenant: None,
        };
        let checked = good().check().expect("valid");
        assert_eq!(checked.event_type.as_str(), "license.created");
        assert!(checked.id.is_none() && checked.triggered_at.is_none() && checked.tenant.is_none());
        let full = EventMessage {
            id: Some("evt_1".into()),
            triggered_at: Some("2026-11-30T10:00:00Z".into()),
            tenant: Some("acme".into()),
            ..good()
        }
        .check()
        .expect("valid");
        assert_eq!(full.id.expect("id").as_str(), "evt_1");
        assert_eq!(full.tenant.expect("tenant").as_str(), "acme");
        assert_eq!(full.triggered_at.expect("time").unix_timestamp(), 1_796_032_800);
        let field = |m: EventMessage| m.check().expect_err("invalid").field;
        assert_eq!(field(EventMessage { event: "no spaces".into(), ..good() }), "event");
        assert_eq!(field(EventMessage { data: serde_json::json!(1), ..good() }), "data");
        assert_eq!(field(EventMessage { id: Some(String::new()), ..good() }), "id");
        assert_eq!(field(EventMessage { triggered_at: Some("yesterday".into()), ..good() }), "triggeredAt");
        assert_eq!(field(EventMessage { tenant: Some("\0".into()), ..good() }), "tenant");
    }
}
