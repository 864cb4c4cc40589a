//! The producer: Hookline's HTTP API.
//!
//! It manages webhooks, takes events (answering `202` only once RabbitMQ has
//! confirmed the publish) and serves the event log. It never delivers
//! anything itself; workers do.
//!
//! # Layout
//! - [`settings`]: [`Settings`], loaded from `HOOKLINE_*` variables.
//! - [`startup`]: [`build`] binds the listener and connects; [`Producer::run_until_stopped`].
//! - `routes`: one module per resource, each with its own `router()`.
//! - `auth`: the `Caller` extractor: an admin API key or a tenant token.
//! - [`error`]: [`ApiError`], answered as `application/problem+json`.
//! - `json`: the JSON extractors that route rejections through [`ApiError`].
//! - `destination`: refusing webhook URLs that point inward (SSRF).
//! - `openapi`: the OpenAPI document served at `/openapi.json`.
//! - `metrics`: request spans and counts, and `/metrics`.
//! - `ui`: the admin portal under `/ui/`.

mod auth;
mod destination;
pub mod error;
mod json;
mod metrics;
mod openapi;
mod routes;
pub mod settings;
pub mod startup;
mod ui;

pub use error::ApiError;
pub use settings::Settings;
pub use startup::{Producer, build, run};
