//! avepoint-exporter: AvePoint Elements scan profiles as Prometheus metrics.
//!
//! The modules follow the data flow: [`config`] -> [`avepoint`] (auth, API
//! client) -> [`discovery`] (which targets) -> [`collect`] (a
//! [`collect::Snapshot`] per scrape) -> [`metrics`] (encoding) -> [`web`]
//! (routes; [`web_config`] for TLS and basic auth). [`reload`] swaps in a
//! re-read config; [`app`] wires the subcommands. [`simulator`] is an
//! AvePoint API on loopback for the demo, the tests and the benchmarks.
#![forbid(unsafe_code)]

pub mod app;
pub mod avepoint;
pub mod cli;
pub mod collect;
pub mod config;
pub mod discovery;
pub mod metrics;
pub mod reload;
pub mod simulator;
pub mod web;
pub mod web_config;
