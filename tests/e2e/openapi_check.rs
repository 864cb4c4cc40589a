//! A small JSON Schema checker over the subset the OpenAPI document uses,
//! for holding the API's answers to the document it serves.
//!
//! Answers are checked *closed*: a property the schema does not list is an
//! error (the document must say everything the API sends), and a keyword the
//! checker does not know is an error too, so a schema it cannot read never
//! passes by default.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Keywords that describe and do not constrain.
const ANNOTATIONS: &[&str] = &["description", "title", "default", "example", "examples", "deprecated", "readOnly"];

/// The document and the path of the value being checked (for messages).
pub(super) struct Checker<'d> {
    doc: &'d Value,
}

impl<'d> Checker<'d> {
    pub(super) fn new(doc: &'d Value) -> Self {
        Self { doc }
    }

    /// The schema `operationId` documents for `status` and `content_type`
    /// (the `default` answer when the status is not listed); the errors of
    /// `body` against it.
    pub(super) fn answer(&self, operation_id: &str, status: u16, content_type: &str, body: &Value) -> Vec<String> {
        let Some(operation) = self.operation(operation_id) else {
            return vec![format!("no operation {operation_id}")];
        };
        let responses = &operation["responses"];
        let Some(response) = responses.get(status.to_string()).or_else(|| responses.get("default")) else {
            return vec![format!("{operation_id} documents no {status} answer")];
        };
        let response = self.resolve(response);
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match response.get("content").and_then(|c| c.get(media)) {
            Some(content) => {
                let mut errors = Vec::new();
                self.check(&content["schema"], body, "$", &mut errors, true);
                errors
            }
            None if body.is_null() && response.get("content").is_none() => Vec::new(),
            None => vec![format!("{operation_id} {status} documents no {media} body")],
        }
    }

    fn operation(&self, id: &str) -> Option<&'d Value> {
        self.doc["paths"]
            .as_object()?
            .values()
            .flat_map(|item| item.as_object().into_iter().flat_map(Map::values))
            .find(|op| op["operationId"] == id)
    }

    fn resolve(&self, mut schema: &'d Value) -> &'d Value {
        while let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            schema = self.doc.pointer(target.trim_start_matches('#')).unwrap_or(&Value::Null);
        }
        schema
    }

    /// Every property name a schema lists, through `$ref` and `allOf`.
    fn listed(&self, schema: &'d Value, names: &mut BTreeSet<String>) {
        let schema = self.resolve(schema);
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            names.extend(properties.keys().cloned());
        }
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.listed(part, names);
        }
    }

    /// Checks `value` against `schema`; `closed`: no property beyond those
    /// listed (off for one part of an `allOf`, which the others complete).
    fn check(&self, schema: &'d Value, value: &Value, at: &str, errors: &mut Vec<String>, closed: bool) {
        let schema = self.resolve(schema);
        let Some(keywords) = schema.as_object() else {
            return errors.push(format!("{at}: unreadable schema {schema}"));
        };
        for (keyword, rule) in keywords {
            match keyword.as_str() {
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                        other => other.as_str().into_iter().collect(),
                    };
                    if !types.iter().any(|t| has_type(value, t)) {
                        errors.push(failure(at, value, &format!("not of type {rule}")));
                    }
                }
                "enum" => {
                    if !rule.as_array().is_some_and(|items| items.contains(value)) {
                        errors.push(failure(at, value, &format!("not one of {rule}")));
                    }
                }
                "pattern" => {
                    if let Some(text) = value.as_str() {
                        let pattern = rule.as_str().unwrap_or_default();
                        match regex::Regex::new(pattern) {
                            Ok(re) if re.is_match(text) => {}
                            Ok(_) => errors.push(failure(at, value, &format!("does not match {pattern}"))),
                            Err(e) => {
                                errors.push(failure(at, value, &format!("pattern {pattern} does not compile: {e}")))
                            }
                        }
                    }
                }
                "minLength" | "maxLength" => {
                    if let (Some(text), Some(bound)) = (value.as_str(), rule.as_u64()) {
                        let n = text.chars().count() as u64;
                        if (keyword == "minLength" && n < bound) || (keyword == "maxLength" && n > bound) {
                            errors.push(failure(at, value, &format!("{keyword} {bound}")));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(n), Some(bound)) = (value.as_f64(), rule.as_f64())
                        && ((keyword == "minimum" && n < bound) || (keyword == "maximum" && n > bound))
                    {
                        errors.push(failure(at, value, &format!("{keyword} {bound}")));
                    }
                }
                "minItems" | "maxItems" => {
                    if let (Some(items), Some(bound)) = (value.as_array(), rule.as_u64()) {
                        let n = items.len() as u64;
                        if (keyword == "minItems" && n < bound) || (keyword == "maxItems" && n > bound) {
                            errors.push(failure(at, value, &format!("{keyword} {bound}")));
                        }
                    }
                }
                "format" => {
                    if let Some(text) = value.as_str()
                        && !has_format(text, rule.as_str().unwrap_or_default())
                    {
                        errors.push(failure(at, value, &format!("not a {rule}")));
                    }
                }
                "required" => {
                    for name in rule.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        if value.is_object() && value.get(name).is_none() {
                            errors.push(failure(at, value, &format!("misses required {name}")));
                        }
                    }
                }
                "items" => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        self.check(rule, item, &format!("{at}[{i}]"), errors, true);
                    }
                }
                "properties" => {
                    for (name, item) in value.as_object().into_iter().flatten() {
                        if let Some(property) = rule.get(name) {
                            self.check(property, item, &format!("{at}.{name}"), errors, true);
                        }
                    }
                }
                "additionalProperties" if rule.is_boolean() => {}
                "allOf" => {
                    for part in rule.as_array().into_iter().flatten() {
                        self.check(part, value, at, errors, false);
                    }
                }
                "oneOf" => {
                    let passing = rule
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|option| {
                            let mut scratch = Vec::new();
                            self.check(option, value, at, &mut scratch, closed);
                            scratch.is_empty()
                        })
                        .count();
                    if passing != 1 {
                        errors.push(failure(at, value, &format!("matches {passing} of oneOf, not one")));
                    }
                }
                other if ANNOTATIONS.contains(&other) => {}
                other => errors.push(failure(at, value, &format!("the checker does not know the keyword {other}"))),
            }
        }
        let object_schema = keywords.contains_key("properties") || keywords.contains_key("allOf");
        if closed && object_schema {
            self.check_closed(schema, value, at, errors);
        }
    }

    fn check_closed(&self, schema: &'d Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(object) = value.as_object() else { return };
        let mut names = BTreeSet::new();
        self.listed(schema, &mut names);
        for name in object.keys().filter(|n| !names.contains(*n)) {
            errors.push(format!("{at}: unlisted property {name}"));
        }
    }
}

fn failure(at: &str, value: &Value, message: &str) -> String {
    format!("{at}: {message} (value {value})")
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn has_format(text: &str, format: &str) -> bool {
    match format {
        "uuid" => uuid::Uuid::parse_str(text).is_ok(),
        "date-time" => time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok(),
        "uri" => text.contains(':'),
        // Integer widths: the type check covers them.
        _ => true,
    }
}
