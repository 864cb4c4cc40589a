//! A webhook's fields and the states of webhooks and deliveries.

use std::fmt;

mod settings;
#[cfg(test)]
mod tests;

pub use settings::{
    CustomHeader, CustomHeaders, HeaderName, HeaderValue, InvalidHeader, InvalidRateLimit, MAX_HEADERS, MAX_RATE_LIMIT,
    RateLimit, Recovery,
};

const MAX_NAME_CHARS: usize = 200;
const MAX_URL_LEN: usize = 2048;
/// Longest stored (normalised) URL: normalising a URL of at most
/// [`MAX_URL_LEN`] characters (a trailing `/`, percent-encoding) can at most
/// triple it.
const MAX_STORED_URL_LEN: usize = 3 * MAX_URL_LEN + 16;
const MIN_TOKEN_CHARS: usize = 16;
const MAX_TOKEN_CHARS: usize = 256;

/// Why a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name must be 1 to {MAX_NAME_CHARS} characters, not only spaces")]
pub struct InvalidWebhookName;

/// A human label, trimmed, 1–200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookName(String);

impl WebhookName {
    /// Validates (and trims) a name: at most 200 characters as given
    /// (white space around it included), something besides white space.
    pub fn parse(text: &str) -> Result<Self, InvalidWebhookName> {
        let trimmed = text.trim();
        if trimmed.is_empty() || text.chars().count() > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
            return Err(InvalidWebhookName);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a URL is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhookUrl {
    /// Not an absolute URL.
    #[error("must be an absolute URL: {0}")]
    Malformed(String),
    /// Neither http nor https.
    #[error("must use http or https, not `{0}`")]
    Scheme(String),
    /// No host.
    #[error("must name a host")]
    NoHost,
    /// Longer than 2048 characters.
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    /// `user:password@` in the URL.
    #[error("must not contain credentials (`user:password@`); authenticate receivers by the signature")]
    Credentials,
}

/// Where a webhook's deliveries are POSTed: absolute http(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Validates a URL.
    pub fn parse(text: &str) -> Result<Self, InvalidWebhookUrl> {
        if text.len() > MAX_URL_LEN {
            return Err(InvalidWebhookUrl::TooLong);
        }
        Self::parse_stored(text)
    }

    /// Parses a URL as stored: the normalised form of one [`WebhookUrl::parse`]
    /// accepted, which may be longer than the text given.
    pub fn parse_stored(text: &str) -> Result<Self, InvalidWebhookUrl> {
        if text.len() > MAX_STORED_URL_LEN {
            return Err(InvalidWebhookUrl::TooLong);
        }
        let url = url::Url::parse(text.trim()).map_err(|e| InvalidWebhookUrl::Malformed(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidWebhookUrl::Scheme(url.scheme().to_owned()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidWebhookUrl::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidWebhookUrl::Credentials);
        }
        // Normalising can lengthen a URL (a trailing `/`, percent-encoding):
        // the stored form must itself be valid when it is read back.
        if url.as_str().len() > MAX_STORED_URL_LEN {
            return Err(InvalidWebhookUrl::TooLong);
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Why a token is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSigningToken {
    /// Too short or too long.
    #[error("must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters")]
    Length,
    /// Control characters or surrounding whitespace.
    #[error("must not contain control characters or start or end with whitespace")]
    Characters,
}

/// A webhook's signing secret: 16–256 characters. `Debug` never shows it;
/// [`SigningToken::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningToken(String);

impl SigningToken {
    /// Validates a token.
    pub fn parse(text: &str) -> Result<Self, InvalidSigningToken> {
        let count = text.chars().count();
        if !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&count) {
            return Err(InvalidSigningToken::Length);
        }
        if text.chars().any(char::is_control) || text.trim() != text {
            return Err(InvalidSigningToken::Characters);
        }
        Ok(Self(text.to_owned()))
    }

    /// The secret itself. Named so that every use stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `****` and the last four characters, for display.
    pub fn masked(&self) -> String {
        let tail: String = {
            let chars: Vec<char> = self.0.chars().collect();
            chars[chars.len().saturating_sub(4)..].iter().collect()
        };
        format!("****{tail}")
    }
}

impl fmt::Debug for SigningToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningToken(****)")
    }
}

/// A state name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(String);

/// A webhook's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthStatus {
    /// The last attempt succeeded (or none was made).
    Healthy,
    /// The last attempt failed.
    Unhealthy,
    /// Too many consecutive failures: no automatic attempts.
    Suspended,
}

impl HealthStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Suspended => "suspended",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Result<Self, UnknownState> {
        match text {
            "healthy" => Ok(Self::Healthy),
            "unhealthy" => Ok(Self::Unhealthy),
            "suspended" => Ok(Self::Suspended),
            _ => Err(UnknownState(text.to_owned())),
        }
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// The first attempt is due.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// An attempt failed; another is scheduled.
    Retrying,
    /// No attempt succeeded and none is scheduled.
    Failed,
    /// Recorded while the webhook was suspended; not attempted.
    Suspended,
    /// Not attempted: the webhook was deactivated after the event arrived.
    Skipped,
}

impl DeliveryState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Suspended => "suspended",
            Self::Skipped => "skipped",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Result<Self, UnknownState> {
        match text {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "retrying" => Ok(Self::Retrying),
            "failed" => Ok(Self::Failed),
            "suspended" => Ok(Self::Suspended),
            "skipped" => Ok(Self::Skipped),
            _ => Err(UnknownState(text.to_owned())),
        }
    }

    /// True when no automatic attempt will follow (a suspended delivery can
    /// still be recovered, so it is not terminal).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed | Self::Skipped)
    }
}
