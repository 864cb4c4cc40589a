//! The generated document: its shape, and that it holds together.

use serde_json::Value;

use super::*;

fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target.clone());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// OpenAPI 3.1, every `$ref` resolves, operation ids are unique, and every
/// `/v1` operation needs the bearer and says how it answers `401`.
#[test]
fn the_document_holds_together() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let mut found = Vec::new();
    refs(&doc, &mut found);
    for target in found {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} resolves");
    }
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            ids.push(operation["operationId"].as_str().expect("an operation id").to_owned());
            if path.starts_with("/v1/") {
                assert!(operation.get("security").is_none(), "{method} {path} keeps the bearer");
                assert!(operation["responses"].get("401").is_some(), "{method} {path}");
                assert!(operation["responses"].get("default").is_some(), "{method} {path}");
            } else {
                assert_eq!(operation["security"], serde_json::json!([{}]), "{method} {path} is open");
            }
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

/// The request bodies refuse what the extractors refuse: unknown fields,
/// and `null` for an optional field.
#[test]
fn request_bodies_are_closed() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for name in ["CreateWebhook", "UpdateWebhook", "Recover", "RotateToken", "IngestEvent", "MintToken"] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
        for (field, schema) in schemas[name]["properties"].as_object().expect("properties") {
            let text = schema.to_string();
            assert!(!text.contains("\"null\""), "{name}.{field} is not nullable: {text}");
        }
    }
    let rotate = &doc["paths"]["/v1/webhooks/{id}/rotate-token"]["post"]["requestBody"];
    assert_eq!(rotate["required"], false);
    assert_eq!(rotate["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/RotateToken");
}

/// Every code the API answers with is listed, under its wire name.
#[test]
fn problem_codes_are_listed() {
    let doc = document();
    let listed = doc["components"]["schemas"]["Code"]["enum"].as_array().expect("an enumeration").clone();
    for value in &listed {
        let code: Code = serde_json::from_value::<CodeName>(value.clone()).expect("a code").0;
        assert_eq!(Some(code.as_str()), value.as_str());
    }
    assert_eq!(listed.len(), 20);
}

/// Reads a code back from its wire name (the API only writes them).
struct CodeName(Code);

impl<'de> serde::Deserialize<'de> for CodeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        let all = [
            Code::BadRequest,
            Code::MalformedJson,
            Code::InvalidQuery,
            Code::Unauthorized,
            Code::AdminOnly,
            Code::TenantMismatch,
            Code::NotFound,
            Code::RequestTimeout,
            Code::WebhookInactive,
            Code::HeaderNotSet,
            Code::PayloadTooLarge,
            Code::UnsupportedMediaType,
            Code::InvalidBody,
            Code::InvalidField,
            Code::BlockedDestination,
            Code::TenantWebhookLimit,
            Code::ReservedEventType,
            Code::Internal,
            Code::BrokerUnavailable,
            Code::DatabaseUnavailable,
        ];
        all.into_iter()
            .find(|c| serde_json::to_value(c).ok().as_ref().and_then(Value::as_str) == Some(&name))
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown code {name}")))
    }
}
