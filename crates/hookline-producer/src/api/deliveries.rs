//! The event log: `/v1/webhooks/{id}/deliveries` and `/v1/deliveries/{id}`.

use std::sync::Arc;

use axum::{
    Router,
    extract::Path,
    http::StatusCode,
    routing::{get, post},
};
use hookline_core::{DeliveryId, DeliveryState, format_timestamp};
use hookline_store::{Attempt, Delivery, DeliveryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, State,
    json::{AppJson, AppQuery},
    listing::{ListQuery, Listing},
    openapi::{Conflict, Forbidden, NotFound},
    schema,
    webhooks::{tenant, webhook_id},
};
use crate::{
    auth::Caller,
    ops::{self, deliveries::Detail},
    state::AppState,
};

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/webhooks/{id}/deliveries", get(list_for_webhook))
        .route("/deliveries", get(list))
        .route("/deliveries/{id}", get(read))
        .route("/deliveries/{id}/retry", post(retry))
}

/// One event to one webhook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Delivery)]
pub(super) struct DeliveryDto {
    #[schema(format = Uuid)]
    id: String,
    #[schema(value_type = schema::TenantId)]
    tenant: String,
    #[schema(value_type = schema::EventId)]
    event_id: String,
    #[schema(value_type = schema::EventType)]
    event_type: String,
    #[schema(format = Uuid)]
    webhook_id: String,
    #[schema(value_type = schema::DeliveryStateName)]
    state: &'static str,
    #[schema(minimum = 0)]
    attempt_count: i32,
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            tenant: d.tenant.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            webhook_id: d.webhook_id.to_string(),
            state: d.state.as_str(),
            attempt_count: d.attempt_count,
            next_attempt_at: d.next_attempt_at.map(format_timestamp),
            created_at: format_timestamp(d.created_at),
            updated_at: format_timestamp(d.updated_at),
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Attempt)]
pub(super) struct AttemptDto {
    #[schema(format = Uuid)]
    id: String,
    #[schema(minimum = 1)]
    attempt_no: i32,
    #[schema(value_type = schema::TriggerName)]
    trigger: String,
    #[schema(format = DateTime)]
    sent_at: String,
    #[schema(format = DateTime)]
    received_at: Option<String>,
    #[schema(minimum = 0)]
    duration_ms: i32,
    /// The receiver's HTTP status, when it answered.
    status_code: Option<i32>,
    /// Why there was no HTTP answer.
    error: Option<AttemptErrorDto>,
    /// The start of the receiver's answer.
    response_excerpt: Option<String>,
    retry_reason: Option<String>,
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    /// The attempt's trace (look it up in Tempo/Grafana), when tracing was on.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    trace_id: Option<String>,
}

/// An attempt that got no HTTP answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AttemptError)]
pub(super) struct AttemptErrorDto {
    #[schema(value_type = schema::TransportErrorName)]
    kind: String,
    message: String,
}

impl From<Attempt> for AttemptDto {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            attempt_no: a.attempt_no,
            trigger: a.trigger,
            sent_at: format_timestamp(a.sent_at),
            received_at: a.received_at.map(format_timestamp),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error_kind.map(|kind| AttemptErrorDto { kind, message: a.error_message.unwrap_or_default() }),
            response_excerpt: a.response_excerpt,
            retry_reason: a.retry_reason,
            next_attempt_at: a.next_attempt_at.map(format_timestamp),
            trace_id: a.trace_id,
        }
    }
}

/// A delivery with its payload and every attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeliveryDetail)]
pub(super) struct DeliveryDetailDto {
    #[serde(flatten)]
    delivery: DeliveryDto,
    /// The exact body that was (or will be) POSTed, byte for byte.
    #[schema(value_type = Value)]
    payload: Box<serde_json::value::RawValue>,
    attempts: Vec<AttemptDto>,
}

/// `?state=&event=` filters (with the paging parameters).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryQuery {
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
    /// Only this tenant's (admin).
    #[param(value_type = Option<schema::TenantId>)]
    tenant: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    webhook_id: Option<String>,
    #[param(value_type = Option<schema::DeliveryStateName>)]
    state: Option<String>,
    /// Only deliveries of this event type.
    #[param(value_type = Option<schema::EventType>)]
    event: Option<String>,
    /// Created at or after.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Created before.
    #[param(format = DateTime)]
    until: Option<String>,
}

impl DeliveryQuery {
    fn list_query(&self) -> ListQuery {
        ListQuery { limit: self.limit, cursor: self.cursor.clone(), tenant: None }
    }

