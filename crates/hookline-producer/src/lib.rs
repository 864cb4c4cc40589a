//! The producer: Hookline's HTTP API.
//!
//! It manages webhooks, takes events (answering `202` only once RabbitMQ has
//! confirmed the publish) and serves the event log. It never delivers
//! anything itself; workers do.
//!
//! # Layout
//! Dependencies point one way: `startup` → {`api`, `ui`, `web`, `metrics`}
//! → `ops` → `state` → `auth`.
//! - [`settings`]: [`Settings`], loaded from `HOOKLINE_*` variables.
//! - [`startup`]: [`build`] binds the listener and connects;
//!   [`Producer::run_until_stopped`] serves.
//! - [`api`]: the HTTP API, one module per resource; DTOs, [`ApiError`]
//!   (problem+json), the `Caller` middleware.
//! - `ui`: the admin portal under `/ui/`.
//! - `web`: what every request passes: its span (`TraceLayer`), the
//!   timeout, the body limit.
//! - `metrics`: request counts and `/metrics`.
//! - `ops`: the operations both the API and the portal call, with their
//!   error type.
//! - `state`: `AppState`, what every operation can reach.
//! - `auth`: credentials and the `Caller` (an admin or one tenant).

pub mod api;
mod auth;
mod metrics;
mod ops;
pub mod settings;
pub mod startup;
mod state;
mod ui;
mod web;

pub use api::ApiError;
pub use settings::Settings;
pub use startup::{Producer, build, run};
