//! The strings the API constrains, as named OpenAPI schemas: each says what
//! core's `parse` for that value accepts (lengths, patterns, the names of an
//! enumeration), so a client — and Schemathesis — can tell a valid request
//! from an invalid one without asking. DTO fields point at them with
//! `#[schema(value_type = …)]`; the tests below hold each one to core's rule.

use std::borrow::Cow;

use hookline_core::{AttemptOutcome, DeliveryState, HealthStatus, SignatureScheme, TransportErrorKind, Trigger};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{ObjectBuilder, Schema, SchemaFormat, Type},
    },
};

/// White space as Rust's `str::trim` sees it (Unicode `White_Space`),
/// spelled out: `\s` differs between regex dialects (ECMA's has U+FEFF and
/// not U+0085).
macro_rules! white_space {
    () => {
        "\\t\\n\\u000B\\u000C\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000"
    };
}
/// Control characters (`char::is_control`: Unicode `Cc`).
macro_rules! control {
    () => {
        "\\u0000-\\u001F\\u007F-\\u009F"
    };
}
/// A webhook's name: trimmed, at least one character that is not white
/// space, and no control characters (white space around it is trimmed off,
/// control or not).
const NAME: &str = concat!(
    "^[",
    white_space!(),
    "]*[^",
    white_space!(),
    control!(),
    "](?:[^",
    control!(),
    "]*[^",
    white_space!(),
    control!(),
    "])?[",
    white_space!(),
    "]*$"
);
/// A signing token: no control characters, no white space at either end.
const TOKEN: &str =
    concat!("^[^", white_space!(), control!(), "](?:[^", control!(), "]*[^", white_space!(), control!(), "])?$");
/// Event types: dot-separated segments of letters, digits, `_` and `-`.
const EVENT_TYPE: &str = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$";
/// Subscription patterns: an event type, one ending in `.*`, or `*`.
const EVENT_FILTER: &str = "^(\\*|[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*(\\.\\*)?)$";
/// An `http` or `https` URL with a host and no user info (the URL parser
/// takes more spellings, e.g. `HTTPS://`, white space around it).
const URL: &str = "^https?://[^/?#@\\s]+(?:[/?#].*)?$";
const TENANT: &str = "^[A-Za-z0-9._-]{1,64}$";
/// An HTTP header name (a token); the reserved names are refused after.
const HEADER_NAME: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$";
/// A header value: printable ASCII, inner spaces and tabs, nothing around.
const HEADER_VALUE: &str = "^(?:[!-~](?:[ \\t!-~]*[!-~])?)?$";
const EVENT_ID: &str = "^[A-Za-z0-9_.:-]{1,128}$";

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description))
}

fn names(description: &str, values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    string(description).enum_values(Some(values))
}

/// Declares a schema-only type (never built: `value_type` names it) whose
/// OpenAPI schema is registered under the type's name.
macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) enum $name {}

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                Schema::Object($schema.build()).into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

string_schema!(
    /// `WebhookName::parse`.
    WebhookName => string("1 to 200 characters, trimmed; not only white space, no control characters")
        .min_length(Some(1))
        .max_length(Some(200))
        .pattern(Some(NAME))
);
string_schema!(
    /// `WebhookUrl::parse` (the SSRF check comes after, as `blocked_destination`).
    WebhookUrl => string("An http(s) URL of at most 2048 bytes, without user info")
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .max_length(Some(2048))
        .pattern(Some(URL))
);
string_schema!(
    /// `SigningToken::parse`.
    SigningToken => string("16 to 256 characters, no control characters, no white space at either end")
        .min_length(Some(16))
        .max_length(Some(256))
        .pattern(Some(TOKEN))
);
string_schema!(
    /// `EventType::parse`.
    EventType => string("Dot-separated segments of letters, digits, `_` and `-`; at most 255 bytes")
        .max_length(Some(255))
        .pattern(Some(EVENT_TYPE))
);
string_schema!(
    /// `EventFilter::parse`.
    EventFilter => string("An event type, an event type followed by `.*` (every type under it), or `*`")
        .max_length(Some(255))
        .pattern(Some(EVENT_FILTER))
);
string_schema!(
    /// `TenantId::parse`.
    TenantId => string("1 to 64 letters, digits, `.`, `_` or `-`").pattern(Some(TENANT))
);
string_schema!(
    /// `EventId::parse`.
    EventId => string("1 to 128 letters, digits, `_`, `.`, `:` or `-`; generated when omitted").pattern(Some(EVENT_ID))
);
string_schema!(
    /// `HeaderName::parse`.
    HeaderName => string(
        "An HTTP header name. Refused: names starting with `webhook-`, `content-type`, `content-length`, \
         `content-encoding`, `host`, `user-agent`, `traceparent`, `tracestate` and the hop-by-hop headers"
    )
    .pattern(Some(HEADER_NAME))
);
string_schema!(
    /// `HeaderValue::parse`.
    HeaderValue => string("Printable ASCII and inner spaces or tabs, at most 4096 characters")
        .max_length(Some(4096))
        .pattern(Some(HEADER_VALUE))
);
string_schema!(
    /// `SignatureScheme::parse`.
    SignatureSchemeName => names(
        "How deliveries are signed",
        [SignatureScheme::Hookline, SignatureScheme::StandardWebhooks].map(SignatureScheme::as_str),
    )
);
string_schema!(
    /// `HealthStatus::as_str`.
    HealthStatusName => names(
        "A webhook's health",
        [HealthStatus::Healthy, HealthStatus::Unhealthy, HealthStatus::Suspended].map(HealthStatus::as_str),
    )
);
string_schema!(
    /// `DeliveryState::parse`.
    DeliveryStateName => names(
        "Where a delivery stands",
        [
            DeliveryState::Pending,
            DeliveryState::Retrying,
            DeliveryState::Delivered,
            DeliveryState::Failed,
            DeliveryState::Suspended,
            DeliveryState::Skipped,
        ]
        .map(DeliveryState::as_str),
    )
);

string_schema!(
    /// `Trigger::as_str`.
    TriggerName => names(
        "What made an attempt: its schedule, a manual retry, a recovery or a recovery probe",
        [Trigger::Scheduled, Trigger::Manual, Trigger::Recover, Trigger::Probe].map(Trigger::as_str),
    )
);
string_schema!(
    /// `AttemptOutcome::error_kind`.
    TransportErrorName => names(
        "Why an attempt got no HTTP answer",
        [
            AttemptOutcome::TimedOut,
            AttemptOutcome::Transport { kind: TransportErrorKind::Connect },
            AttemptOutcome::Transport { kind: TransportErrorKind::Dns },
            AttemptOutcome::Transport { kind: TransportErrorKind::Tls },
            AttemptOutcome::Transport { kind: TransportErrorKind::Io },
            AttemptOutcome::Transport { kind: TransportErrorKind::Blocked },
        ]
        .iter()
        .filter_map(AttemptOutcome::error_kind),
    )
);

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
