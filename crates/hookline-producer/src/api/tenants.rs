//! `/v1/tenants`: the accounts, deleting one, and minting tenant tokens.
//! Admin only: a tenant caller is refused (`403`) before anything else is
//! looked at.

use std::sync::Arc;

use axum::{
    Router,
    extract::Path,
    http::StatusCode,
    routing::{delete, get, post},
};
use hookline_core::{TenantId, format_timestamp};
use hookline_store::TenantSummary;
use serde::{Deserialize, Serialize};

use super::{
    ApiError, State,
    json::{AppJson, AppQuery},
    page::{Page, PageQuery},
};
use crate::{
    auth::Caller,
    ops::{self, tenants::TokenTtl},
    state::AppState,
};

pub(super) fn router() -> Router<Arc<AppState>> {
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
    let admin = caller.admin()?;
    let limit = query.limit()?;
    let after = query.cursor.as_deref().map(tenant_path).transpose()?;
    let tenants = ops::tenants::list(&state, admin, after.as_ref(), limit).await?;
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
    let admin = caller.admin()?;
    let tenant = tenant_path(&tenant)?;
    let removed = ops::tenants::delete(&state, admin, &tenant).await?;
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
    #[serde(deserialize_with = "crate::api::json::integer")]
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
) -> Result<(StatusCode, AppJson<Minted>), ApiError> {
    let admin = caller.admin()?;
    let tenant = tenant_path(&tenant)?;
    let ttl = TokenTtl::from_seconds(body.ttl_seconds).map_err(|e| ApiError::invalid_field("ttlSeconds", e))?;
    let minted = ops::tenants::mint(&state, admin, &tenant, ttl);
    let body =
        Minted { token: minted.token, tenant: tenant.to_string(), expires_at: format_timestamp(minted.expires_at) };
    Ok((StatusCode::CREATED, AppJson(body)))
}
