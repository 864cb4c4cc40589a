//! Each constrained string's schema accepts exactly what core's `parse`
//! accepts, on a table of edge cases: a change to either side that the other
//! does not follow fails here.

use hookline_core as core;
use serde_json::Value;

use super::*;

/// Whether `text` satisfies the schema's `pattern`, `minLength` and
/// `maxLength` (JSON Schema counts characters).
fn accepts<S: PartialSchema>(text: &str) -> bool {
    let schema = serde_json::to_value(S::schema()).expect("a schema serialises");
    let chars = text.chars().count();
    let length = |key: &str| schema.get(key).and_then(Value::as_u64).map(|n| usize::try_from(n).expect("small"));
    if length("minLength").is_some_and(|min| chars < min) || length("maxLength").is_some_and(|max| chars > max) {
        return false;
    }
    let pattern = schema["pattern"].as_str().expect("a constrained string has a pattern");
    regex::Regex::new(pattern).expect("the pattern compiles").is_match(text)
}

fn agree<S: PartialSchema>(name: &str, parse: impl Fn(&str) -> bool, samples: &[String]) {
    for sample in samples {
        assert_eq!(accepts::<S>(sample), parse(sample), "{name}: the schema and core disagree on {sample:?}");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn webhook_name() {
    let mut samples =
        strings(&["crm", "  crm  ", "a b", "", "   ", "\t", "a\u{7}b", "a\nb", "é", "\u{85}x", "\tx\n", "x\u{feff}"]);
    samples.extend(["x".repeat(200), "x".repeat(201), "é".repeat(200), "é".repeat(201)]);
    samples.extend([
        format!(" {}", "x".repeat(199)),
        format!(" {}", "x".repeat(200)),
        format!("\u{200a}{}", "x".repeat(200)),
    ]);
    agree::<WebhookName>("name", |s| core::WebhookName::parse(s).is_ok(), &samples);
}

#[test]
fn signing_token() {
    let mut samples = strings(&["0123456789abcdef", "0123456789abcde", " 0123456789abcdef", "0123456789abcdef "]);
    samples.extend(strings(&["0123456789 abcdef", "0123456789\tabcdef", "0123456789\u{0}abcdef", "ééééééééééééééé"]));
    samples.extend(strings(&["\u{feff}0123456789abcdef", "0123456789abcdef\u{a0}", "\u{85}0123456789abcdef"]));
    samples.extend(["t".repeat(256), "t".repeat(257), "é".repeat(16)]);
    agree::<SigningToken>("token", |s| core::SigningToken::parse(s).is_ok(), &samples);
}

#[test]
fn event_type_and_filter() {
    let mut samples = strings(&["license.created", "a", "a_b-c.D9", "", ".a", "a.", "a..b", "a b", "é", "*"]);
    samples.extend(strings(&["license.*", "license.*.x", "lic*", "**", ".*", "a.*.*"]));
    samples.extend(["a".repeat(255), "a".repeat(256), format!("{}.*", "a".repeat(253))]);
    agree::<EventType>("event type", |s| core::EventType::parse(s).is_ok(), &samples);
    agree::<EventFilter>("event filter", |s| core::EventFilter::parse(s).is_ok(), &samples);
}

#[test]
fn headers() {
    let names = strings(&["X-Api-Key", "a", "x y", "x:y", "é", "", "a!#$%&'*+-.^_`|~"]);
    let mut names = names;
    names.extend(["n".repeat(64), "n".repeat(65)]);
    agree::<HeaderName>("header name", |s| core::HeaderName::parse(s).is_ok(), &names);
    let name = core::HeaderName::parse("X-Key").expect("valid");
    let mut values = strings(&["", "Bearer abc", "a\tb", " a", "a ", "\t", "a\r\nb", "é", "\u{7f}", "~"]);
    values.extend(["v".repeat(4096), "v".repeat(4097)]);
    agree::<HeaderValue>("header value", |s| core::HeaderValue::parse(&name, s).is_ok(), &values);
}

#[test]
fn tenant_and_event_id() {
    let mut samples = strings(&["default", "t1", "a.b_c-d", "", "a b", "a:b", "é", "a/b"]);
    samples.extend(["t".repeat(64), "t".repeat(65), "i".repeat(128), "i".repeat(129)]);
    agree::<TenantId>("tenant", |s| core::TenantId::parse(s).is_ok(), &samples);
    agree::<EventId>("event id", |s| core::EventId::parse(s).is_ok(), &samples);
}

#[test]
fn webhook_url() {
    let mut samples = strings(&["https://example.com/hooks", "http://example.com", "ftp://example.com", "/relative"]);
    samples.extend(strings(&["https://user@example.com/", "https://", "example.com"]));
    samples.extend(strings(&["https://example.com:8443/a@b?c#d", "https://a b"]));
    samples.extend([
        format!("https://example.com/{}", "p".repeat(2028)),
        format!("https://example.com/{}", "p".repeat(2029)),
    ]);
    agree::<WebhookUrl>("url", |s| core::WebhookUrl::parse(s).is_ok(), &samples);
}

/// The names each enumeration lists are the names core parses, and every
/// variant is listed (a new variant breaks the `match` below, which is the
/// reminder to list it).
#[test]
fn enumerations() {
    fn listed<S: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(S::schema()).expect("a schema serialises");
        serde_json::from_value(schema["enum"].clone()).expect("an enumeration")
    }
    for name in listed::<DeliveryStateName>() {
        match core::DeliveryState::parse(&name).expect("a state core knows") {
            DeliveryState::Pending
            | DeliveryState::Retrying
            | DeliveryState::Delivered
            | DeliveryState::Failed
            | DeliveryState::Suspended
            | DeliveryState::Skipped => {}
        }
    }
    assert_eq!(listed::<DeliveryStateName>().len(), 6);
    for name in listed::<HealthStatusName>() {
        match HealthStatus::parse(&name).expect("a status core knows") {
            HealthStatus::Healthy | HealthStatus::Unhealthy | HealthStatus::Suspended => {}
        }
    }
    assert_eq!(listed::<HealthStatusName>().len(), 3);
    for name in listed::<SignatureSchemeName>() {
        match SignatureScheme::parse(&name).expect("a scheme core knows") {
            SignatureScheme::Hookline | SignatureScheme::StandardWebhooks => {}
        }
    }
    assert_eq!(listed::<SignatureSchemeName>().len(), 2);
    for name in listed::<TriggerName>() {
        match Trigger::parse(&name).expect("a trigger core knows") {
            Trigger::Scheduled | Trigger::Manual | Trigger::Recover | Trigger::Probe => {}
        }
    }
    assert_eq!(listed::<TriggerName>().len(), 4);
    let kinds = listed::<TransportErrorName>();
    let all = [TransportErrorKind::Connect, TransportErrorKind::Dns, TransportErrorKind::Tls, TransportErrorKind::Io];
    for kind in all.into_iter().chain([TransportErrorKind::Blocked]) {
        match kind {
            TransportErrorKind::Connect
            | TransportErrorKind::Dns
            | TransportErrorKind::Tls
            | TransportErrorKind::Io
            | TransportErrorKind::Blocked => assert!(kinds.iter().any(|k| k == kind.as_str())),
        }
    }
    assert_eq!(kinds.len(), 6, "timeout and the five transport kinds");
}
