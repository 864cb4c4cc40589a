//! A webhook's delivery settings beyond its URL and token: extra request
//! headers, a rate limit, and recovery probes while it is suspended.

use std::fmt;

/// At most this many extra headers per webhook.
pub const MAX_HEADERS: usize = 20;
const MAX_HEADER_NAME_LEN: usize = 64;
const MAX_HEADER_VALUE_LEN: usize = 4096;
/// The highest rate limit, requests per second.
pub const MAX_RATE_LIMIT: u32 = 10_000;

/// Header names Hookline sets itself or that frame the request: never taken
/// from a webhook's settings. Names starting with `webhook-` (signature, id,
/// timestamp, of every scheme) are refused too.
const RESERVED: [&str; 16] = [
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "user-agent",
    "traceparent",
    "tracestate",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Why a header is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHeader {
    /// Not an HTTP token of 1 to 64 characters.
    #[error("header name `{0}` must be 1 to {MAX_HEADER_NAME_LEN} letters, digits or !#$%&'*+-.^_`|~")]
    Name(String),
    /// Hookline sets this header itself, or it frames the request.
    #[error(
        "header `{0}` is set by Hookline (signature, id, timestamp, content type, hop-by-hop) and cannot be overridden"
    )]
    Reserved(String),
    /// Control characters, surrounding whitespace, non-ASCII or too long.
    #[error(
        "the value of header `{0}` must be at most {MAX_HEADER_VALUE_LEN} printable ASCII characters, not starting or ending with whitespace"
    )]
    Value(String),
    /// More than [`MAX_HEADERS`].
    #[error("at most {MAX_HEADERS} headers")]
    TooMany,
    /// A header without a value, and none of that name stored to keep.
    #[error("header `{0}` has no value to keep: give one")]
    Missing(String),
}

/// A header name: an HTTP token, kept as written (sent as is; HTTP/1.1
/// receivers compare names case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderName(String);

impl HeaderName {
    /// Validates a name, refusing the reserved ones.
    pub fn parse(text: &str) -> Result<Self, InvalidHeader> {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if text.is_empty() || text.len() > MAX_HEADER_NAME_LEN || !text.chars().all(token) {
            return Err(InvalidHeader::Name(text.chars().take(MAX_HEADER_NAME_LEN).collect()));
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("webhook-") || RESERVED.contains(&lower.as_str()) {
            return Err(InvalidHeader::Reserved(text.to_owned()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether two names are the same header.
    pub fn same(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A header value: printable ASCII (and inner spaces and tabs), at most
/// 4096 characters. `Debug` hides it: it may be a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderValue(String);

impl HeaderValue {
    /// Validates the value of header `name`.
    pub fn parse(name: &HeaderName, text: &str) -> Result<Self, InvalidHeader> {
        let printable = |c: char| c == ' ' || c == '\t' || c.is_ascii_graphic();
        if text.len() > MAX_HEADER_VALUE_LEN || !text.chars().all(printable) || text.trim() != text {
            return Err(InvalidHeader::Value(name.0.clone()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The value. Named so that every read of a possibly secret value stands
    /// out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeaderValue(..)")
    }
}

/// One extra request header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomHeader {
    /// Its name.
    pub name: HeaderName,
    /// Its value.
    pub value: HeaderValue,
    /// Write-only: stored sealed, shown masked, like the token.
    pub secret: bool,
}

impl CustomHeader {
    /// The value as reads show it: masked when secret.
    pub fn shown(&self) -> &str {
        if self.secret { "****" } else { self.value.expose() }
    }
}

/// A webhook's extra request headers: at most [`MAX_HEADERS`], none
/// reserved. A name may come more than once: each is sent (HTTP allows a
/// repeated field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomHeaders(Vec<CustomHeader>);

impl CustomHeaders {
    /// Validates a list.
    pub fn new(headers: Vec<CustomHeader>) -> Result<Self, InvalidHeader> {
        if headers.len() > MAX_HEADERS {
            return Err(InvalidHeader::TooMany);
        }
        Ok(Self(headers))
    }

    /// Parses `(name, value, secret)` triples; a triple without a value
    /// keeps the value `current` has under that name (its first, for a
    /// repeated name: a secret the caller cannot read back), and is refused
    /// when there is none.
    pub fn parse<'a>(
        items: impl IntoIterator<Item = (&'a str, Option<&'a str>, bool)>,
        current: &CustomHeaders,
    ) -> Result<Self, InvalidHeader> {
        let mut headers = Vec::new();
        for (name, value, secret) in items {
            if headers.len() == MAX_HEADERS {
                return Err(InvalidHeader::TooMany);
            }
            let name = HeaderName::parse(name)?;
            let value = match value {
                Some(text) => HeaderValue::parse(&name, text)?,
                None => current
                    .iter()
                    .find(|h| h.name.same(&name))
                    .map(|h| h.value.clone())
                    .ok_or_else(|| InvalidHeader::Missing(name.0.clone()))?,
            };
            headers.push(CustomHeader { name, value, secret });
        }
        Self::new(headers)
    }

    /// The headers, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &CustomHeader> {
        self.0.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Why a rate limit is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rate limit must be 1 to {MAX_RATE_LIMIT} requests per second")]
pub struct InvalidRateLimit;

/// At most this many requests per second to one webhook, across every
/// worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit(u32);

impl RateLimit {
    /// Validates a limit.
    pub fn new(per_second: i64) -> Result<Self, InvalidRateLimit> {
        u32::try_from(per_second).ok().filter(|n| (1..=MAX_RATE_LIMIT).contains(n)).map(Self).ok_or(InvalidRateLimit)
    }

    /// Requests per second.
    pub fn per_second(self) -> u32 {
        self.0
    }
}

/// What Hookline does for a suspended webhook on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    probe: bool,
    replay: bool,
}

impl Recovery {
    /// The settings: `replay` takes effect only with `probe` (only a
    /// probe's success replays what was held).
    pub fn new(probe: bool, replay: bool) -> Self {
        Self { probe, replay }
    }

    /// Send a signed `hookline.probe` on a backoff while suspended; resume on
    /// the first 2xx.
    pub fn probe(self) -> bool {
        self.probe
    }

    /// On resuming by a probe, also recover what was held while suspended.
    pub fn replay(self) -> bool {
        self.replay
    }
}
