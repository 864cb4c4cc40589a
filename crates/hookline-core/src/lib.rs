//! Hookline's domain: the rules, with no I/O.
//!
//! Nothing here touches the network, the disk, the clock or a random number
//! generator: `now` and fresh UUIDs are parameters. That keeps every rule
//! testable fast and exhaustively, and makes this crate the boundary every
//! other crate builds on. Values are made only through validating `parse`
//! constructors, so holding one means it is valid.
//!
//! # Layout
//! - [`id`]: `WebhookId`, `DeliveryId`, `AttemptId`.
//! - [`event`]: `EventType`, `EventId`, `TenantId`, and `Event`, the signed
//!   envelope with its canonical bytes.
//! - [`filter`]: subscription patterns (`license.created`, `license.*`, `*`;
//!   `*` leaves out Hookline's own `hookline.*` events).
//! - [`webhook`]: a webhook's fields (`WebhookName`, `WebhookUrl`,
//!   `SigningToken`), its delivery settings (`CustomHeaders`, `RateLimit`,
//!   `Recovery`) and states (`HealthStatus`, `DeliveryState`).
//! - [`fence`]: which delivery message may act on a delivery (due times,
//!   manual attempts), and the millisecond due times messages carry.
//! - [`health`]: webhook health transitions and the decision after an attempt.
//! - [`rate`]: the per-webhook rate limit's rule (a hard count per second,
//!   and an even queue for what must wait).
//! - [`retry`]: the retry schedule, jitter and `Retry-After`.
//! - [`signature`]: `Webhook-Signature` signing and verifying.
//! - [`tenant_token`]: short-lived tokens that scope API access to one tenant.
//! - [`outcome`]: how the result of an HTTP attempt is classified.
//! - [`destination`]: which addresses deliveries may go to (SSRF rules).
//! - [`config`]: reading settings from a map of environment variables.

pub mod config;
pub mod destination;
pub mod event;
pub mod fence;
pub mod filter;
pub mod health;
pub mod id;
pub mod outcome;
pub mod rate;
pub mod retry;
pub mod signature;
pub mod tenant_token;
pub mod webhook;

pub use destination::{AllowList, Blocked, InvalidIpRange, IpRange};
pub use event::{
    Event, EventId, EventType, InvalidEventData, InvalidEventId, InvalidEventType, InvalidTenantId, InvalidTimestamp,
    RESERVED_NAMESPACE, TenantId, format_timestamp, is_reserved, parse_timestamp, validate_data,
};
pub use fence::{Fence, Waiting};
pub use filter::{EventFilter, EventFilters, InvalidEventFilter, InvalidEventFilters};
pub use health::recovery::{InvalidProbeBackoff, ProbeBackoff, Probed};
pub use health::{Attempted, Health, Next, Trigger, decide, describe_failure, needs_probe};
pub use id::{AttemptId, DeliveryId, InvalidId, WebhookId};
pub use outcome::{AttemptOutcome, TransportErrorKind, classify_status};
pub use retry::{InvalidRetrySchedule, RetrySchedule};
pub use signature::{
    InvalidStandardSecret, SignatureScheme, UnknownSignatureScheme, new_secret, sign, sign_standard, signature_headers,
    standard_key, verify, verify_standard,
};
pub use tenant_token::{InvalidTenantToken, TokenSecret, WeakTokenSecret};
pub use webhook::{
    CustomHeader, CustomHeaders, DeliveryState, HeaderName, HeaderValue, HealthStatus, InvalidHeader, InvalidRateLimit,
    InvalidSigningToken, InvalidWebhookName, InvalidWebhookUrl, RateLimit, Recovery, SigningToken, UnknownState,
    WebhookName, WebhookUrl,
};
