//! Events: their type, id and tenant, and the signed envelope.
//!
//! The envelope's bytes are produced here, once, at dispatch; they are stored
//! and POSTed as stored on every attempt, so the signature always covers
//! exactly what the receiver gets.

use std::fmt;

use serde::Serialize;
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};
use uuid::Uuid;

#[cfg(test)]
mod tests;

const MAX_EVENT_TYPE_LEN: usize = 255;
const MAX_EVENT_ID_LEN: usize = 128;
const MAX_TENANT_LEN: usize = 64;

/// Why a string is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventType {
    /// Nothing was given.
    #[error("an event type must not be empty")]
    Empty,
    /// Longer than 255 bytes.
    #[error("an event type must be at most {MAX_EVENT_TYPE_LEN} characters")]
    TooLong,
    /// Two dots in a row, or a dot at either end.
    #[error("`{0}` has an empty segment: segments are separated by single dots")]
    EmptySegment(String),
    /// A character outside letters, digits, `_`, `-` and `.`.
    #[error("`{text}` contains `{bad}`: only letters, digits, `_`, `-` and `.` are allowed")]
    BadCharacter {
        /// The whole input.
        text: String,
        /// The first offending character.
        bad: char,
    },
}

/// Checks the dot-separated segment syntax shared by event types and the
/// prefix of `a.b.*` patterns.
pub(crate) fn check_segments(text: &str) -> Result<(), InvalidEventType> {
    if text.is_empty() {
        return Err(InvalidEventType::Empty);
    }
    if text.len() > MAX_EVENT_TYPE_LEN {
        return Err(InvalidEventType::TooLong);
    }
    if let Some(bad) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(InvalidEventType::BadCharacter { text: text.to_owned(), bad });
    }
    if text.split('.').any(str::is_empty) {
        return Err(InvalidEventType::EmptySegment(text.to_owned()));
    }
    Ok(())
}

/// The first segment of Hookline's own (operational) event types, such as
/// `hookline.webhook.suspended`.
pub const RESERVED_NAMESPACE: &str = "hookline";

/// How the ids of Hookline's own events start (`hookline-change-42`).
pub const RESERVED_ID_PREFIX: &str = "hookline-";

/// Whether `text` is in Hookline's own namespace: its first dot-separated
/// segment is [`RESERVED_NAMESPACE`], in any case (`hookline.webhook.x`,
/// `Hookline.x`, `hookline`). Tenants may not send such events, and `*`
/// does not match them.
pub fn is_reserved(text: &str) -> bool {
    let first = text.split('.').next().unwrap_or(text);
    first.eq_ignore_ascii_case(RESERVED_NAMESPACE)
}

/// An event type such as `license.created`, `license.expiresAt.updated` or
/// `license.expiring-soon`: dot-separated segments of ASCII letters, digits,
/// `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventType(String);

impl EventType {
    /// Validates an event type.
    pub fn parse(text: &str) -> Result<Self, InvalidEventType> {
        check_segments(text)?;
        Ok(Self(text.to_owned()))
    }

    /// Whether it is one of Hookline's own types (see [`is_reserved`]).
    pub fn is_reserved(&self) -> bool {
        is_reserved(&self.0)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventId {
    /// Empty or longer than 128 characters.
    #[error("an event id must be 1 to {MAX_EVENT_ID_LEN} characters")]
    Length,
    /// A character outside the allowed set.
    #[error("an event id may only contain letters, digits, `_`, `-`, `.` and `:` (found `{0}`)")]
    BadCharacter(char),
}

/// An event's id: chosen by the client (making ingestion idempotent) or
/// generated. 1–128 ASCII letters, digits, `_`, `-`, `.`, `:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    /// Validates a client-chosen id.
    pub fn parse(text: &str) -> Result<Self, InvalidEventId> {
        if text.is_empty() || text.len() > MAX_EVENT_ID_LEN {
            return Err(InvalidEventId::Length);
        }
        if let Some(bad) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))) {
            return Err(InvalidEventId::BadCharacter(bad));
        }
        Ok(Self(text.to_owned()))
    }

    /// Whether it is in the form of Hookline's own event ids
    /// ([`RESERVED_ID_PREFIX`], in any case): tenants may not use it, so
    /// they cannot take the id of an operational event before it is sent.
    pub fn is_reserved(&self) -> bool {
        self.0.get(..RESERVED_ID_PREFIX.len()).is_some_and(|start| start.eq_ignore_ascii_case(RESERVED_ID_PREFIX))
    }

    /// An id made from a caller-supplied UUID: `evt_<32 hex digits>`.
    pub fn generate(uuid: Uuid) -> Self {
        Self(format!("evt_{}", uuid.simple()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EventId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tenant is 1 to {MAX_TENANT_LEN} letters, digits, `.`, `_` or `-`")]
pub struct InvalidTenantId;

/// The account an event or webhook belongs to: the licensing service's
/// account id, 1–64 ASCII letters, digits, `.`, `_`, `-`. `default` when
/// none is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id.
    pub fn parse(text: &str) -> Result<Self, InvalidTenantId> {
        let valid = !text.is_empty()
            && text.len() <= MAX_TENANT_LEN
            && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid { Ok(Self(text.to_owned())) } else { Err(InvalidTenantId) }
    }

    /// The tenant of single-account use: `default`.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Event data that is neither an object nor an array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a JSON object or array")]
pub struct InvalidEventData;

/// Event data must be a JSON object or array.
pub fn validate_data(data: &serde_json::Value) -> Result<(), InvalidEventData> {
    if data.is_object() || data.is_array() { Ok(()) } else { Err(InvalidEventData) }
}

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 timestamp up to 9999-12-31T23:59:59Z (e.g. 2018-04-20T13:11:34.6926949Z)")]
pub struct InvalidTimestamp(String);

/// Parses an RFC 3339 timestamp, in UTC. One whose UTC time would fall past
/// the year 9999 (`9999-12-31T23:30:00-01:00`) is refused: it cannot be
/// represented, stored or formatted.
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, InvalidTimestamp> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| InvalidTimestamp(text.to_owned()))?;
    at.checked_to_offset(UtcOffset::UTC).ok_or_else(|| InvalidTimestamp(text.to_owned()))
}

/// Formats a time as RFC 3339 in UTC (`Z`), with as many fractional digits
/// as it has (none when whole seconds).
pub fn format_timestamp(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("every UTC time from a valid OffsetDateTime between years 0 and 9999 formats as RFC 3339")
}

/// The envelope POSTed to receivers and signed.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    event_type: EventType,
    data: serde_json::Value,
    triggered_at: OffsetDateTime,
}

/// The wire shape of the envelope; field order is the byte order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    event: &'a str,
    data: &'a serde_json::Value,
    triggered_at: String,
}

impl Event {
    /// An envelope.
    pub fn new(event_type: EventType, data: serde_json::Value, triggered_at: OffsetDateTime) -> Self {
        Self { event_type, data, triggered_at }
    }

    /// The type.
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// The payload.
    pub fn data(&self) -> &serde_json::Value {
        &self.data
    }

    /// When it happened.
    pub fn triggered_at(&self) -> OffsetDateTime {
        self.triggered_at
    }

    /// The canonical bytes: compact JSON
    /// `{"event":…,"data":…,"triggeredAt":"<RFC 3339 UTC>"}`, in that order.
    pub fn to_body(&self) -> Vec<u8> {
        let envelope = Envelope {
            event: self.event_type.as_str(),
            data: &self.data,
            triggered_at: format_timestamp(self.triggered_at),
        };
        serde_json::to_vec(&envelope).expect("a JSON value and strings always serialise")
    }
}
