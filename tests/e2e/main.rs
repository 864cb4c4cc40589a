//! End-to-end tests: producer and worker in-process over the real Postgres
//! and RabbitMQ, with a local receiver. One binary (matklad's "one
//! integration test binary per crate").

mod api;
mod cluster;
mod durability;
mod faults;
mod isolation;
mod operational;
mod pipeline;
mod portal;
mod recovery;
mod retention;
mod retries;
mod security;
mod settings;
mod telemetry;
mod tenants;
mod tidy;
