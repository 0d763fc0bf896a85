//! avepoint-exporter: AvePoint Elements scan profiles as Prometheus metrics.
//!
//! The modules follow the data flow, each importing only those listed
//! before it (docs/architecture.md has the diagram and the rule;
//! `tests/architecture.rs` enforces it):
//!
//! - [`sync`], [`version`], [`cli`]: poison-tolerant locks; what this build
//!   is; the command line.
//! - [`config`]: the YAML file and environment, validated into `Settings`.
//! - [`avepoint`]: AvePoint's API: HTTP helpers, the certificate and its
//!   JWT, the token source, the client, the wire model, `avepoint_api_*`.
//! - [`refresher`]: drives every background reader: schedules, panic
//!   isolation, their share of the client's concurrency.
//! - [`discovery`]: which customers and profiles, in the background.
//! - [`profile_details`]: each profile's schedule and settings, in the background.
//! - [`backup`]: backup jobs and coverage per customer, in the background.
//! - [`collect`]: collection rounds, a plain [`collect::Snapshot`] each.
//! - [`metrics`]: encoding snapshots and counters as a scrape or a probe.
//! - [`state`]: what one config builds, the shared state, reloads.
//! - [`web_config`]: the web config file (TLS, basic auth, headers).
//! - [`web`]: the routes. [`serve`]: listeners, TLS, shutdown.
//! - [`simulator`]: an AvePoint API on loopback for the demo, the tests and
//!   the benchmarks; only `app` imports it.
//! - [`app`]: the subcommands.
#![forbid(unsafe_code)]
// An item `pub` that nothing outside its module tree can reach says the
// wrong thing to a reader: `pub(crate)` or `pub(super)` says who uses it.
#![warn(unreachable_pub)]

pub mod app;
pub mod avepoint;
pub mod backup;
pub mod cli;
pub mod collect;
pub mod config;
pub mod discovery;
pub mod metrics;
pub mod profile_details;
pub mod refresher;
pub mod report_schedule;
pub mod serve;
pub mod simulator;
pub mod state;
pub mod sync;
#[cfg(test)]
mod test_log;
pub mod version;
pub mod web;
pub mod web_config;
