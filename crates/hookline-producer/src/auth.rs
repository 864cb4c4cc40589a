//! Who is calling: an administrator (an API key) or one tenant (a tenant
//! token), and what that caller may act on. Every operation takes a
//! [`Caller`]; the API finds it in the `Authorization` header
//! (`api::caller`), the portal in its session cookie, so a tenant token
//! opens exactly the same scope in both.
//!
//! API keys are held only as SHA-256 digests and compared in constant time.
//! Nothing here knows HTTP.

use hmac::{Hmac, KeyInit, Mac};
use hookline_core::{TenantId, TokenSecret, tenant_token::looks_like_tenant_token};
use sha2::{Digest, Sha256};

use crate::settings::Secret;

/// The admin API keys, as digests.
#[derive(Clone)]
pub(crate) struct ApiKeys(Vec<KeyDigest>);

/// The SHA-256 digest of one API key: names the key without holding it (an
/// admin portal session records which key opened it, so it ends when that
/// key is removed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyDigest([u8; 32]);

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(****)")
    }
}

impl KeyDigest {
    /// Lower-case hex, to be MACed into a payload (never shown as it is).
    pub(crate) fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

fn digest(text: &str) -> KeyDigest {
    KeyDigest(Sha256::digest(text.as_bytes()).into())
}

impl ApiKeys {
    pub(crate) fn new(keys: &[Secret]) -> Self {
        Self(keys.iter().map(|k| digest(k.expose())).collect())
    }

    /// The digest of `candidate` when it is one of the keys. Constant-time
    /// in the candidate's content: every key is compared, byte by byte,
    /// without early exit.
    pub(crate) fn find(&self, candidate: &str) -> Option<KeyDigest> {
        let candidate = digest(candidate);
        let found = self.0.iter().fold(false, |found, key| {
            let diff = key.0.iter().zip(candidate.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (diff == 0)
        });
        found.then_some(candidate)
    }

    fn matches(&self, candidate: &str) -> bool {
        self.find(candidate).is_some()
    }

    /// The digests of the keys accepted now.
    pub(crate) fn digests(&self) -> &[KeyDigest] {
        &self.0
    }
}

/// Everything needed to authenticate a request.
#[derive(Clone, Debug)]
pub(crate) struct Auth {
    pub(crate) keys: ApiKeys,
    pub(crate) tokens: TokenSecret,
}

/// The tenant-token secret derived from the API keys, when none is
/// configured: every producer sharing the keys derives the same secret.
pub(crate) fn derived_token_secret(keys: &[Secret]) -> TokenSecret {
    let mut sorted: Vec<&str> = keys.iter().map(Secret::expose).collect();
    sorted.sort_unstable();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hookline tenant token secret v1").expect("any key length");
    for key in sorted {
        mac.update(key.as_bytes());
        mac.update(b"\n");
    }
    TokenSecret::new(mac.finalize().into_bytes().as_slice().to_vec()).expect("32 bytes is long enough")
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Holds an API key: sees and manages every tenant.
    Admin,
    /// Holds a tenant token: sees and manages one tenant only.
    Tenant(TenantId),
}

/// Why a caller may not do what it asked (`403` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Only an administrator may do this.
    #[error("this operation needs an admin API key")]
    AdminOnly,
    /// A tenant caller named another tenant.
    #[error("this token only acts for its own tenant")]
    TenantMismatch,
}

/// Proof that the caller is an administrator: the operations only an
/// administrator may run take one, so they cannot be called without the check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admin(());

impl Caller {
    /// The tenant this caller is confined to; `None` for an admin.
    pub(crate) fn scope(&self) -> Option<&TenantId> {
        match self {
            Self::Admin => None,
            Self::Tenant(t) => Some(t),
        }
    }

    /// An administrator's proof; tenant callers are refused.
    pub(crate) fn admin(&self) -> Result<Admin, Refused> {
        match self {
            Self::Admin => Ok(Admin(())),
            Self::Tenant(_) => Err(Refused::AdminOnly),
        }
    }

