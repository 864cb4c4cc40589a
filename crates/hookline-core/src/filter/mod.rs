//! Subscription patterns: which event types a webhook receives.
//!
//! A pattern is an exact event type (`license.created`), a prefix pattern
//! ending in `.*` (`license.*` matches `license.created` and
//! `license.expiresAt.updated`, but not `license` or `licenses.created`), or
//! `*` alone, which matches every event but Hookline's own.
//!
//! Hookline's own (operational) events, `hookline.webhook.suspended` and
//! the like (see [`crate::event::is_reserved`]), go only to webhooks that
//! ask for them by name: an exact type or a prefix pattern in the
//! `hookline` namespace (`hookline.*`, `hookline.webhook.*`). `*` never
//! matches them, so a webhook that takes "everything" is not sent news of
//! its own failures, and a prefix pattern outside the namespace cannot
//! match them by construction.

use std::fmt;

use crate::event::{EventType, InvalidEventType, check_segments};

#[cfg(test)]
mod tests;

/// At most this many patterns per webhook.
pub const MAX_FILTERS: usize = 100;

/// Why a string is not a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventFilter {
    /// `*` somewhere other than alone or as the last segment.
    #[error("`{0}`: `*` may only stand alone or as the last segment after a dot (e.g. `license.*`)")]
    MisplacedWildcard(String),
    /// The event-type part is invalid.
    #[error(transparent)]
    EventType(#[from] InvalidEventType),
}

/// One subscription pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventFilter {
    text: String,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Kind {
    All,
    Exact,
    /// The text up to and including the final dot.
    Prefix(usize),
}

impl EventFilter {
    /// Validates a pattern.
    pub fn parse(text: &str) -> Result<Self, InvalidEventFilter> {
        if text == "*" {
            return Ok(Self { text: text.to_owned(), kind: Kind::All });
        }
        let (base, kind) = match text.strip_suffix(".*") {
            Some(base) => (base, Kind::Prefix(base.len() + 1)),
            None => (text, Kind::Exact),
        };
        if base.contains('*') {
            return Err(InvalidEventFilter::MisplacedWildcard(text.to_owned()));
        }
        check_segments(base)?;
        Ok(Self { text: text.to_owned(), kind })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether an event of this type goes to a webhook with this pattern.
    pub fn matches(&self, event_type: &EventType) -> bool {
        let candidate = event_type.as_str();
        match self.kind {
            Kind::All => !event_type.is_reserved(),
            Kind::Exact => candidate == self.text,
            // `license.*` keeps `license.`; the event must start with it and
            // have at least one more (non-empty, by EventType's rules) segment.
            Kind::Prefix(len) => candidate.len() > len && candidate.starts_with(&self.text[..len]),
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a list of patterns is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventFilters {
    /// No pattern at all.
    #[error("at least one event type or pattern is required")]
    Empty,
    /// More than [`MAX_FILTERS`].
    #[error("at most {MAX_FILTERS} event types or patterns are allowed")]
    TooMany,
    /// One entry is invalid.
    #[error("entry {index}: {source}")]
    Invalid {
        /// Zero-based position in the list.
        index: usize,
        /// What is wrong with it.
        source: InvalidEventFilter,
    },
}

/// A webhook's non-empty list of patterns, without duplicates, in the order
/// first given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFilters(Vec<EventFilter>);

impl EventFilters {
    /// Validates a list of patterns.
    pub fn parse<I, S>(items: I) -> Result<Self, InvalidEventFilters>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filters: Vec<EventFilter> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            if index >= MAX_FILTERS {
                return Err(InvalidEventFilters::TooMany);
            }
            let filter =
                EventFilter::parse(item.as_ref()).map_err(|source| InvalidEventFilters::Invalid { index, source })?;
            if !filters.contains(&filter) {
                filters.push(filter);
            }
        }
        if filters.is_empty() {
            return Err(InvalidEventFilters::Empty);
        }
        Ok(Self(filters))
    }

    /// Whether any pattern matches.
    pub fn matches(&self, event_type: &EventType) -> bool {
        self.0.iter().any(|f| f.matches(event_type))
    }

    /// The patterns.
    pub fn iter(&self) -> impl Iterator<Item = &EventFilter> {
        self.0.iter()
    }

    /// The patterns as written.
    pub fn as_strings(&self) -> Vec<String> {
        self.0.iter().map(|f| f.text.clone()).collect()
    }

    /// How many patterns there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: the list is never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
