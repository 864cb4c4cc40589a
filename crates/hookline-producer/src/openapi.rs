//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Written by hand from the DTOs in `routes/` (no macro crate, nothing to
//! download at build time). Two tests keep it honest: every operation it
//! lists exists in the router (`tests/e2e/api.rs`), and a Schemathesis run
//! (`scripts/fuzz-api.sh`) checks live responses against its schemas.

use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn page_of(name: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": reference(name)},
            "nextCursor": nullable(string())
        }
    })
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": reference(name)}}})
}

fn ok(status: &str, schema: Value) -> Value {
    json!({
        status: {"description": "Success", "content": {"application/json": {"schema": schema}}},
        "default": {"$ref": "#/components/responses/Problem"}
    })
}

/// Adds OpenAPI links from a response to operations taking its id, so a
/// stateful client (and Schemathesis) can follow them.
fn with_links(mut responses: Value, status: &str, id: &str, operations: &[&str]) -> Value {
    let links: serde_json::Map<String, Value> =
        operations.iter().map(|op| ((*op).to_owned(), json!({"operationId": op, "parameters": {"id": id}}))).collect();
    responses[status]["links"] = Value::Object(links);
    responses
}

fn param(name: &str, location: &str, schema: Value) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "schema": schema})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// `?limit=&cursor=`; a cursor is the last id of the previous page.
fn paging(cursor: Value) -> Vec<Value> {
    vec![
        param("limit", "query", json!({"type": "integer", "minimum": 1, "maximum": 100})),
        param("cursor", "query", cursor),
    ]
}

fn delivery_filters() -> Vec<Value> {
    let mut params = paging(uuid());
    params.extend([
        param("tenant", "query", reference("TenantId")),
        param("webhookId", "query", uuid()),
        param("state", "query", reference("DeliveryState")),
        param("event", "query", json!({"type": "string", "maxLength": 255, "pattern": EVENT_TYPE})),
        param("since", "query", time()),
        param("until", "query", time()),
    ]);
    params
}

/// A webhook's name: at least one character that is not white space, and no
/// control characters (it is trimmed).
const NAME: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A signing token: no control characters, no white space at either end.
const TOKEN: &str =
    "^[^\\s\\u0000-\\u001F\\u007F-\\u009F](?:[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F])?$";

/// Event types: dot-separated segments of letters, digits, `_` and `-`.
const EVENT_TYPE: &str = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$";
/// Subscription patterns: an event type, one ending in `.*`, or `*`.
const EVENT_FILTER: &str = "^(\\*|[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*(\\.\\*)?)$";

