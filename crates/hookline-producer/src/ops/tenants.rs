//! Tenants (accounts): list them, delete one with everything it owns, mint
//! a tenant token. Administrators only: each operation takes an [`Admin`].

use hookline_core::TenantId;
use hookline_store::{TenantDeletion, TenantSummary};
use time::OffsetDateTime;

use super::Result;
use crate::{auth::Admin, state::AppState};

/// One page of tenants, by name after `after`.
pub(crate) async fn list(
    state: &AppState,
    _: Admin,
    after: Option<&TenantId>,
    limit: i64,
) -> Result<Vec<TenantSummary>> {
    Ok(state.store.list_tenants(after, limit).await?)
}

/// Deletes a tenant's rows from every table, in one transaction.
pub(crate) async fn delete(state: &AppState, _: Admin, tenant: &TenantId) -> Result<TenantDeletion> {
    let removed = state.store.delete_tenant(tenant).await?;
    tracing::info!(%tenant, rows = removed.total(), "tenant deleted");
    Ok(removed)
}

/// How long a tenant token lives: a second to a day (they are meant to be
/// short-lived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenTtl(time::Duration);

/// A token lifetime outside 1 s to a day.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("must be between 1 and {max}", max = TokenTtl::MAX_SECONDS)]
pub(crate) struct TtlOutOfRange;

impl TokenTtl {
    /// The longest lifetime, in seconds.
    pub(crate) const MAX_SECONDS: i64 = 24 * 60 * 60;

    /// A lifetime of `seconds`, 1 to [`Self::MAX_SECONDS`].
    pub(crate) fn from_seconds(seconds: i64) -> Result<Self, TtlOutOfRange> {
        if (1..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(time::Duration::seconds(seconds)))
        } else {
            Err(TtlOutOfRange)
        }
    }
}

/// A minted tenant token.
#[derive(Debug)]
pub(crate) struct Minted {
    pub(crate) token: String,
    pub(crate) expires_at: OffsetDateTime,
}

/// A token that acts for `tenant` only, until `ttl` from now.
pub(crate) fn mint(state: &AppState, _: Admin, tenant: &TenantId, ttl: TokenTtl) -> Minted {
    let expires_at = OffsetDateTime::now_utc() + ttl.0;
    Minted { token: state.auth.tokens.mint(tenant, expires_at), expires_at }
}
