//! Tests of webhook fields and states.

use super::*;

fn check_url(input: &str, expected: Result<(), InvalidWebhookUrl>) {
    assert_eq!(WebhookUrl::parse(input).map(|_| ()), expected, "{input}");
}

/// URLs must be absolute http(s) with a host and no credentials.
#[test]
fn urls() {
    check_url("https://example.com/hooks", Ok(()));
    check_url("http://127.0.0.1:9000/h?x=1", Ok(()));
    check_url("ftp://example.com", Err(InvalidWebhookUrl::Scheme("ftp".into())));
    check_url("https://user:pw@example.com", Err(InvalidWebhookUrl::Credentials));
    check_url(&format!("https://e.com/{}", "a".repeat(2048)), Err(InvalidWebhookUrl::TooLong));
    assert!(matches!(WebhookUrl::parse("/relative"), Err(InvalidWebhookUrl::Malformed(_))));
    assert!(matches!(WebhookUrl::parse("example.com"), Err(InvalidWebhookUrl::Malformed(_))));
    assert!(WebhookUrl::parse("mailto:a@b.c").is_err());
    // 2048 characters as typed, 2049 once normalised (a trailing `/`): the
    // limit is on what is typed, and the stored form parses again.
    let host = format!("https://{}", "a.".repeat(1018) + "abcd");
    assert_eq!(host.len(), 2048);
    let url = WebhookUrl::parse(&host).expect("2048 characters as typed");
    assert_eq!(url.as_str().len(), 2049);
    assert_eq!(WebhookUrl::parse_stored(url.as_str()), Ok(url));
}

proptest::proptest! {
    /// Whatever parses, its stored text parses again to the same URL.
    #[test]
    fn stored_urls_parse_again(path in "[a-z0-9/%. ]{0,2100}") {
        if let Ok(url) = WebhookUrl::parse(&format!("https://example.com/{path}")) {
            proptest::prop_assert_eq!(WebhookUrl::parse_stored(url.as_str()), Ok(url.clone()));
        }
    }
}

/// Names are trimmed, non-empty and bounded.
#[test]
fn names() {
    assert_eq!(WebhookName::parse("  CRM sync ").expect("valid").as_str(), "CRM sync");
    assert!(WebhookName::parse("   ").is_err());
    assert!(WebhookName::parse(&"n".repeat(200)).is_ok());
    assert!(WebhookName::parse(&"n".repeat(201)).is_err());
    assert!(WebhookName::parse("a\u{7}b").is_err());
}

/// Tokens are 16–256 characters, never printed by Debug, masked for display.
#[test]
fn tokens() {
    assert_eq!(SigningToken::parse("short"), Err(InvalidSigningToken::Length));
    assert_eq!(SigningToken::parse(&"t".repeat(257)), Err(InvalidSigningToken::Length));
    assert_eq!(SigningToken::parse(" 0123456789abcdef"), Err(InvalidSigningToken::Characters));
    assert_eq!(SigningToken::parse("0123456789abcde\n"), Err(InvalidSigningToken::Characters));
    let token = SigningToken::parse("whsec_0123456789abcdef").expect("valid");
    assert_eq!(token.masked(), "****cdef");
    assert_eq!(format!("{token:?}"), "SigningToken(****)");
    assert_eq!(token.expose(), "whsec_0123456789abcdef");
    // Sixteen characters, counted as characters rather than bytes.
    assert!(SigningToken::parse("ééééééééééééééé1").is_ok());
}

/// State names round-trip; unknown names are refused.
#[test]
fn states() {
    for s in [HealthStatus::Healthy, HealthStatus::Unhealthy, HealthStatus::Suspended] {
        assert_eq!(HealthStatus::parse(s.as_str()), Ok(s));
    }
    for s in [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Retrying,
        DeliveryState::Failed,
        DeliveryState::Suspended,
        DeliveryState::Skipped,
    ] {
        assert_eq!(DeliveryState::parse(s.as_str()), Ok(s));
    }
    assert!(HealthStatus::parse("ok").is_err());
    assert!(DeliveryState::Delivered.is_terminal());
    assert!(!DeliveryState::Retrying.is_terminal());
    assert!(!DeliveryState::Pending.is_terminal());
    assert!(!DeliveryState::Suspended.is_terminal());
}

