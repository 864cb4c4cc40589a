//! The API over HTTP: one call with the caller's key, problem answers as
//! errors, paged listings followed to the end, and the query strings and
//! JSON bodies the commands send.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::Connection;

/// A client of the producer's API.
pub(super) struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// The API answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {code}: {detail}")]
struct Problem {
    status: u16,
    code: String,
    detail: String,
}

/// A query string (`?a=1&b=2`) of the pairs that have a value, encoded.
pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        })
        .collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

impl Api {
    pub(super) fn new(connection: &Connection) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { http, base: connection.api.trim_end_matches('/').to_owned(), key: connection.key.clone() })
    }

    pub(super) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(value);
        }
        Err(Problem {
            status: status.as_u16(),
            code: value["code"].as_str().unwrap_or("error").to_owned(),
            detail: value["detail"]
                .as_str()
                .map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_owned),
        }
        .into())
    }

    pub(super) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Every item of a paged listing.
    pub(super) async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = format!("{path}{sep}limit=100");
        loop {
            let page = self.get(&next).await?;
            items.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(cursor) => next = format!("{path}{sep}limit=100&cursor={cursor}"),
                None => return Ok(items),
            }
        }
    }
}

/// A JSON object of the fields that have a value.
pub(super) fn patch_body(fields: &[(&str, Option<Value>)]) -> Value {
    Value::Object(fields.iter().filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v))).collect())
}