    /// The filters, validated; `tenant` is the one asked for (the operation
    /// scopes it to the caller).
    fn filter(&self) -> Result<DeliveryFilter, ApiError> {
        Ok(DeliveryFilter {
            tenant: tenant(self.tenant.as_deref())?,
            webhook: self.webhook_id.as_deref().map(webhook_id).transpose()?,
            state: self
                .state
                .as_deref()
                .map(|s| DeliveryState::parse(s).map_err(|e| ApiError::invalid_field("state", e)))
                .transpose()?,
            event_type: self
                .event
                .as_deref()
                .map(|e| hookline_core::EventType::parse(e).map(|t| t.to_string()))
                .transpose()
                .map_err(|e| ApiError::invalid_field("event", e))?,
            since: self
                .since
                .as_deref()
                .map(|t| hookline_core::parse_timestamp(t).map_err(|e| ApiError::invalid_field("since", e)))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| hookline_core::parse_timestamp(t).map_err(|e| ApiError::invalid_field("until", e)))
                .transpose()?,
        })
    }
}

async fn list_deliveries(
    state: &State,
    caller: &Caller,
    filter: DeliveryFilter,
    query: &ListQuery,
) -> Result<Listing<DeliveryDto>, ApiError> {
    let limit = query.limit()?;
    let deliveries = ops::deliveries::list(state, caller, filter, query.cursor()?, limit).await?;
    Ok(Listing::new(deliveries.into_iter().map(DeliveryDto::from).collect(), limit, |d| d.id.clone()))
}

/// `GET /v1/deliveries`: every visible delivery, newest first, filtered.
#[utoipa::path(get, path = "/v1/deliveries", operation_id = "listDeliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, description = "A page, newest first", body = Listing<DeliveryDto>), (status = 403, response = Forbidden)))]
async fn list(
    state: State,
    caller: Caller,
    AppQuery(query): AppQuery<DeliveryQuery>,
) -> Result<AppJson<Listing<DeliveryDto>>, ApiError> {
    let filter = query.filter()?;
    Ok(AppJson(list_deliveries(&state, &caller, filter, &query.list_query()).await?))
}

/// `GET /v1/webhooks/{id}/deliveries`: one webhook's event log (`404` when
/// the webhook is not the caller's, before the query is looked at).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "deliveries",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id"), DeliveryQuery),
    responses((status = 200, description = "A page, newest first", body = Listing<DeliveryDto>), (status = 404, response = NotFound)))]
async fn list_for_webhook(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<DeliveryQuery>,
) -> Result<AppJson<Listing<DeliveryDto>>, ApiError> {
    let webhook = ops::webhooks::get(&state, &caller, webhook_id(&id)?).await?;
    let filter = DeliveryFilter { webhook: Some(webhook.id), ..query.filter()? };
    Ok(AppJson(list_deliveries(&state, &caller, filter, &query.list_query()).await?))
}

#[utoipa::path(get, path = "/v1/deliveries/{id}", operation_id = "getDelivery", tag = "deliveries", params(("id" = uuid::Uuid, Path, description = "The delivery's id")),
    responses((status = 200, description = "The delivery", body = DeliveryDetailDto), (status = 404, response = NotFound)))]
async fn read(state: State, caller: Caller, Path(id): Path<String>) -> Result<AppJson<DeliveryDetailDto>, ApiError> {
    let id = delivery_id(&id)?;
    let Detail { delivery, body, attempts } = ops::deliveries::get(&state, &caller, id).await?;
    let payload = String::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::value::RawValue::from_string(text).ok())
        .ok_or_else(|| ApiError::internal(&hookline_store::Error::corrupt_body(id)))?;
    Ok(AppJson(DeliveryDetailDto {
        delivery: delivery.into(),
        payload,
        attempts: attempts.into_iter().map(AttemptDto::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Queued {
    #[schema(format = Uuid)]
    delivery_id: String,
    status: QueuedStatus,
}

/// A manual retry is only ever queued (its outcome shows in the log).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum QueuedStatus {
    Queued,
}

/// `POST /v1/deliveries/{id}/retry`: one attempt now, whatever the webhook's
/// health (a success makes it healthy). The attempt shows in the log.
#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", operation_id = "retryDelivery", tag = "deliveries", params(("id" = uuid::Uuid, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ))]
async fn retry(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, AppJson<Queued>), ApiError> {
    let id = delivery_id(&id)?;
    ops::deliveries::retry(&state, &caller, id).await?;
    Ok((StatusCode::ACCEPTED, AppJson(Queued { delivery_id: id.to_string(), status: QueuedStatus::Queued })))
}

/// A delivery id from a path; anything else is a delivery that does not exist.
fn delivery_id(raw: &str) -> Result<DeliveryId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("delivery"))
}
