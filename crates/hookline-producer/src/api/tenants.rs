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
use utoipa::ToSchema;

use super::{
    ApiError, State,
    json::{AppJson, AppQuery},
    listing::{ListQuery, Listing},
    openapi::Forbidden,
    schema,
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

/// A tenant and how its webhooks are doing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Tenant)]
pub(super) struct TenantDto {
    #[schema(value_type = schema::TenantId)]
    tenant: String,
    #[schema(minimum = 0)]
    webhooks: i64,
    #[schema(minimum = 0)]
    healthy: i64,
    #[schema(minimum = 0)]
    unhealthy: i64,
    #[schema(minimum = 0)]
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

#[utoipa::path(get, path = "/v1/tenants", operation_id = "listTenants", tag = "tenants",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<schema::TenantId>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses((status = 200, description = "A page, by name", body = Listing<TenantDto>), (status = 403, response = Forbidden)))]
async fn list(
    state: State,
    caller: Caller,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<Listing<TenantDto>>, ApiError> {
    let admin = caller.admin()?;
    let limit = query.limit()?;
    let after = query.cursor.as_deref().map(tenant_path).transpose()?;
    let tenants = ops::tenants::list(&state, admin, after.as_ref(), limit).await?;
    Ok(AppJson(Listing::new(tenants.into_iter().map(TenantDto::from).collect(), limit, |t| t.tenant.clone())))
}

/// What deleting a tenant removed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TenantRemoved)]
pub(super) struct Removed {
    #[schema(value_type = schema::TenantId)]
    tenant: String,
    webhooks: u64,
    events: u64,
    deliveries: u64,
    attempts: u64,
    total: u64,
}

/// `DELETE /v1/tenants/{tenant}`: the tenant's webhooks, events, deliveries
/// and attempts, all of them.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", operation_id = "deleteTenant", tag = "tenants", params(("tenant" = schema::TenantId, Path)),
    responses((status = 200, description = "Removed", body = Removed), (status = 403, response = Forbidden)))]
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

/// `POST /v1/tenants/{tenant}/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct MintToken {
    /// How long the token is valid: at most a day.
    #[serde(deserialize_with = "crate::api::json::integer")]
    #[schema(minimum = 1, maximum = 86_400)]
    ttl_seconds: i64,
}

/// A tenant token: a bearer credential for this tenant only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TenantToken)]
pub(super) struct Minted {
    token: String,
    #[schema(value_type = schema::TenantId)]
    tenant: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// `POST /v1/tenants/{tenant}/tokens`: a token for the tenant's own API
/// calls and portal.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", operation_id = "mintTenantToken", tag = "tenants", params(("tenant" = schema::TenantId, Path)),
    request_body = MintToken,
    responses((status = 201, description = "Minted", body = Minted), (status = 403, response = Forbidden)))]
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
