//! `/v1/tenants`: the accounts, deleting one, and minting tenant tokens.
//! Admin only.

use axum::{
    Router,
    extract::Path,
    routing::{delete, get, post},
};
use hookline_core::{TenantId, format_timestamp};
use hookline_store::TenantSummary;
use serde::{Deserialize, Serialize};

use super::{
    State,
    page::{Page, PageQuery},
};
use crate::{
    ApiError,
    auth::Caller,
    json::{AppJson, AppQuery},
};

/// Longest lifetime of a tenant token: they are meant to be short-lived.
const MAX_TOKEN_TTL_SECS: i64 = 24 * 60 * 60;

pub(super) fn router() -> Router<std::sync::Arc<super::AppState>> {
    Router::new()
        .route("/tenants", get(list))
        .route("/tenants/{tenant}", delete(remove))
        .route("/tenants/{tenant}/tokens", post(mint))
}

fn tenant_path(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(raw).map_err(|e| ApiError::invalid_field("tenant", e))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantDto {
    tenant: String,
    webhooks: i64,
    healthy: i64,
    unhealthy: i64,
    suspended: i64,
}

impl From<TenantSummary> for TenantDto {
    fn from(t: TenantSummary) -> Self {
        Self {
            tenant: t.tenant.to_string(),
            webhooks: t.webhooks,
            healthy: t.healthy,
            unhealthy: t.unhealthy,
            suspended: t.suspended,
        }
    }
}

async fn list(
    state: State,
    caller: Caller,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<AppJson<Page<TenantDto>>, ApiError> {
    caller.require_admin()?;
    let limit = query.limit()?;
    let after = query.cursor.as_deref().map(tenant_path).transpose()?;
    let tenants = state.store.list_tenants(after.as_ref(), limit).await?;
    Ok(AppJson(Page::new(tenants.into_iter().map(TenantDto::from).collect(), limit, |t| t.tenant.clone())))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Removed {
    tenant: String,
    webhooks: u64,
    events: u64,
    deliveries: u64,
    attempts: u64,
    total: u64,
}

async fn remove(state: State, caller: Caller, Path(tenant): Path<String>) -> Result<AppJson<Removed>, ApiError> {
    caller.require_admin()?;
    let tenant = tenant_path(&tenant)?;
    let removed = state.store.delete_tenant(&tenant).await?;
    tracing::info!(%tenant, rows = removed.total(), "tenant deleted");
    Ok(AppJson(Removed {
        tenant: tenant.to_string(),
        webhooks: removed.webhooks,
        events: removed.events,
        deliveries: removed.deliveries,
        attempts: removed.attempts,
        total: removed.total(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MintToken {
    #[serde(deserialize_with = "crate::json::integer")]
    ttl_seconds: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Minted {
    token: String,
    tenant: String,
    expires_at: String,
}

async fn mint(
    state: State,
    caller: Caller,
    Path(tenant): Path<String>,
    AppJson(body): AppJson<MintToken>,
) -> Result<(axum::http::StatusCode, AppJson<Minted>), ApiError> {
    caller.require_admin()?;
    let tenant = tenant_path(&tenant)?;
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&body.ttl_seconds) {
        return Err(ApiError::invalid_field("ttlSeconds", format!("must be between 1 and {MAX_TOKEN_TTL_SECS}")));
    }
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::seconds(body.ttl_seconds);
    let token = state.auth.tokens.mint(&tenant, expires_at);
    Ok((
        axum::http::StatusCode::CREATED,
        AppJson(Minted { token, tenant: tenant.to_string(), expires_at: format_timestamp(expires_at) }),
    ))
}
