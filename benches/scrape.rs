//! End-to-end scrape benchmark (issue #6): the simulator and the exporter on
//! loopback, `/metrics` scraped over real HTTP.
//!
//! ```sh
//! cargo bench --bench scrape                                   # the default matrix, ~3 min
//! cargo bench --bench scrape -- --profiles 1000 --latency 50ms # one case
//! cargo bench --bench scrape -- --help
//! ```
//!
//! Three processes per case, all this same binary:
//!
//! * the **orchestrator** (what `cargo bench` starts): generates the load,
//!   times the scrapes and reads the exporter's CPU time and peak RSS from
//!   `/proc/PID/stat` and `/proc/PID/status`;
//! * the **simulator** (`--role simulator`): `RunningSimulator` plus a tiny
//!   counting TCP proxy in front of it, so the number of upstream TCP
//!   connections the exporter opens is counted exactly (the simulator has no
//!   such counter) without touching the exporter;
//! * the **exporter** (`--role exporter`): the library wired exactly as
//!   `serve` does it (`Settings::from_yaml`, `AppState::build`,
//!   `web::router`, `serve::serve` on 127.0.0.1:0), and nothing else, so its
//!   CPU time and RSS are the exporter's alone.
//!
//! Children exit when their stdin closes, so nothing outlives the bench.

#[path = "support/outside.rs"]
mod outside;
mod support;

// The shipped binary's allocator (src/main.rs), so this bench's exporter
// child costs what the binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{cpu_model, flag, memory, parse_duration, parse_number, percentile};

use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::simulator::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, RunningSimulator, SimulatorConfig,
};
use avepoint_exporter::state::{AppState, StateOptions};
use avepoint_exporter::{serve, web};

/// What Prometheus 2.x sends, so the exporter negotiates OpenMetrics as in production.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// Generous, so the exporter's deadline never cuts a benchmark round short.
const SCRAPE_TIMEOUT_SECONDS: &str = "120";

const USAGE: &str = "cargo bench --bench scrape -- [options]

  --profiles LIST       profiles, comma separated (default 10,1000,10000);
                        up to 100 make one customer, more must be a multiple of 100
  --latency LIST        upstream latency per profile request (default 0,50ms)
  --concurrency N       avepoint.concurrency (default 64)
  --scrapes N           warm scrapes per case (default: about 12 s worth, 5..30)
  --format F            openmetrics (default, as Prometheus asks) or text
  --rps-clients N       concurrent scrapers in the shared-round phase (default 8)
  --rps-seconds S       length of that phase (default: 3 s or 2 rounds, at most 20 s; 0 skips it)
  --tls                 serve the simulator over HTTPS (a test CA; HTTP/2 offered
                        through ALPN, as AvePoint's hosts do) instead of plain HTTP/1.1
  --token-check S       seconds of scraping with 3 s tokens to count token requests
                        (default 12 in the full matrix, 0 skips it)
  --outside N           compare the CPU per profile at N profiles, zero latency and
                        the default config (concurrency 8, profile details on), text
                        and OpenMetrics, measured two ways: this bench's exporter
                        child (talking to the simulator directly, as the binary
                        does), and the shipped binary against `simulate` as
                        ../shared/tools/scrape_cpu.py does (default 1000 in the full
                        matrix, 0 skips it; `--profiles 10 --latency 0 --outside
                        1000` for the comparison alone)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match flag(&args, "--role").as_deref() {
        Some("simulator") => simulator_child(&args),
        Some("exporter") => exporter_child(&args),
        Some(other) => panic!("unknown role {other}"),
        None => orchestrate(&args),
    }
}

// ---------------------------------------------------------------------------
// children

/// Calls `exit(0)` when stdin closes: the orchestrator is gone or done.
fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
        std::process::exit(0);
    });
}

