//! A webhook's extra headers as stored: a JSON array of `{"name", "value",
//! "secret"}` in `webhooks.headers`, secret values sealed like the token
//! ([`crate::secret`]).

use hookline_core::{CustomHeader, CustomHeaders, HeaderName, HeaderValue, WebhookId};
use serde_json::{Map, Value};

use crate::{Error, Result, secret::EncryptionKeys};

/// The stored form of `headers` of the webhook `owner`.
pub(crate) fn seal(keys: &EncryptionKeys, owner: WebhookId, headers: &CustomHeaders) -> Result<Value> {
    let mut items = Vec::with_capacity(headers.len());
    for header in headers.iter() {
        let value = if header.secret {
            keys.seal_text(owner, header.value.expose())?
        } else {
            header.value.expose().to_owned()
        };
        let mut item = Map::new();
        item.insert("name".into(), Value::String(header.name.as_str().to_owned()));
        item.insert("value".into(), Value::String(value));
        item.insert("secret".into(), Value::Bool(header.secret));
        items.push(Value::Object(item));
    }
    Ok(Value::Array(items))
}

/// The headers of the webhook `owner` from their stored form.
pub(crate) fn open(keys: &EncryptionKeys, owner: WebhookId, stored: &Value) -> Result<CustomHeaders> {
    let bad = |detail: String| Error::corrupt("webhooks", format!("headers: {detail}"));
    let items = stored.as_array().ok_or_else(|| bad("not an array".into()))?;
    let mut headers = Vec::with_capacity(items.len());
    for item in items {
        let text = |key: &str| item.get(key).and_then(Value::as_str).ok_or_else(|| bad(format!("no `{key}`")));
        let secret = item.get("secret").and_then(Value::as_bool).unwrap_or(false);
        let name = HeaderName::parse(text("name")?).map_err(|e| bad(e.to_string()))?;
        let value = if secret { keys.open_text(owner, text("value")?, "header")? } else { text("value")?.to_owned() };
        let value = HeaderValue::parse(&name, &value).map_err(|e| bad(e.to_string()))?;
        headers.push(CustomHeader { name, value, secret });
    }
    CustomHeaders::new(headers).map_err(|e| bad(e.to_string()))
}

/// Whether a stored secret value is sealed under another key than the
/// current one (or not sealed at all).
pub(crate) fn stale(keys: &EncryptionKeys, stored: &Value) -> bool {
    stored.as_array().into_iter().flatten().any(|item| {
        item.get("secret").and_then(Value::as_bool) == Some(true)
            && item.get("value").and_then(Value::as_str).is_some_and(|v| !keys.is_current(v))
    })
}
