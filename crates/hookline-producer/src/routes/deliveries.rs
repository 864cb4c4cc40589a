//! The event log: `/v1/webhooks/{id}/deliveries` and `/v1/deliveries/{id}`.

use axum::{
    Router,
    extract::{Path, Query},
    routing::get,
};
use hookline_core::{DeliveryId, format_timestamp};
use hookline_store::{Attempt, Delivery};
use serde::Serialize;

use super::{
    State,
    page::{Page, PageQuery},
    webhooks::webhook_id,
};
use crate::{ApiError, json::AppJson};

pub(super) fn router() -> Router<std::sync::Arc<super::AppState>> {
    Router::new().route("/webhooks/{id}/deliveries", get(list)).route("/deliveries/{id}", get(read))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryDto {
    id: String,
    tenant: String,
    event_id: String,
    event_type: String,
    webhook_id: String,
    state: &'static str,
    attempt_count: i32,
    next_attempt_at: Option<String>,
    created_at: String,
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptDto {
    id: String,
    attempt_no: i32,
    sent_at: String,
    received_at: Option<String>,
    duration_ms: i32,
    status_code: Option<i32>,
    error: Option<AttemptErrorDto>,
    response_excerpt: Option<String>,
    retry_reason: Option<String>,
    next_attempt_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct AttemptErrorDto {
    kind: String,
    message: String,
}

impl From<Attempt> for AttemptDto {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            attempt_no: a.attempt_no,
            sent_at: format_timestamp(a.sent_at),
            received_at: a.received_at.map(format_timestamp),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error_kind.map(|kind| AttemptErrorDto { kind, message: a.error_message.unwrap_or_default() }),
            response_excerpt: a.response_excerpt,
            retry_reason: a.retry_reason,
            next_attempt_at: a.next_attempt_at.map(format_timestamp),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryDetailDto {
    #[serde(flatten)]
    delivery: DeliveryDto,
    /// The exact body that was (or will be) POSTed, byte for byte.
    payload: Box<serde_json::value::RawValue>,
    attempts: Vec<AttemptDto>,
}

async fn list(
    state: State,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<AppJson<Page<DeliveryDto>>, ApiError> {
    let id = webhook_id(&id)?;
    let limit = query.limit()?;
    if state.store.get_webhook(id, None).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    let deliveries = state.store.list_deliveries(id, query.cursor()?, limit).await?;
    let page = Page::new(deliveries.into_iter().map(DeliveryDto::from).collect(), limit, |d| d.id.clone());
    Ok(AppJson(page))
}

async fn read(state: State, Path(id): Path<String>) -> Result<AppJson<DeliveryDetailDto>, ApiError> {
    let id: DeliveryId = id.parse().map_err(|_| ApiError::not_found("delivery"))?;
    let (delivery, body, attempts) =
        state.store.get_delivery(id, None).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
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
