//! Helpers shared by the bench binaries (scrape, soak): argument parsing
//! and machine facts. Not a bench itself (cargo only discovers
//! `benches/*.rs` and `benches/*/main.rs`).
#![allow(dead_code)]

use std::time::Duration;

/// The test CA and server certificate, shared with the integration tests.
#[path = "../../tests/common/tls.rs"]
pub mod tls;

/// The value of `--name VALUE` or `--name=VALUE`.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|arg| arg == name)
        .map(|index| {
            args.get(index + 1)
                .unwrap_or_else(|| panic!("{name} needs a value"))
                .clone()
        })
        .or_else(|| {
            let prefix = format!("{name}=");
            args.iter()
                .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_owned))
        })
}

/// A duration flag: `0`, or humantime (`50ms`, `3m`).
pub fn parse_duration(text: &str) -> Duration {
    match text.trim() {
        "0" | "0s" | "0ms" => Duration::ZERO,
        text => {
            humantime::parse_duration(text).unwrap_or_else(|e| panic!("bad duration {text:?}: {e}"))
        }
    }
}

/// A number flag.
pub fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> T {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad {what}: {text:?}"))
}

/// Nearest-rank percentile of sorted durations (zero for none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The CPU model, as /proc/cpuinfo names it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