fn schemas() -> Value {
    let webhook_fields = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME},
        "url": {"type": "string", "format": "uri", "pattern": "^https?://[^/@:]+", "maxLength": 2048},
        "token": {"type": "string", "minLength": 16, "maxLength": 256, "pattern": TOKEN},
        "events": {
            "type": "array", "minItems": 1, "maxItems": 100,
            "items": {"type": "string", "maxLength": 255, "pattern": EVENT_FILTER}
        },
        "active": {"type": "boolean"},
        "signatureScheme": {"type": "string", "enum": ["hookline", "standard-webhooks"]}
    });
    let mut create = webhook_fields.clone();
    create["tenant"] = reference("TenantId");
    json!({
        "TenantId": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        "DeliveryState": {
            "type": "string",
            "enum": ["pending", "retrying", "delivered", "failed", "suspended", "skipped"]
        },
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "code", "detail"],
            "properties": {
                "type": string(), "title": string(), "status": {"type": "integer"},
                "code": string(), "detail": string(), "field": string()
            }
        },
        "CreateWebhook": {
            "type": "object", "additionalProperties": false,
            "required": ["name", "url", "events"],
            "properties": create
        },
        "UpdateWebhook": {"type": "object", "additionalProperties": false, "properties": webhook_fields},
        "Webhook": {
            "type": "object",
            "required": ["id", "tenant", "name", "url", "token", "signatureScheme", "events", "active", "status",
                         "consecutiveFailures", "createdAt", "updatedAt"],
            "properties": {
                "id": string(), "tenant": string(), "name": string(), "url": string(),
                "token": {"type": "string", "description": "masked, except in the answer that generated it"},
                "signatureScheme": {"type": "string", "enum": ["hookline", "standard-webhooks"]},
                "previousTokenExpiresAt": time(),
                "events": {"type": "array", "items": string()},
                "active": {"type": "boolean"},
                "status": {"type": "string", "enum": ["healthy", "unhealthy", "suspended"]},
                "consecutiveFailures": {"type": "integer"},
                "lastSuccessAt": nullable(time()),
                "lastFailureAt": nullable(time()),
                "suspendedAt": nullable(time()),
                "createdAt": time(), "updatedAt": time()
            }
        },
        "RotateToken": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "token": {"type": "string", "minLength": 16, "maxLength": 256, "pattern": TOKEN},
                "graceSeconds": {"type": "integer", "minimum": 0, "maximum": 604800}
            }
        },
        "Recover": {
            "type": "object", "additionalProperties": false, "required": ["since"],
            "properties": {"since": time(), "until": time(), "dryRun": {"type": "boolean"}}
        },
        "Recovering": {
            "type": "object", "required": ["count", "queued", "dryRun"],
            "properties": {
                "count": {"type": "integer"}, "queued": {"type": "integer"}, "dryRun": {"type": "boolean"},
                "finishesAt": nullable(time())
            }
        },
        "IngestEvent": {
            "type": "object", "additionalProperties": false, "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "maxLength": 255, "pattern": EVENT_TYPE},
                "data": {"type": ["object", "array"]},
                "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
                "triggeredAt": time(),
                "tenant": reference("TenantId")
            }
        },
        "Accepted": {"type": "object", "required": ["id"], "properties": {"id": string()}},
        "Delivery": {
            "type": "object",
            "required": ["id", "tenant", "eventId", "eventType", "webhookId", "state", "attemptCount", "createdAt",
                         "updatedAt"],
            "properties": {
                "id": string(), "tenant": string(), "eventId": string(), "eventType": string(),
                "webhookId": string(), "state": reference("DeliveryState"),
                "attemptCount": {"type": "integer"}, "nextAttemptAt": nullable(time()),
                "createdAt": time(), "updatedAt": time()
            }
        },
        "Attempt": {
            "type": "object",
            "required": ["id", "attemptNo", "trigger", "sentAt", "durationMs"],
            "properties": {
                "id": string(), "attemptNo": {"type": "integer"},
                "trigger": {"type": "string", "enum": ["scheduled", "manual", "recover"]},
                "sentAt": time(), "receivedAt": nullable(time()), "durationMs": {"type": "integer"},
                "statusCode": nullable(json!({"type": "integer"})),
                "error": nullable(json!({
                    "type": "object", "required": ["kind", "message"],
                    "properties": {
                        "kind": {"type": "string", "enum": ["timeout", "connect", "dns", "tls", "io", "blocked"]},
                        "message": string()
                    }
                })),
                "responseExcerpt": nullable(string()),
                "retryReason": nullable(string()),
                "nextAttemptAt": nullable(time()),
                "traceId": nullable(json!({"type": "string", "pattern": "^[0-9a-f]{32}$"}))
            }
        },
        "DeliveryDetail": {
            "allOf": [reference("Delivery"), {
                "type": "object", "required": ["payload", "attempts"],
                "properties": {"payload": {}, "attempts": {"type": "array", "items": reference("Attempt")}}
            }]
        },
        "Queued": {
            "type": "object", "required": ["deliveryId", "status"],
            "properties": {"deliveryId": string(), "status": string()}
        },
        "Tenant": {
            "type": "object", "required": ["tenant", "webhooks", "healthy", "unhealthy", "suspended"],
            "properties": {
                "tenant": string(), "webhooks": {"type": "integer"}, "healthy": {"type": "integer"},
                "unhealthy": {"type": "integer"}, "suspended": {"type": "integer"}
            }
        },
        "TenantRemoved": {
            "type": "object", "required": ["tenant", "webhooks", "events", "deliveries", "attempts", "total"],
            "properties": {
                "tenant": string(), "webhooks": {"type": "integer"}, "events": {"type": "integer"},
                "deliveries": {"type": "integer"}, "attempts": {"type": "integer"}, "total": {"type": "integer"}
            }
        },
        "MintToken": {
            "type": "object", "additionalProperties": false, "required": ["ttlSeconds"],
            "properties": {"ttlSeconds": {"type": "integer", "minimum": 1, "maximum": 86400}}
        },
        "TenantToken": {
            "type": "object", "required": ["token", "tenant", "expiresAt"],
            "properties": {"token": string(), "tenant": string(), "expiresAt": time()}
        }
    })
}

