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