    /// The tenant a write applies to: what was asked for (default
    /// `default`) for an admin; for a tenant caller, its own tenant, and a
    /// request naming another one is refused.
    pub(crate) fn tenant_for_write(&self, requested: Option<TenantId>) -> Result<TenantId, Refused> {
        match (self, requested) {
            (Self::Admin, requested) => Ok(requested.unwrap_or_default()),
            (Self::Tenant(own), None) => Ok(own.clone()),
            (Self::Tenant(own), Some(t)) if *own == t => Ok(t),
            (Self::Tenant(_), Some(_)) => Err(Refused::TenantMismatch),
        }
    }

    /// The tenant filter of a read: an admin's optional filter, or a tenant
    /// caller's own tenant (naming another one is refused).
    pub(crate) fn tenant_for_read(&self, requested: Option<TenantId>) -> Result<Option<TenantId>, Refused> {
        match self {
            Self::Admin => Ok(requested),
            Self::Tenant(_) => self.tenant_for_write(requested).map(Some),
        }
    }
}

impl Auth {
    /// Authenticates a bearer credential.
    pub(crate) fn caller(&self, bearer: &str) -> Option<Caller> {
        if looks_like_tenant_token(bearer) {
            match self.tokens.verify(bearer, time::OffsetDateTime::now_utc()) {
                Ok(tenant) => Some(Caller::Tenant(tenant)),
                Err(e) => {
                    tracing::info!(reason = %e, "tenant token refused");
                    None
                }
            }
        } else if self.keys.matches(bearer) {
            Some(Caller::Admin)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.to_owned())
    }

    /// Only the configured keys match.
    #[test]
    fn api_keys_match_exactly() {
        let keys = ApiKeys::new(&[secret("first-key-0123456789"), secret("second-key-0123456789")]);
        assert!(keys.matches("first-key-0123456789"));
        assert!(keys.matches("second-key-0123456789"));
        assert!(!keys.matches("first-key-012345678"));
        assert!(!keys.matches(""));
        assert!(!ApiKeys::new(&[]).matches("anything"));
        let found = keys.find("second-key-0123456789").expect("a key");
        assert_eq!(keys.digests()[1], found, "names the key that matched");
        assert_eq!(found.to_hex().len(), 64);
        assert!(keys.find("third-key-0123456789").is_none());
    }

    /// Tenant callers are confined to their tenant; admins choose.
    #[test]
    fn tenant_scoping() {
        let a = TenantId::parse("a").expect("valid");
        let b = TenantId::parse("b").expect("valid");
        let tenant = Caller::Tenant(a.clone());
        assert_eq!(tenant.tenant_for_write(None).expect("own"), a);
        assert_eq!(tenant.tenant_for_write(Some(a.clone())).expect("own"), a);
        assert_eq!(tenant.tenant_for_write(Some(b.clone())).expect_err("other"), Refused::TenantMismatch);
        assert_eq!(tenant.admin().expect_err("tenant"), Refused::AdminOnly);
        assert!(Caller::Admin.admin().is_ok());
        assert_eq!(Caller::Admin.tenant_for_write(None).expect("default"), TenantId::default());
        assert_eq!(Caller::Admin.tenant_for_read(Some(b.clone())).expect("any"), Some(b));
        assert_eq!(Caller::Admin.tenant_for_read(None).expect("all"), None);
    }

    /// The derived secret does not depend on the order keys are listed in.
    #[test]
    fn derived_secret_is_order_independent() {
        let t = TenantId::parse("a").expect("valid");
        let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(30_000);
        let one = derived_token_secret(&[secret("k1-0123456789abcdef"), secret("k2-0123456789abcdef")]);
        let two = derived_token_secret(&[secret("k2-0123456789abcdef"), secret("k1-0123456789abcdef")]);
        assert_eq!(one.mint(&t, at), two.mint(&t, at));
    }
}
