//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Generated, not written: every operation is the `#[utoipa::path]` on its
//! handler, every body the `ToSchema` of its DTO, every constrained string
//! a schema in `schema` (held to core's `parse` by tests). What is the same
//! for every operation is added here, by [`Conventions`]: the bearer scheme,
//! the problem+json answers every `/v1` route can give, and the links a
//! stateful client (Schemathesis) follows from a created resource.
//!
//! Two tests keep it honest beyond that: every operation it lists exists in
//! the router, and the API's answers validate against it
//! (`tests/e2e/api.rs`); `scripts/fuzz-api.sh` fuzzes the API from it.

use utoipa::{
    Modify, OpenApi, ToResponse,
    openapi::{
        Content, HttpMethod, OpenApi as Document, PathItem, Ref, RefOr, Required, Response, ResponseBuilder,
        link::Link,
        path::{OperationBuilder, ParameterIn},
        request_body::RequestBody,
        schema::{Schema, SchemaType, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

use super::{
    deliveries,
    error::{Code, Problem as ProblemDocument},
    events, health, tenants, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookline",
        description = "Self-hosted webhook delivery. Errors are `application/problem+json` with a stable `code`."
    ),
    paths(
        webhooks::list, webhooks::create, webhooks::read, webhooks::update, webhooks::remove, webhooks::resume,
        webhooks::recover, webhooks::rotate_token,
        deliveries::list_for_webhook, deliveries::list, deliveries::read, deliveries::retry,
        events::ingest,
        tenants::list, tenants::remove, tenants::mint,
        health::healthz, health::readyz,
    ),
    components(
        schemas(ProblemDocument, Code),
        responses(
            BadRequest, Unauthorized, Forbidden, NotFound, Timeout, Conflict, HeaderConflict, TooLarge, UnsupportedMediaType,
            Unprocessable, Internal, Unavailable, Problem,
        ),
    ),
    modifiers(&Conventions),
    security(("bearer" = [])),
)]
struct Api;

/// The document, as served.
pub(super) fn document() -> serde_json::Value {
    serde_json::to_value(Api::openapi()).expect("an OpenAPI document always serialises")
}

/// A problem+json answer.
fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", Content::new(Some(Ref::from_schema_name("Problem"))))
        .build()
}

/// Declares the reusable error answers (`components/responses`), each with
/// the codes it carries; handlers name them in `responses(...)`.
macro_rules! problems {
    ($($name:ident = $description:literal;)*) => {$(
        #[doc = $description]
        #[derive(Debug)]
        pub(super) enum $name {}

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description).into())
            }
        }
    )*};
}

problems! {
    BadRequest = "`malformed_json` (the body is not JSON), `invalid_query` (an unknown or mistyped parameter), `bad_request`";
    Unauthorized = "`unauthorized`: no valid API key or tenant token";
    Forbidden = "`admin_only` (a tenant asked for an admin operation) or `tenant_mismatch` (a tenant named another tenant)";
    NotFound = "`not_found`: no such resource, or not the caller's";
    Timeout = "`request_timeout`: abandoned after `HOOKLINE_API_TIMEOUT_MS`; part of it may have been done";
    Conflict = "`webhook_inactive`: the webhook is inactive";
    HeaderConflict = "`header_not_set`: a header given without `value` (keep the current one) that the webhook does not have";
    TooLarge = "`payload_too_large`: the body is over the limit";
    UnsupportedMediaType = "`unsupported_media_type`: the body is not `application/json`";
    Unprocessable = "`invalid_body` (JSON of the wrong shape), `invalid_field` (`field` names it), `blocked_destination`, `tenant_webhook_limit`, `reserved_event_type` (an event type in Hookline's own `hookline.` namespace)";
    Internal = "`internal`: an unexpected failure, logged";
    Unavailable = "`database_unavailable` or `broker_unavailable`: nothing was done; try again";
    Problem = "An error (RFC 9457), with a stable `code`";
}

/// What every operation shares, added after the derive.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key (`HOOKLINE_API_KEYS`) or a tenant token"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        for (path, item) in &mut doc.paths.paths {
            let v1 = path.starts_with("/v1/");
            for operation in operations(item) {
                if let Some(RefOr::T(body)) = &mut operation.request_body {
                    absent_not_null(body);
                }
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, name: &str| {
                    responses.entry(status.to_owned()).or_insert_with(|| Ref::from_response_name(name).into());
                };
                if v1 {
                    let params: Vec<_> = operation
                        .parameters
                        .iter()
                        .flatten()
                        .filter_map(|p| match p {
                            RefOr::T(p) => Some(p),
                            RefOr::Ref(_) => None,
                        })
                        .collect();
                    let query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
                    let tenant_path = params.iter().any(|p| p.name == "tenant" && p.parameter_in == ParameterIn::Path);
                    let body = operation.request_body.is_some();
                    if query || body {
                        add("400", "BadRequest");
                    }
                    if body {
                        add("413", "TooLarge");
                        add("415", "UnsupportedMediaType");
                    }
                    if query || body || tenant_path {
                        add("422", "Unprocessable");
                    }
                    add("401", "Unauthorized");
                    add("408", "Timeout");
                    add("500", "Internal");
                    add("503", "Unavailable");
                }
                add("default", "Problem");
            }
        }
        link(
            doc,
            "createWebhook",
            "201",
            "$response.body#/id",
            &[
                "getWebhook",
                "updateWebhook",
                "deleteWebhook",
                "resumeWebhook",
                "recoverWebhook",
                "rotateWebhookToken",
                "listWebhookDeliveries",
            ],
        );
        link(doc, "listDeliveries", "200", "$response.body#/data/0/id", &["getDelivery", "retryDelivery"]);
        let metrics = OperationBuilder::new()
            .operation_id(Some("metrics"))
            .tag("operations")
            .description(Some("Prometheus text, or OpenMetrics when asked for (`Accept`)."))
            .security(SecurityRequirement::default())
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The metrics")
                    .content("text/plain", Content::default())
                    .content("application/openmetrics-text", Content::default()),
            )
            .build();
        doc.paths.add_path_operation("/metrics", vec![HttpMethod::Get], metrics);
    }
}

/// A body typed `Option<T>` (`OptionalJson`) may be left out; it is not
/// `null`, which the extractor refuses. utoipa writes it as `oneOf [T,
/// null]`: make it `T`, not required.
fn absent_not_null(body: &mut RequestBody) {
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let mut items = one_of.items.iter().filter(|s| !is_null(s));
            if let (Some(only), None) = (items.next(), items.next()) {
                content.schema = Some(only.clone());
            }
        }
    }
    body.required = Some(Required::False);
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
}

/// Links from `from`'s `status` answer to operations that take its `id`, so
/// a stateful client can follow them.
fn link(doc: &mut Document, from: &str, status: &str, id: &str, to: &[&str]) {
    let operation = doc
        .paths
        .paths
        .values_mut()
        .flat_map(operations)
        .find(|op| op.operation_id.as_deref() == Some(from))
        .expect("the operation a link starts from is in the document");
    let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else {
        panic!("{from} answers {status}");
    };
    for target in to {
        let link = Link::builder().operation_id(*target).parameter("id", id).build();
        response.links.insert((*target).to_owned(), RefOr::T(link));
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
