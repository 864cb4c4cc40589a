//! Short-lived tenant tokens: a bearer credential that lets one account
//! manage its own webhooks (API and portal alike) without the admin key.
//!
//! Format: `hlt1.<base64url(tenant)>.<expiry unix seconds>.<base64url(HMAC-SHA256(secret, "hlt1.<tenant b64>.<expiry>"))>`.
//! The HMAC covers everything before the last dot, so neither the tenant nor
//! the expiry can be changed without the secret. The clock is a parameter.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::TenantId;

#[cfg(test)]
mod tests;

const PREFIX: &str = "hlt1";

/// Why a tenant token is not accepted. Callers answer all of these alike
/// (401) and log the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTenantToken {
    /// Not shaped like a tenant token.
    #[error("not a tenant token")]
    Malformed,
    /// The signature does not match: forged or tampered.
    #[error("the token's signature does not match")]
    BadSignature,
    /// Its lifetime is over.
    #[error("the token expired")]
    Expired,
}

/// The secret that signs and checks tenant tokens (at least 16 bytes).
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(****)")
    }
}

/// A secret shorter than 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token secret must be at least 16 bytes")]
pub struct WeakTokenSecret;

impl TokenSecret {
    /// Wraps a secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WeakTokenSecret> {
        let bytes = bytes.into();
        if bytes.len() < 16 { Err(WeakTokenSecret) } else { Ok(Self(bytes)) }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// A key for another purpose (`purpose` separates them), derived from
    /// this secret so that it needs no setting of its own.
    pub fn derive(&self, purpose: &str) -> TokenSecret {
        TokenSecret(self.mac(&format!("derive:{purpose}")).finalize().into_bytes().as_slice().to_vec())
    }

    /// HMAC-SHA256 of `payload` under this secret, URL-safe base64.
    pub fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(payload).finalize().into_bytes().as_slice())
    }

    /// Whether `signature` is [`TokenSecret::sign`] of `payload`, in constant time.
    pub fn check(&self, payload: &str, signature: &str) -> bool {
        URL_SAFE_NO_PAD.decode(signature).is_ok_and(|sig| self.mac(payload).verify_slice(&sig).is_ok())
    }

    /// A token for `tenant` valid until `expires_at`.
    pub fn mint(&self, tenant: &TenantId, expires_at: OffsetDateTime) -> String {
        let payload = format!("{PREFIX}.{}.{}", URL_SAFE_NO_PAD.encode(tenant.as_str()), expires_at.unix_timestamp());
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes().as_slice());
        format!("{payload}.{signature}")
    }

    /// The tenant a token grants, if it is genuine and not expired at `now`.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<TenantId, InvalidTenantToken> {
        self.verify_until(token, now).map(|(tenant, _)| tenant)
    }

    /// Like [`TokenSecret::verify`], with the token's expiry.
    pub fn verify_until(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(TenantId, OffsetDateTime), InvalidTenantToken> {
        let (payload, signature) = token.rsplit_once('.').ok_or(InvalidTenantToken::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| InvalidTenantToken::Malformed)?;
        self.mac(payload).verify_slice(&signature).map_err(|_| InvalidTenantToken::BadSignature)?;
        // Genuine from here on: the fields were written by `mint`.
        let mut parts = payload.split('.');
        let (Some(PREFIX), Some(tenant), Some(expiry), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidTenantToken::Malformed);
        };
        let expiry: i64 = expiry.parse().map_err(|_| InvalidTenantToken::Malformed)?;
        if now.unix_timestamp() >= expiry {
            return Err(InvalidTenantToken::Expired);
        }
        let tenant = URL_SAFE_NO_PAD.decode(tenant).map_err(|_| InvalidTenantToken::Malformed)?;
        let tenant = String::from_utf8(tenant).map_err(|_| InvalidTenantToken::Malformed)?;
        let expires_at = OffsetDateTime::from_unix_timestamp(expiry).map_err(|_| InvalidTenantToken::Malformed)?;
        Ok((TenantId::parse(&tenant).map_err(|_| InvalidTenantToken::Malformed)?, expires_at))
    }
}

/// Whether a bearer credential looks like a tenant token (as opposed to an
/// API key), so callers can pick the check without trying both.
pub fn looks_like_tenant_token(bearer: &str) -> bool {
    bearer.starts_with("hlt1.")
}
