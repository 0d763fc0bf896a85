//! Helpers shared by the bench binaries: argument parsing, machine facts
//! and the exporter process (spawn, log, memory). Not a bench itself (cargo only discovers
//! `benches/*.rs` and `benches/*/main.rs`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use avepoint_exporter::config::CLIENT_SECRET_ENV;
use avepoint_exporter::simulator::DEMO_CLIENT_SECRET;

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

/// The exporter binary cargo builds for the benches.
pub const EXPORTER: &str = env!("CARGO_BIN_EXE_avepoint-exporter");

/// The part of an exporter spawn every bench shares: `serve` on `config`
/// with a JSON log on a piped stderr (read by [`follow_log`]), on an
/// ephemeral loopback port, the demo client secret in the environment and
/// RUST_LOG unset so the config's log level applies. `command` is what
/// runs: the exporter itself, or a wrapper that execs it with these
/// arguments appended; the caller adds its own flags and spawns.
pub fn serve_command(mut command: Command, config: &Path) -> Command {
    command
        .args(["serve", "--log.format", "json", "--config.file"])
        .arg(config)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env(CLIENT_SECRET_ENV, DEMO_CLIENT_SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Follows the exporter's JSON log on `stderr` in a thread of its own until
/// the pipe closes: hands every line to `each`, and returns the address of
/// the `listening` line, or None when none came within 30 s. The thread
/// must keep reading: a full pipe would stall the exporter.
pub fn follow_log(
    stderr: ChildStderr,
    mut each: impl FnMut(&str) + Send + 'static,
) -> Option<String> {
    let (address_tx, address_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut address_tx = Some(address_tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            each(&line);
            if address_tx.is_some() && line.contains("\"message\":\"listening\"") {
                let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let (Some(tx), Some(address)) = (address_tx.take(), event["address"].as_str()) {
                    let _ = tx.send(address.to_owned());
                }
            }
        }
    });
    address_rx.recv_timeout(Duration::from_secs(30)).ok()
}

/// VmHWM (peak RSS) and VmRSS of a process, bytes.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .expect("/proc/PID/status readable");
    (
        status.vmhwm.unwrap_or(0) * 1024,
        status.vmrss.unwrap_or(0) * 1024,
    )
}
