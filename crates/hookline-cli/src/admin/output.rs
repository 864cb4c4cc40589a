//! What the commands print: a plain table of chosen fields, or the API's
//! JSON with `--json`.

use serde_json::Value;

use super::Connection;

/// A field as a table cell: `-` for null, lists joined with commas, an
/// error object by its kind.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.contains_key("kind") => text(&o["kind"]),
        other => other.to_string(),
    }
}

/// A plain table: one row per item, the given fields as columns.
pub(super) fn table(items: &[Value], columns: &[(&str, &str)]) -> String {
    let rows: Vec<Vec<String>> =
        items.iter().map(|item| columns.iter().map(|(_, field)| text(&item[*field])).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| rows.iter().map(|r| r[i].chars().count()).chain([title.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(columns.iter().map(|(t, _)| (*t).to_owned()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

/// A webhook's columns.
pub(super) const WEBHOOK_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("TENANT", "tenant"),
    ("NAME", "name"),
    ("URL", "url"),
    ("EVENTS", "events"),
    ("ACTIVE", "active"),
    ("STATUS", "status"),
    ("FAILURES", "consecutiveFailures"),
];

/// A delivery's columns.
pub(super) const DELIVERY_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("EVENT", "eventType"),
    ("EVENT ID", "eventId"),
    ("STATE", "state"),
    ("ATTEMPTS", "attemptCount"),
    ("CREATED", "createdAt"),
    ("NEXT ATTEMPT", "nextAttemptAt"),
];

/// An attempt's columns.
pub(super) const ATTEMPT_COLUMNS: &[(&str, &str)] = &[
    ("#", "attemptNo"),
    ("TRIGGER", "trigger"),
    ("SENT", "sentAt"),
    ("STATUS", "statusCode"),
    ("ERROR", "error"),
    ("MS", "durationMs"),
    ("RETRY REASON", "retryReason"),
    ("NEXT", "nextAttemptAt"),
    ("TRACE", "traceId"),
];

/// Prints `value` (an item or a list) as JSON or as a table; a token
/// shown unmasked (on create or rotate) is printed once below it.
pub(super) fn show(connection: &Connection, value: &Value, columns: &[(&str, &str)]) {
    if connection.json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else if let Some(items) = value.as_array() {
        println!("{}", table(items, columns));
    } else {
        println!("{}", table(std::slice::from_ref(value), columns));
        if let Some(token) = value["token"].as_str().filter(|t| !t.starts_with("****")) {
            println!("\ntoken (shown once, keep it): {token}");
        }
    }
}
