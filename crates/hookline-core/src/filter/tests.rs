//! Tests of subscription patterns.

use super::*;

fn check(pattern: &str, event: &str, expected: bool) {
    let filter = EventFilter::parse(pattern).expect("valid pattern");
    let event_type = EventType::parse(event).expect("valid event type");
    assert_eq!(filter.matches(&event_type), expected, "{pattern} vs {event}");
}

/// The match table: exact types, prefix patterns and `*`.
#[test]
fn matching() {
    check("license.created", "license.created", true);
    check("license.created", "license.createdx", false);
    check("license.created", "license.created.v2", false);
    check("license.*", "license.created", true);
    check("license.*", "license.expiresAt.updated", true);
    check("license.*", "license.expiring-soon", true);
    check("license.*", "license", false);
    check("license.*", "licenses.created", false);
    check("license.*", "activation.created", false);
    check("license.expiresAt.*", "license.expiresAt.updated", true);
    check("license.expiresAt.*", "license.expiresat.updated", false);
    check("*", "license.created", true);
    check("*", "a", true);
    check("activation.created", "activation.created", true);
}

/// Hookline's own events match only patterns that name them: `*` and
/// patterns outside the `hookline` namespace never do.
#[test]
fn operational_events_need_an_explicit_subscription() {
    for event in ["hookline.webhook.suspended", "hookline.webhook.unhealthy", "hookline.webhook.recovered"] {
        check("*", event, false);
        check("hookline.*", event, true);
        check("hookline.webhook.*", event, true);
        check("license.*", event, false);
        check("webhook.*", event, false);
        check("hooklines.*", event, false);
    }
    check("hookline.webhook.suspended", "hookline.webhook.suspended", true);
    check("hookline.webhook.suspended", "hookline.webhook.disabled", false);
    check("hookline.webhook.*", "hookline.probe", false);
    check("*", "hookline", false);
    check("*", "Hookline.webhook.suspended", false);
    check("hookline.*", "Hookline.webhook.suspended", false);
    check("*", "hooklines.created", true);
    check("*", "my.hookline.event", true);
    let filters = EventFilters::parse(["*", "hookline.webhook.disabled"]).expect("valid");
    assert!(filters.matches(&EventType::parse("hookline.webhook.disabled").expect("valid")));
    assert!(!filters.matches(&EventType::parse("hookline.webhook.suspended").expect("valid")));
}

/// Invalid patterns are refused with a reason.
#[test]
fn invalid_patterns() {
    for bad in ["license.*.x", "lic*", "*.created", ".*", "", "a..*", "**", "license.**", "a b", "license.*x"] {
        assert!(EventFilter::parse(bad).is_err(), "{bad:?} must be refused");
    }
    assert!(matches!(EventFilter::parse("lic*"), Err(InvalidEventFilter::MisplacedWildcard(_))));
}

/// A list is non-empty, bounded, deduplicated in first-seen order, and names
/// the position of a bad entry.
#[test]
fn lists() {
    assert_eq!(EventFilters::parse(Vec::<String>::new()), Err(InvalidEventFilters::Empty));
    let filters = EventFilters::parse(["license.*", "a.b", "license.*"]).expect("valid");
    assert_eq!(filters.as_strings(), ["license.*", "a.b"]);
    assert_eq!(filters.len(), 2);
    assert!(filters.matches(&EventType::parse("a.b").expect("valid")));
    assert!(!filters.matches(&EventType::parse("a.c").expect("valid")));
    let err = EventFilters::parse(["a", "b..c"]).expect_err("invalid");
    assert!(matches!(err, InvalidEventFilters::Invalid { index: 1, .. }));
    assert!(err.to_string().starts_with("entry 1: "));
    let many: Vec<String> = (0..101).map(|i| format!("e{i}")).collect();
    assert_eq!(EventFilters::parse(&many), Err(InvalidEventFilters::TooMany));
}

proptest::proptest! {
    /// `*` matches every valid event type outside Hookline's namespace; a type matches its own exact
    /// pattern and the prefix pattern of its first segment when it has more.
    #[test]
    fn wildcards_cover_their_types(segments in proptest::collection::vec("[a-zA-Z0-9_-]{1,8}", 1..5)) {
        let text = segments.join(".");
        let event_type = EventType::parse(&text).expect("generated types are valid");
        proptest::prop_assert_eq!(EventFilter::parse("*").expect("valid").matches(&event_type), !event_type.is_reserved());
        proptest::prop_assert!(EventFilter::parse(&text).expect("valid").matches(&event_type));
        let prefix = EventFilter::parse(&format!("{}.*", segments[0])).expect("valid");
        proptest::prop_assert_eq!(prefix.matches(&event_type), segments.len() > 1);
    }
}
