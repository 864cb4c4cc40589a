//! Signing deliveries, in one of two schemes a webhook chooses
//! ([`SignatureScheme`]):
//!
//! - `hookline` (the default): `Webhook-Signature` is base64 (standard
//!   alphabet, padded) of HMAC-SHA256(key = the token's UTF-8 bytes,
//!   message = the raw body bytes).
//! - `standard-webhooks` (the Standard Webhooks specification):
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//!   with the key decoded from the `whsec_<base64>` token. The id and
//!   timestamp are signed too, so a receiver can refuse replays.
//!
//! Both send `Webhook-Id` (the delivery id, stable across retries) and
//! `Webhook-Timestamp`. During a token rotation the signature header holds
//! one signature per token, space-separated, the newest first; a receiver
//! accepts the request when any one of them verifies.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::SigningToken;

/// How a webhook's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureScheme {
    /// `Webhook-Signature: base64(HMAC-SHA256(token, body))`.
    #[default]
    Hookline,
    /// `webhook-signature: v1,base64(HMAC-SHA256(key, "id.timestamp.body"))`.
    StandardWebhooks,
}

/// Why a scheme name is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be `hookline` or `standard-webhooks`")]
pub struct UnknownSignatureScheme;

impl SignatureScheme {
    /// Parses the API and database name.
    pub fn parse(text: &str) -> Result<Self, UnknownSignatureScheme> {
        match text {
            "hookline" => Ok(Self::Hookline),
            "standard-webhooks" => Ok(Self::StandardWebhooks),
            _ => Err(UnknownSignatureScheme),
        }
    }

    /// The API and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hookline => "hookline",
            Self::StandardWebhooks => "standard-webhooks",
        }
    }

    /// Checks that `token` can key this scheme: Standard Webhooks needs a
    /// `whsec_` token whose base64 part decodes to 24 to 64 bytes.
    pub fn check_token(self, token: &SigningToken) -> Result<(), InvalidStandardSecret> {
        match self {
            Self::Hookline => Ok(()),
            Self::StandardWebhooks => standard_key(token.expose()).map(drop),
        }
    }
}

/// Why a token cannot key the Standard Webhooks scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("with the standard-webhooks scheme the token must be `whsec_` followed by base64 of 24 to 64 random bytes")]
pub struct InvalidStandardSecret;

const STANDARD_PREFIX: &str = "whsec_";

/// The Standard Webhooks key of a `whsec_<base64>` secret.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, InvalidStandardSecret> {
    let encoded = secret.strip_prefix(STANDARD_PREFIX).ok_or(InvalidStandardSecret)?;
    let key = STANDARD.decode(encoded).map_err(|_| InvalidStandardSecret)?;
    if (24..=64).contains(&key.len()) { Ok(key) } else { Err(InvalidStandardSecret) }
}

/// A fresh `whsec_` secret from 32 random bytes (the caller supplies them:
/// core has no randomness of its own). It suits both schemes.
pub fn new_secret(random: [u8; 32]) -> String {
    format!("{STANDARD_PREFIX}{}", STANDARD.encode(random))
}

fn standard_mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = mac(key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The Standard Webhooks signature (`v1,<base64>`) of one message.
pub fn sign_standard(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = standard_mac(key, msg_id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag.as_slice()))
}

/// Whether a `webhook-signature` header (space-separated `v1,<base64>`
/// entries) holds a valid signature of the message under `key`.
pub fn verify_standard(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split_whitespace().filter_map(|entry| entry.strip_prefix("v1,")).any(|candidate| {
        let Ok(expected) = STANDARD.decode(candidate) else { return false };
        standard_mac(key, msg_id, timestamp, body).verify_slice(&expected).is_ok()
    })
}

/// The headers that sign one attempt: `Webhook-Id`, `Webhook-Timestamp` and
/// `Webhook-Signature`, with one signature per token in `tokens` (the current
/// one first, then one still in its rotation grace period).
pub fn signature_headers(
    scheme: SignatureScheme,
    tokens: &[&SigningToken],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = tokens
        .iter()
        .map(|token| match scheme {
            SignatureScheme::Hookline => sign(token, body),
            // A token that is not a `whsec_` secret (checked when it was set)
            // signs with its raw bytes rather than not at all.
            SignatureScheme::StandardWebhooks => {
                let key = standard_key(token.expose()).unwrap_or_else(|_| token.expose().as_bytes().to_vec());
                sign_standard(&key, msg_id, timestamp, body)
            }
        })
        .collect();
    [
        ("Webhook-Id", msg_id.to_owned()),
        ("Webhook-Timestamp", timestamp.to_string()),
        ("Webhook-Signature", signatures.join(" ")),
    ]
}

#[cfg(test)]
mod tests;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The signature of `body` under `token`.
pub fn sign(token: &SigningToken, body: &[u8]) -> String {
    let mut mac = mac(token.expose().as_bytes());
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes().as_slice())
}

/// Whether `header` holds a valid signature of `body` under `token`. The
/// header may hold several space-separated signatures (as during a token
/// rotation); one match is enough. Comparison is constant-time; anything that
/// is not base64 simply does not match.
pub fn verify(token: &str, body: &[u8], header: &str) -> bool {
    header.split_whitespace().any(|candidate| {
        let Ok(expected) = STANDARD.decode(candidate) else { return false };
        let mut mac = mac(token.as_bytes());
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}
