//! The CPU a scrape costs, measured the way a user (or a reviewer) would
//! measure it from outside: the shipped binary, `avepoint-exporter
//! simulate` beside it, the exporter on the config `simulate` prints
//! (default settings: `concurrency` 8, profile details on), and the
//! exporter process's utime + stime from `/proc` over a few whole warm
//! scrapes by an external client. The same method as
//! `../shared/tools/scrape_cpu.py`, in the bench so that its figure is
//! printed beside the bench's own (the library wired in a child process)
//! and the two can be compared.
//!
//! Included by `scrape.rs` (`#[path]`); in `support/` so that cargo does
//! not take it for a bench of its own.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One measurement of the shipped binary.
#[derive(Debug, Clone, Copy)]
pub struct OutsideFigure {
    /// Profiles scraped.
    pub profiles: usize,
    /// Profiles whose `avepoint_scan_profile_up` was 1 in the first scrape.
    pub up: usize,
    /// Exporter CPU (utime + stime) per profile per warm scrape, seconds.
    pub cpu_per_profile: f64,
    /// Median wall time of a warm scrape.
    pub scrape_wall: Duration,
}

/// Kills the process when dropped: a failed measurement leaves nothing.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_for_port(port: u16) {
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `simulate` with `profiles` profiles (10 per customer, as scrape_cpu.py)
/// and the exporter config it prints.
fn start_simulator(binary: &Path, profiles: usize) -> (Running, String, String) {
    let port = free_port();
    let mut child = Command::new(binary)
        .args(["simulate", "--web.listen-address"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--customers", &(profiles / 10).max(1).to_string()])
        .args(["--profiles-per-customer", &profiles.min(10).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("simulate starts");
    let stdout = child.stdout.take().expect("simulate's stdout");
    let simulator = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut secret, mut config, mut in_config) = (String::new(), String::new(), false);
    let expected_targets = profiles / profiles.min(10);
    let mut targets = 0;
    for line in lines.by_ref() {
        let line = line.expect("simulate's output");
        if let Some(value) = line.trim().strip_prefix("client secret:") {
            secret = value.trim().to_owned();
        }
        in_config |= line.starts_with("avepoint:");
        if in_config && !line.starts_with("ts=") {
            config.push_str(&line);
            config.push('\n');
        }
        targets += usize::from(line.starts_with("  - customer_id:"));
        if targets == expected_targets && line.trim().is_empty() {
            break;
        }
    }
    // Keep reading: the simulator logs to stdout, and must never block on
    // a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    wait_for_port(port);
    (simulator, config, secret)
}

/// One whole scrape over a fresh connection, as a plain HTTP/1.1 client
/// that reads to the end: the body (chunked framing included).
fn scrape(port: u16, accept: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("exporter answers");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nX-Prometheus-Scrape-Timeout-Seconds: 60\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("whole response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "scrape failed: {}",
        &response[..response.len().min(200)]
    );
    response
}

/// The shipped `binary` against `simulate` with `profiles` profiles:
/// `scrapes` warm scrapes after one that must show every profile up.
pub fn measure(binary: &Path, profiles: usize, accept: &str, scrapes: usize) -> OutsideFigure {
    let (_simulator, config, secret) = start_simulator(binary, profiles);
    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = dir.path().join("avepoint.yml");
    std::fs::write(&config_file, config).expect("config written");
    let port = free_port();
    let exporter = Running(
        Command::new(binary)
            .arg("--config.file")
            .arg(&config_file)
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .env("AVEPOINT_CLIENT_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the exporter starts"),
    );
    wait_for_port(port);
    let first = scrape(port, accept);
    let up = first
        .lines()
        .filter(|line| line.starts_with("avepoint_scan_profile_up{") && line.ends_with(" 1"))
        .count();
    // Start-up work (discovery, profile details) settles in the background.
    std::thread::sleep(Duration::from_secs(2));
    let pid = exporter.0.id();
    let before = cpu_seconds(pid);
    let mut walls: Vec<Duration> = (0..scrapes)
        .map(|_| {
            let started = Instant::now();
            scrape(port, accept);
            started.elapsed()
        })
        .collect();
    let cpu = cpu_seconds(pid) - before;
    walls.sort();
    OutsideFigure {
        profiles,
        up,
        cpu_per_profile: cpu / scrapes as f64 / profiles as f64,
        scrape_wall: walls[walls.len() / 2],
    }
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .expect("/proc/PID/stat readable");
    (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64
}