fn simulator_child(args: &[String]) {
    let arg = |name| flag(args, name).unwrap_or_else(|| panic!("{name} missing"));
    let config = SimulatorConfig {
        customers: parse_number(&arg("--customers"), "customers"),
        profiles_per_customer: parse_number(&arg("--profiles-per-customer"), "profiles"),
        latency: parse_duration(&arg("--latency")),
        token_lifetime: parse_duration(&arg("--token-lifetime")),
        ..SimulatorConfig::default()
    };
    let concurrency: usize = parse_number(&arg("--concurrency"), "concurrency");
    let config_out = PathBuf::from(arg("--config-out"));
    let tls = flag(args, "--tls").as_deref() == Some("true");
    let direct = flag(args, "--direct").as_deref() == Some("true");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        // With --tls the simulator speaks HTTPS with HTTP/2 offered through
        // ALPN, as AvePoint does; the proxy below only counts TCP.
        let tls_dir = tempfile::tempdir().expect("temp dir");
        let (web_config, ca_file) = if tls {
            let files = support::tls::write_tls_files(tls_dir.path());
            let handle = avepoint_exporter::web_config::WebConfigHandle::load(&files.web_config)
                .expect("web config");
            (Some(handle), Some(files.ca_file))
        } else {
            (None, None)
        };
        let sim = RunningSimulator::start_with_web_config(config, ([127, 0, 0, 1], 0).into(), web_config)
            .await
            .expect("simulator binds");
        let scheme = if tls { "https" } else { "http" };
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let proxy_addr = proxy.local_addr().expect("proxy address");
        let accepted = Arc::new(AtomicU64::new(0));
        tokio::spawn(count_and_forward(proxy, sim.addr(), Arc::clone(&accepted)));
        let upstream = if direct { sim.addr() } else { proxy_addr };

        let mut yaml = format!(
            "avepoint:\n  base_url: {scheme}://{upstream}\n  token_url: {scheme}://{upstream}/connect/token\n  client_id: {DEMO_CLIENT_ID}\n  concurrency: {concurrency}\n  request_timeout: 60s\n  round_timeout: 119.5s\n{}targets:\n",
            ca_file.as_ref().map(|path| format!("  ca_file: {}\n", path.display())).unwrap_or_default()
        );
        let mut last_customer = String::new();
        for (customer, profile) in sim.profile_ids() {
            if customer != last_customer {
                yaml.push_str(&format!("  - customer_id: {customer}\n    profile_ids:\n"));
                last_customer = customer;
            }
            yaml.push_str(&format!("      - {profile}\n"));
        }
        std::fs::write(&config_out, yaml).expect("config written");
        println!("READY {}", proxy_addr.port());

        // Commands on stdin: `stats` prints the counters; EOF ends the process.
        // (Blocking reads here are fine: the servers run on the worker threads.)
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "stats" {
                let stats = sim.stats();
                println!(
                    "STATS {} {} {}",
                    accepted.load(Ordering::SeqCst),
                    stats.token_requests.load(Ordering::SeqCst),
                    stats.profile_requests.load(Ordering::SeqCst)
                );
            }
        }
    });
}