fn header(name: &str, value: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), value.map(str::to_owned))
}

fn headers(items: &[(String, Option<String>)], current: &CustomHeaders) -> Result<CustomHeaders, InvalidHeader> {
    CustomHeaders::parse(items.iter().map(|(n, v)| (n.as_str(), v.as_deref(), false)), current)
}

/// Names are HTTP tokens; Hookline's own and hop-by-hop headers are refused
/// whatever their case.
#[test]
fn header_names() {
    assert!(HeaderName::parse("X-Api-Key").is_ok());
    assert!(HeaderName::parse("authorization").is_ok());
    for bad in ["", "X Key", "X:Key", "Ä", &"x".repeat(65)] {
        assert!(matches!(HeaderName::parse(bad), Err(InvalidHeader::Name(_))), "{bad:?}");
    }
    for reserved in
        ["Webhook-Signature", "webhook-id", "WEBHOOK-TIMESTAMP", "Content-Type", "Host", "Transfer-Encoding", "TE"]
    {
        assert!(matches!(HeaderName::parse(reserved), Err(InvalidHeader::Reserved(_))), "{reserved}");
    }
}

/// Values are printable ASCII without CR/LF (no header injection).
#[test]
fn header_values() {
    let name = HeaderName::parse("X-Key").expect("valid");
    assert!(HeaderValue::parse(&name, "Bearer abc def").is_ok());
    assert!(HeaderValue::parse(&name, "").is_ok());
    for bad in ["a\r\nX-Evil: 1", "a\nb", " padded", "tail ", "é", "\0"] {
        assert_eq!(HeaderValue::parse(&name, bad), Err(InvalidHeader::Value("X-Key".into())), "{bad:?}");
    }
    assert!(HeaderValue::parse(&name, &"v".repeat(4097)).is_err());
    assert_eq!(format!("{:?}", HeaderValue::parse(&name, "secret").expect("valid")), "HeaderValue(..)");
}

/// At most 20, each name once; a missing value keeps the current one.
#[test]
fn header_lists() {
    let none = CustomHeaders::default();
    let twenty: Vec<_> = (0..20).map(|i| header(&format!("X-{i}"), Some("v"))).collect();
    assert_eq!(headers(&twenty, &none).map(|h| h.len()), Ok(20));
    let mut more = twenty.clone();
    more.push(header("X-20", Some("v")));
    assert_eq!(headers(&more, &none), Err(InvalidHeader::TooMany));
    // A repeated name is a repeated field: both are kept (and sent).
    let twice = [header("X-A", Some("1")), header("x-a", Some("2"))];
    assert_eq!(headers(&twice, &none).map(|h| h.len()), Ok(2));
    assert_eq!(headers(&[header("X-A", None)], &none), Err(InvalidHeader::Missing("X-A".into())));
    let current = headers(&[header("Authorization", Some("Bearer s3cret"))], &none).expect("valid");
    let kept = headers(&[header("authorization", None)], &current).expect("kept");
    assert_eq!(kept.iter().next().map(|h| h.value.expose()), Some("Bearer s3cret"));
}

/// A secret value never shows.
#[test]
fn secret_headers_are_masked() {
    let parsed = CustomHeaders::parse([("Authorization", Some("Bearer s3cret"), true)], &CustomHeaders::default())
        .expect("valid");
    let only = parsed.iter().next().expect("one");
    assert_eq!(only.shown(), "****");
    assert!(!format!("{parsed:?}").contains("s3cret"));
}

/// Rate limits and recovery settings.
#[test]
fn rate_limits_and_recovery() {
    assert_eq!(RateLimit::new(50).map(RateLimit::per_second), Ok(50));
    for bad in [0, -1, 10_001, i64::MAX] {
        assert_eq!(RateLimit::new(bad), Err(InvalidRateLimit), "{bad}");
    }
    let both = Recovery::new(true, true);
    assert!(both.probe() && both.replay());
    assert_eq!(Recovery::default(), Recovery::new(false, false));
}
