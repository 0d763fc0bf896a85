//! avepoint-exporter: AvePoint Elements scan profiles as Prometheus metrics.
//!
//! The modules follow the data flow: [`config`] -> [`avepoint`] (auth, API
//! client) -> [`collect`] (a [`collect::Snapshot`] per scrape) -> [`metrics`]
//! (encoding) -> [`web`]. [`simulator`] is an AvePoint API on loopback for
//! the demo, the tests and the benchmarks; [`app`] wires the subcommands.
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