/// The document.
pub(crate) fn document() -> Value {
    let id = || param("id", "path", uuid());
    let tenant = || param("tenant", "path", reference("TenantId"));
    let mut list_webhooks = paging(uuid());
    list_webhooks.push(param("tenant", "query", reference("TenantId")));
    let mut webhook_log = delivery_filters();
    webhook_log.insert(0, id());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Hookline",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted webhook delivery. Errors are application/problem+json with a stable `code`."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/webhooks": {
                "get": {"operationId": "listWebhooks", "parameters": list_webhooks, "responses": ok("200", page_of("Webhook"))},
                "post": {
                    "operationId": "createWebhook",
                    "requestBody": body("CreateWebhook"),
                    "responses": with_links(ok("201", reference("Webhook")), "201", "$response.body#/id", &[
                        "getWebhook", "updateWebhook", "deleteWebhook", "resumeWebhook", "recoverWebhook",
                        "rotateWebhookToken", "listWebhookDeliveries"
                    ])
                }
            },
            "/v1/webhooks/{id}": {
                "parameters": [id()],
                "get": {"operationId": "getWebhook", "responses": ok("200", reference("Webhook"))},
                "patch": {"operationId": "updateWebhook", "requestBody": body("UpdateWebhook"), "responses": ok("200", reference("Webhook"))},
                "delete": {
                    "operationId": "deleteWebhook",
                    "responses": {"204": {"description": "Deleted"}, "default": {"$ref": "#/components/responses/Problem"}}
                }
            },
            "/v1/webhooks/{id}/resume": {
                "parameters": [id()],
                "post": {"operationId": "resumeWebhook", "responses": ok("200", reference("Webhook"))}
            },
            "/v1/webhooks/{id}/recover": {
                "parameters": [id()],
                "post": {
                    "operationId": "recoverWebhook",
                    "requestBody": body("Recover"),
                    "responses": {
                        "200": {"description": "Dry run", "content": {"application/json": {"schema": reference("Recovering")}}},
                        "202": {"description": "Queued", "content": {"application/json": {"schema": reference("Recovering")}}},
                        "default": {"$ref": "#/components/responses/Problem"}
                    }
                }
            },
            "/v1/webhooks/{id}/rotate-token": {
                "parameters": [id()],
                "post": {
                    "operationId": "rotateWebhookToken",
                    "requestBody": {"required": false, "content": {"application/json": {"schema": reference("RotateToken")}}},
                    "responses": ok("200", reference("Webhook"))
                }
            },
            "/v1/webhooks/{id}/deliveries": {
                "get": {"operationId": "listWebhookDeliveries", "parameters": webhook_log, "responses": ok("200", page_of("Delivery"))}
            },
            "/v1/events": {
                "post": {"operationId": "ingestEvent", "requestBody": body("IngestEvent"), "responses": ok("202", reference("Accepted"))}
            },
            "/v1/deliveries": {
                "get": {
                    "operationId": "listDeliveries",
                    "parameters": delivery_filters(),
                    "responses": with_links(ok("200", page_of("Delivery")), "200", "$response.body#/data/0/id", &[
                        "getDelivery", "retryDelivery"
                    ])
                }
            },
            "/v1/deliveries/{id}": {
                "parameters": [id()],
                "get": {"operationId": "getDelivery", "responses": ok("200", reference("DeliveryDetail"))}
            },
            "/v1/deliveries/{id}/retry": {
                "parameters": [id()],
                "post": {"operationId": "retryDelivery", "responses": ok("202", reference("Queued"))}
            },
            "/v1/tenants": {
                "get": {"operationId": "listTenants", "parameters": paging(reference("TenantId")), "responses": ok("200", page_of("Tenant"))}
            },
            "/v1/tenants/{tenant}": {
                "parameters": [tenant()],
                "delete": {"operationId": "deleteTenant", "responses": ok("200", reference("TenantRemoved"))}
            },
            "/v1/tenants/{tenant}/tokens": {
                "parameters": [tenant()],
                "post": {"operationId": "mintTenantToken", "requestBody": body("MintToken"), "responses": ok("201", reference("TenantToken"))}
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz", "security": [],
                    "responses": {"200": {"description": "Alive"}}
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics", "security": [],
                    "responses": {"200": {"description": "Prometheus text, or OpenMetrics when asked for"}}
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz", "security": [],
                    "responses": {"200": {"description": "Ready"}, "503": {"description": "Database or broker unreachable"}}
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key or a tenant token"}
            },
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457)",
                    "content": {"application/problem+json": {"schema": reference("Problem")}}
                }
            },
            "schemas": schemas()
        }
    })
}
