//! The worker: consumes events, fans them out into deliveries, and delivers.
//!
//! Any number of workers run side by side as competing consumers; nothing in
//! one worker's memory is needed by another. A message is acked only after its
//! outcome is committed in Postgres, so a killed worker loses nothing
//! (delivery is at-least-once; `Webhook-Id` lets receivers deduplicate).
//!
//! Start reading at [`dispatch::handle`] (every event: look up, first
//! attempts, one commit — or record, attempt, mark), then [`attempt`] (one
//! request and its record), [`deliver::handle`] (queued attempts: claim,
//! attempt) and [`reconcile`] (what Postgres says is overdue).
//!
//! # Layout
//! - [`settings`]: [`Settings`], loaded from `HOOKLINE_*` variables.
//! - [`startup`]: [`build`] connects and declares; [`Worker::run_until_stopped`]
//!   consumes until cancelled, then drains.
//! - [`dispatch`]: an event message → deliveries in Postgres → one delivery
//!   message each.
//! - `early`: a fresh event's fast path: its first attempts made before
//!   anything is written, then one commit.
//! - [`attempt`]: sign and POST one delivery, record the outcome, schedule
//!   the retry.
//! - [`deliver`]: a delivery message → slot, share, fenced claim, probe
//!   turn → an attempt.
//! - [`fairness`]: the per-webhook in-flight cap and the per-account share.
//! - [`known`]: what this worker last saw of each webhook (account, health).
//! - [`outbound`]: the outbound HTTP client and one attempt over it.
//! - [`metrics`]: what a worker counts, served at `/metrics`.
//! - [`batch`]: group commit of the hot path's writes.
//! - [`reconcile`]: publishes again whatever step Postgres says is overdue.
//! - [`recovery`]: recovery probes of suspended webhooks that opted in.
//! - [`operational`]: announces webhooks' health changes as `hookline.webhook.*`
//!   events (the relay).
//! - [`retention`]: removes events past `HOOKLINE_RETENTION` (paced batches)
//!   and drops the day partitions of their deliveries and attempts, one
//!   worker at a time; every worker makes the days ahead.
//! - `consume`: the bounded consume loop and the one place messages are settled.

pub mod attempt;
pub mod batch;
mod consume;
pub mod deliver;
pub mod dispatch;
mod early;
pub mod fairness;
pub mod known;
pub mod metrics;
pub mod operational;
pub mod outbound;
pub mod rate;
pub mod reconcile;
pub mod recovery;
pub mod retention;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::{Worker, build, run};
