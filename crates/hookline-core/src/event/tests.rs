//! Tests of event types, ids, tenants and the envelope.

use serde_json::json;
use time::macros::datetime;

use super::*;

fn check_type(input: &str, valid: bool) {
    assert_eq!(EventType::parse(input).is_ok(), valid, "EventType::parse({input:?})");
}

/// Event types allow camelCase, dashes, underscores and digits between dots,
/// and nothing else.
#[test]
fn event_type_syntax() {
    for ok in
        ["license.created", "license.expiresAt.updated", "license.expiring-soon", "activation.created", "a", "a_b.c1"]
    {
        check_type(ok, true);
    }
    for bad in ["", ".", "license..x", ".a", "a.", "a b", "a.*", "*", "licence/created", "é.x"] {
        check_type(bad, false);
    }
    check_type(&"a".repeat(255), true);
    check_type(&"a".repeat(256), false);
}

/// The error names what is wrong.
#[test]
fn event_type_errors_are_specific() {
    assert_eq!(EventType::parse(""), Err(InvalidEventType::Empty));
    assert!(matches!(EventType::parse("a..b"), Err(InvalidEventType::EmptySegment(_))));
    assert!(matches!(EventType::parse("a b"), Err(InvalidEventType::BadCharacter { bad: ' ', .. })));
}

/// Hookline's own namespace is the first segment `hookline`, in any case,
/// and nothing else.
#[test]
fn reserved_namespace() {
    for reserved in ["hookline.webhook.suspended", "hookline.probe", "hookline", "Hookline.x", "HOOKLINE.webhook.y"] {
        assert!(EventType::parse(reserved).expect("valid").is_reserved(), "{reserved}");
    }
    for open in ["license.created", "hooklines.x", "my.hookline.x", "hook.line", "hookline-x.y", "hookline_x"] {
        assert!(!EventType::parse(open).expect("valid").is_reserved(), "{open}");
    }
    for (id, reserved) in [
        ("hookline-change-42", true),
        ("HookLine-x", true),
        ("hookline", false),
        ("hooklinex-1", false),
        ("evt-hookline-1", false),
    ] {
        assert_eq!(EventId::parse(id).expect("valid").is_reserved(), reserved, "{id}");
    }
}

/// Event ids: 1–128 of a safe character set; generated ids are prefixed.
#[test]
fn event_ids() {
    assert!(EventId::parse("evt-42").is_ok());
    assert!(EventId::parse("order:2024.01_x").is_ok());
    assert_eq!(EventId::parse(""), Err(InvalidEventId::Length));
    assert_eq!(EventId::parse(&"x".repeat(129)), Err(InvalidEventId::Length));
    assert_eq!(EventId::parse("a b"), Err(InvalidEventId::BadCharacter(' ')));
    let generated = EventId::generate(Uuid::nil());
    assert_eq!(generated.as_str(), "evt_00000000000000000000000000000000");
    assert!(EventId::parse(generated.as_str()).is_ok());
}

/// Tenants: 1–64 of letters, digits, `.`, `_`, `-`; `default` by default.
#[test]
fn tenants() {
    assert_eq!(TenantId::default().as_str(), "default");
    assert!(TenantId::parse("acct_123.eu-1").is_ok());
    assert!(TenantId::parse(&"t".repeat(64)).is_ok());
    for bad in ["", "a b", "a/b", &"t".repeat(65)] {
        assert_eq!(TenantId::parse(bad), Err(InvalidTenantId), "{bad:?}");
    }
}

/// Data must be an object or an array.
#[test]
fn data_shape() {
    assert!(validate_data(&json!({})).is_ok());
    assert!(validate_data(&json!([1])).is_ok());
    for bad in [json!(1), json!("s"), json!(null), json!(true)] {
        assert_eq!(validate_data(&bad), Err(InvalidEventData));
    }
}

/// The envelope's bytes are compact JSON in the order event, data,
/// triggeredAt, with the time in UTC and its fractional digits kept.
#[test]
fn envelope_bytes_are_canonical() {
    let at = parse_timestamp("2018-04-20T13:11:34.6926949Z").expect("valid");
    let event = Event::new(EventType::parse("license.created").expect("valid"), json!({"b": 1, "a": [true]}), at);
    assert_eq!(
        String::from_utf8(event.to_body()).expect("utf-8"),
        r#"{"event":"license.created","data":{"a":[true],"b":1},"triggeredAt":"2018-04-20T13:11:34.6926949Z"}"#
    );
    let offset = parse_timestamp("2020-01-01T02:00:00+02:00").expect("valid");
    let event = Event::new(EventType::parse("a").expect("valid"), json!([]), offset);
    assert_eq!(
        String::from_utf8(event.to_body()).expect("utf-8"),
        r#"{"event":"a","data":[],"triggeredAt":"2020-01-01T00:00:00Z"}"#
    );
}

/// Timestamps parse from RFC 3339 and format back in UTC.
#[test]
fn timestamps() {
    assert_eq!(format_timestamp(datetime!(2026-11-24 09:00:00.5 UTC)), "2026-11-24T09:00:00.5Z");
    assert!(parse_timestamp("yesterday").is_err());
    assert!(parse_timestamp("2026-11-24").is_err());
    // Any year RFC 3339 allows, as long as the time exists in UTC.
    assert!(parse_timestamp("0001-01-01T00:00:00Z").is_ok());
    assert!(parse_timestamp("9999-12-31T23:59:59Z").is_ok());
    assert!(parse_timestamp("9999-12-31T23:59:59-01:00").is_err());
    assert_eq!(
        parse_timestamp("2020-01-01T02:00:00+02:00").expect("valid").offset(),
        time::UtcOffset::UTC,
        "times are kept in UTC"
    );
}