/// The connection counter: accept, count, and splice to the simulator.
async fn count_and_forward(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

fn exporter_child(args: &[String]) {
    let path = flag(args, "--config").expect("--config missing");
    let yaml = std::fs::read_to_string(&path).expect("config readable");
    let settings = Settings::from_yaml(&yaml, Path::new(&path), |name| {
        (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
    })
    .unwrap_or_else(|error| panic!("generated config is invalid: {error}"));
    exit_on_stdin_eof();
    // The shipped binary's runtime, so the two figures compare.
    let runtime = avepoint_exporter::app::runtime(avepoint_exporter::cli::DEFAULT_WORKER_THREADS)
        .expect("runtime");
    runtime.block_on(async move {
        let state = AppState::build(&settings, StateOptions::default()).expect("state builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("exporter binds");
        println!("READY {}", listener.local_addr().expect("address").port());
        serve::serve(listener, web::router(state), std::future::pending())
            .await
            .expect("exporter serves");
    });
}

// ---------------------------------------------------------------------------
// orchestrator

struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildProcess {
    fn spawn(args: &[String]) -> (ChildProcess, String) {
        let exe = std::env::current_exe().expect("own executable");
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut process = ChildProcess {
            child,
            stdin,
            stdout,
        };
        let ready = process.read_line("READY ");
        (process, ready)
    }

    fn read_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).expect("child output") == 0 {
                panic!("child exited before printing {prefix:?}");
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct SimCounters {
    connections: u64,
    token_requests: u64,
    profile_requests: u64,
}

fn sim_counters(sim: &mut ChildProcess) -> SimCounters {
    let stdin = sim.stdin.as_mut().expect("simulator stdin");
    writeln!(stdin, "stats").expect("simulator listens");
    stdin.flush().expect("simulator listens");
    let line = sim.read_line("STATS ");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(|n| parse_number(n, "counter"))
        .collect();
    SimCounters {
        connections: numbers[0],
        token_requests: numbers[1],
        profile_requests: numbers[2],
    }
}

/// utime + stime of a process, seconds (clock-tick resolution).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .expect("/proc/PID/stat readable");
    (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64
}

struct Scraper {
    client: reqwest::Client,
    url: String,
    accept: &'static str,
}

impl Scraper {
    /// One scrape; the body is streamed and dropped unless `keep` (then returned).
    async fn scrape(&self, keep: bool) -> (Duration, usize, Option<String>) {
        let started = Instant::now();
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, self.accept)
            .header(web::SCRAPE_TIMEOUT_HEADER, SCRAPE_TIMEOUT_SECONDS)
            .send()
            .await
            .expect("exporter answers");
        assert!(
            response.status().is_success(),
            "status {}",
            response.status()
        );
        let mut bytes = 0;
        let mut body = keep.then(Vec::new);
        while let Some(chunk) = response.chunk().await.expect("body") {
            bytes += chunk.len();
            if let Some(body) = body.as_mut() {
                body.extend_from_slice(&chunk);
            }
        }
        let elapsed = started.elapsed();
        (
            elapsed,
            bytes,
            body.map(|b| String::from_utf8(b).expect("utf-8")),
        )
    }
}

struct Case {
    profiles: usize,
    latency: Duration,
    concurrency: usize,
    scrapes: Option<usize>,
    openmetrics: bool,
    rps_clients: usize,
    rps_seconds: Option<f64>,
    token_lifetime: Duration,
    /// Token check mode: scrape back to back for this long and count tokens.
    token_check: Option<Duration>,
    /// Serve the simulator over HTTPS (HTTP/2 through ALPN).
    tls: bool,
    /// Point the exporter at the simulator itself, not through the
    /// connection-counting proxy (whose extra hop leaves the exporter
    /// idle, and waking, more often: its CPU per profile then reads
    /// higher than the shipped binary's against `simulate`). Connections
    /// are not counted then.
    direct: bool,
}

#[derive(Debug, Default)]
struct CaseResult {
    profiles: usize,
    latency: Duration,
    concurrency: usize,
    cold_wall: Duration,
    cold_connections: u64,
    cold_ok: usize,
    body_bytes: usize,
    scrapes: usize,
    median: Duration,
    p95: Duration,
    bound: Duration,
    cpu_per_scrape: f64,
    warm_connections: u64,
    warm_profile_requests: u64,
    peak_rss: u64,
    rss_after: u64,
    rps: Option<(f64, usize, f64, u64)>,
    peak_rss_after_rps: u64,
    token_requests: u64,
    elapsed: Duration,
}

fn run_case(case: &Case) -> CaseResult {
    let started = Instant::now();
    let (customers, per_customer) = if case.profiles <= 100 {
        (1, case.profiles)
    } else {
        assert!(
            case.profiles.is_multiple_of(100),
            "--profiles above 100 must be a multiple of 100"
        );
        (case.profiles / 100, 100)
    };
    let config_path =
        std::env::temp_dir().join(format!("avepoint-bench-{}.yml", std::process::id()));
    let (mut sim, _proxy_port) = ChildProcess::spawn(&[
        "--role".into(),
        "simulator".into(),
        "--customers".into(),
        customers.to_string(),
        "--profiles-per-customer".into(),
        per_customer.to_string(),
        "--latency".into(),
        format!("{}ms", case.latency.as_millis()),
        "--token-lifetime".into(),
        format!("{}s", case.token_lifetime.as_secs()),
        "--concurrency".into(),
        case.concurrency.to_string(),
        "--config-out".into(),
        config_path.display().to_string(),
        "--tls".into(),
        case.tls.to_string(),
        "--direct".into(),
        case.direct.to_string(),
    ]);
    let (exporter, port) = ChildProcess::spawn(&[
        "--role".into(),
        "exporter".into(),
        "--config".into(),
        config_path.display().to_string(),
    ]);
    let pid = exporter.pid();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let scraper = Arc::new(Scraper {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .expect("client"),
        url: format!("http://127.0.0.1:{port}/metrics"),
        accept: if case.openmetrics {
            PROMETHEUS_ACCEPT
        } else {
            "text/plain"
        },
    });
    let mut result = CaseResult {
        profiles: case.profiles,
        latency: case.latency,
        concurrency: case.concurrency,
        bound: case.latency * case.profiles.div_ceil(case.concurrency) as u32,
        ..CaseResult::default()
    };

    // Token check: back-to-back scrapes, count token requests.
    if let Some(length) = case.token_check {
        let until = Instant::now() + length;
        while Instant::now() < until {
            runtime.block_on(scraper.scrape(false));
            result.scrapes += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        result.token_requests = sim_counters(&mut sim).token_requests;
        result.elapsed = started.elapsed();
        exporter.stop();
        sim.stop();
        let _ = std::fs::remove_file(&config_path);
        return result;
    }

    // Cold scrape: token + first connections; verify every profile is up.
    let before = sim_counters(&mut sim);
    let (wall, bytes, body) = runtime.block_on(scraper.scrape(true));
    let after_cold = sim_counters(&mut sim);
    let body = body.expect("kept");
    result.cold_wall = wall;
    result.body_bytes = bytes;
    result.cold_connections = after_cold.connections - before.connections;
    result.cold_ok = body
        .lines()
        .filter(|line| line.starts_with("avepoint_scan_profile_up{") && line.ends_with(" 1"))
        .count();
    drop(body);
    // Start-up work (discovery, profile details, the backup collectors)
    // runs in the background beside the first scrapes; measured warm, a
    // scrape pays for itself only, as `outside::measure` and scrape_cpu.py
    // wait too.
    std::thread::sleep(Duration::from_secs(2));

    // Warm scrapes, one after the other.
    let scrapes = case.scrapes.unwrap_or_else(|| {
        let expected = result.bound.max(wall).as_secs_f64().max(0.001);
        ((12.0 / expected).ceil() as usize).clamp(5, 30)
    });
    let cpu_before = cpu_seconds(pid);
    let mut walls: Vec<Duration> = (0..scrapes)
        .map(|_| runtime.block_on(scraper.scrape(false)).0)
        .collect();
    let cpu_after = cpu_seconds(pid);
    let after_warm = sim_counters(&mut sim);
    walls.sort();
    result.scrapes = scrapes;
    result.median = percentile(&walls, 0.5);
    result.p95 = percentile(&walls, 0.95);
    result.cpu_per_scrape = (cpu_after - cpu_before) / scrapes as f64;
    result.warm_connections = after_warm.connections - after_cold.connections;
    result.warm_profile_requests = after_warm.profile_requests - after_cold.profile_requests;
    (result.peak_rss, result.rss_after) = memory(pid);

    // Shared rounds: several scrapers at once, rounds shared between them.
    let rps_seconds = case
        .rps_seconds
        .unwrap_or_else(|| (2.0 * result.median.as_secs_f64()).clamp(3.0, 20.0));
    if rps_seconds > 0.0 && case.rps_clients > 0 {
        let length = Duration::from_secs_f64(rps_seconds);
        let before = sim_counters(&mut sim);
        let started = Instant::now();
        let done = runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..case.rps_clients {
                let scraper = Arc::clone(&scraper);
                tasks.push(tokio::spawn(async move {
                    let mut done = 0usize;
                    while started.elapsed() < length {
                        scraper.scrape(false).await;
                        done += 1;
                    }
                    done
                }));
            }
            let mut done = 0;
            for task in tasks {
                done += task.await.expect("scraper task");
            }
            done
        });
        let elapsed = started.elapsed().as_secs_f64();
        let after = sim_counters(&mut sim);
        let rounds =
            (after.profile_requests - before.profile_requests) as f64 / case.profiles as f64;
        result.rps = Some((
            done as f64 / elapsed,
            done,
            rounds,
            after.connections - before.connections,
        ));
        result.peak_rss_after_rps = memory(pid).0;
    }
    result.token_requests = sim_counters(&mut sim).token_requests;
    result.elapsed = started.elapsed();
    exporter.stop();
    sim.stop();
    let _ = std::fs::remove_file(&config_path);
    result
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print_case(r: &CaseResult) {
    let ratio = if r.bound.is_zero() {
        "-".to_owned()
    } else {
        format!("{:.3}", r.median.as_secs_f64() / r.bound.as_secs_f64())
    };
    println!(
        "\n== N={} profiles, L={}, concurrency {} ({:.0} s)",
        r.profiles,
        ms(r.latency),
        r.concurrency,
        r.elapsed.as_secs_f64()
    );
    println!(
        "  cold scrape:        {} wall, {} upstream connections opened, {}/{} profiles up, body {} bytes",
        ms(r.cold_wall),
        r.cold_connections,
        r.cold_ok,
        r.profiles,
        r.body_bytes
    );
    println!(
        "  warm scrapes ({}):  median {}, p95 {}; lower bound ceil(N/C)*L = {}; median/bound = {ratio}",
        r.scrapes,
        ms(r.median),
        ms(r.p95),
        ms(r.bound)
    );
    println!(
        "  exporter CPU:       {:.2} ms per scrape, {:.1} µs per profile per scrape",
        r.cpu_per_scrape * 1e3,
        r.cpu_per_scrape * 1e6 / r.profiles as f64
    );
    println!(
        "  upstream:           {} new connections over the warm scrapes, {} profile requests ({:.2} per profile per scrape)",
        r.warm_connections,
        r.warm_profile_requests,
        r.warm_profile_requests as f64 / (r.profiles * r.scrapes) as f64
    );
    println!(
        "  exporter memory:    peak RSS {} (RSS now {})",
        mib(r.peak_rss),
        mib(r.rss_after)
    );
    if let Some((rps, done, rounds, connections)) = r.rps {
        println!(
            "  shared rounds:      {rps:.1} /metrics requests/s ({done} scrapes, {rounds:.1} upstream rounds, {connections} new upstream connections); peak RSS then {}",
            mib(r.peak_rss_after_rps)
        );
    }
    println!(
        "  token requests:     {} in the whole case",
        r.token_requests
    );
}

fn orchestrate(args: &[String]) {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`; this
        // benchmark takes minutes, so it only runs under `cargo bench`.
        println!("scrape benchmark: skipped (run it with `cargo bench --bench scrape`)");
        return;
    }
    let list = |name: &str, default: &str| -> Vec<String> {
        flag(args, name)
            .unwrap_or_else(|| default.to_owned())
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    let profiles: Vec<usize> = list("--profiles", "10,1000,10000")
        .iter()
        .map(|n| parse_number(n, "profiles"))
        .collect();
    let latencies: Vec<Duration> = list("--latency", "0,50ms")
        .iter()
        .map(|l| parse_duration(l))
        .collect();
    let concurrency: usize =
        flag(args, "--concurrency").map_or(64, |c| parse_number(&c, "concurrency"));
    let scrapes = flag(args, "--scrapes").map(|s| parse_number(&s, "scrapes"));
    let openmetrics = match flag(args, "--format").as_deref() {
        None | Some("openmetrics") => true,
        Some("text") => false,
        Some(other) => panic!("--format must be openmetrics or text, not {other}"),
    };
    let rps_clients = flag(args, "--rps-clients").map_or(8, |c| parse_number(&c, "rps clients"));
    let rps_seconds = flag(args, "--rps-seconds").map(|s| parse_number::<f64>(&s, "rps seconds"));
    let tls = args.iter().any(|arg| arg == "--tls");
    let full_matrix = flag(args, "--profiles").is_none() && flag(args, "--latency").is_none();
    let outside_profiles = flag(args, "--outside")
        .map_or(if full_matrix { 1000 } else { 0 }, |n| {
            parse_number::<usize>(&n, "outside profiles")
        });
    let token_check = flag(args, "--token-check")
        .map_or(if full_matrix { 12.0 } else { 0.0 }, |s| {
            parse_number::<f64>(&s, "token check seconds")
        });

    println!(
        "avepoint-exporter scrape benchmark: {} cores, {}; format {}; upstream {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        if openmetrics {
            "OpenMetrics"
        } else {
            "Prometheus text"
        },
        if tls {
            "HTTPS (HTTP/2 via ALPN)"
        } else {
            "plain HTTP/1.1"
        }
    );
    let mut results = Vec::new();
    for &n in &profiles {
        for &latency in &latencies {
            let result = run_case(&Case {
                profiles: n,
                latency,
                concurrency,
                scrapes,
                openmetrics,
                rps_clients,
                rps_seconds,
                token_lifetime: Duration::from_secs(3600),
                token_check: None,
                tls,
                direct: false,
            });
            print_case(&result);
            results.push(result);
        }
    }
    let token = (token_check > 0.0).then(|| {
        let lifetime = Duration::from_secs(3);
        let length = Duration::from_secs_f64(token_check);
        let result = run_case(&Case {
            profiles: 10,
            latency: Duration::ZERO,
            concurrency,
            scrapes: None,
            openmetrics,
            rps_clients: 0,
            rps_seconds: Some(0.0),
            token_lifetime: lifetime,
            token_check: Some(length),
            tls,
            direct: false,
        });
        // The exporter refreshes at 90 % of the lifetime.
        let expected = (length.as_secs_f64() / (lifetime.as_secs_f64() * 0.9)).ceil();
        println!(
            "\n== token lifetime: {} scrapes over {:.0} s with {}-s tokens: {} token requests (one per refresh period of 2.7 s: {expected})",
            result.scrapes,
            length.as_secs_f64(),
            lifetime.as_secs(),
            result.token_requests
        );
        (result, expected)
    });

    let outside = (outside_profiles > 0).then(|| compare_outside(outside_profiles, scrapes));

    // A table to paste into BENCHMARKS.md.
    println!(
        "\n| N | L | C | scrape median | p95 | bound | ratio | CPU/scrape | CPU/profile | conns cold/warm | peak RSS | req/s shared (rounds) | tokens |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let ratio = if r.bound.is_zero() {
            "-".to_owned()
        } else {
            format!("{:.3}", r.median.as_secs_f64() / r.bound.as_secs_f64())
        };
        let rps = r.rps.map_or("-".to_owned(), |(rps, _, rounds, _)| {
            format!("{rps:.1} ({rounds:.1})")
        });
        println!(
            "| {} | {} ms | {} | {} | {} | {} | {ratio} | {:.2} ms | {:.1} µs | {}/{} | {} | {rps} | {} |",
            r.profiles,
            r.latency.as_millis(),
            r.concurrency,
            ms(r.median),
            ms(r.p95),
            ms(r.bound),
            r.cpu_per_scrape * 1e3,
            r.cpu_per_scrape * 1e6 / r.profiles as f64,
            r.cold_connections,
            r.warm_connections,
            mib(r.peak_rss),
            r.token_requests
        );
    }
    if let Some(rows) = outside {
        print_outside(&rows);
    }
    if let Some((result, expected)) = token {
        println!(
            "\ntoken check: {} token requests in {:.0} s with 3-s tokens (expected {expected})",
            result.token_requests,
            result.elapsed.as_secs_f64()
        );
    }
}

/// One format's CPU per profile, measured both ways.
struct OutsideRow {
    format: &'static str,
    child: CaseResult,
    binary: outside::OutsideFigure,
}

/// The default config at `profiles` profiles and zero latency, text and
/// OpenMetrics: this bench's exporter child, then the shipped binary
/// against `simulate`, each measured from outside (utime + stime).
fn compare_outside(profiles: usize, scrapes: Option<usize>) -> Vec<OutsideRow> {
    let binary = Path::new(env!("CARGO_BIN_EXE_avepoint-exporter"));
    let scrapes = scrapes.unwrap_or(10);
    [("text", "text/plain"), ("OpenMetrics", PROMETHEUS_ACCEPT)]
        .into_iter()
        .map(|(format, accept)| {
            let child = run_case(&Case {
                profiles,
                latency: Duration::ZERO,
                concurrency: 8,
                scrapes: Some(scrapes),
                openmetrics: format == "OpenMetrics",
                rps_clients: 0,
                rps_seconds: Some(0.0),
                token_lifetime: Duration::from_secs(3600),
                token_check: None,
                tls: false,
                direct: true,
            });
            let binary = outside::measure(binary, profiles, accept, scrapes);
            OutsideRow {
                format,
                child,
                binary,
            }
        })
        .collect()
}

fn print_outside(rows: &[OutsideRow]) {
    println!(
        "\nCPU per profile per scrape, default config (concurrency 8, profile details on), zero latency, utime+stime from /proc:"
    );
    println!(
        "\n| format | N | bench exporter child | shipped binary vs `simulate` (as scrape_cpu.py) | up | scrape median (binary) |"
    );
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.1} µs | {:.1} µs | {}/{} | {} |",
            row.format,
            row.binary.profiles,
            row.child.cpu_per_scrape * 1e6 / row.child.profiles as f64,
            row.binary.cpu_per_profile * 1e6,
            row.binary.up,
            row.binary.profiles,
            ms(row.binary.scrape_wall),
        );
    }
}
