//! A bounded soak (issue #4): minutes of scrapes against a real exporter
//! process while the simulated AvePoint misbehaves, looking for leaks
//! (memory, file descriptors, threads), crashes and failed scrapes.
//!
//! ```sh
//! cargo bench --bench soak                          # ~3 minutes, 90 profiles, 12 scrapers
//! cargo bench --bench soak -- --minutes 10 --profiles 200
//! cargo bench --bench soak -- --help
//! cargo bench --bench soak -- --upstream all      # issue #20: AvePoint misbehaving, 2,000 profiles
//! ```
//!
//! Two processes, both on 127.0.0.1:
//!
//! * this one: the simulator (`RunningSimulator`, with `error_rate`,
//!   `throttle_rate`, latency and short-lived tokens), the fault driver (it
//!   calls `set_fault`/`clear_faults` on that simulator, so it must live in
//!   the same process), the load (concurrent `/metrics` scrapers, a
//!   `/probe` + `/sd` loop, config rewrites + `POST /-/reload`) and a
//!   monitor reading the exporter's `/proc/PID/status` and `/proc/PID/fd`
//!   once a second;
//! * the exporter: the real release binary (`avepoint-exporter serve
//!   --config.file ...`, JSON logs captured to a file), so what is measured
//!   is exactly what ships, reload path and signal handling included.
//!
//! Exits 1 (and says `SOAK FAILED` loudly) when a target is missed.

#[path = "soak/report.rs"]
mod report;
mod support;
#[path = "soak/upstream.rs"]
mod upstream;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{EXPORTER, cpu_model, flag, follow_log, parse_duration, parse_number, serve_command};

use avepoint_exporter::simulator::{
    DEMO_CLIENT_ID, Fault, FaultAt, RunningSimulator, SimulatorConfig,
};
use avepoint_exporter::web::SCRAPE_TIMEOUT_HEADER;

/// What Prometheus 2.x sends, so the exporter negotiates OpenMetrics as in production.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROFILES_PER_CUSTOMER: usize = 10;

/// Targets: a miss makes the run exit 1.
const RSS_GROWTH_LIMIT: f64 = 0.10;
const FD_GROWTH_LIMIT: i64 = 8;
const THREAD_GROWTH_LIMIT: i64 = 2;

const USAGE: &str = "cargo bench --bench soak -- [options]

  --minutes M          length of the load phase (default 3)
  --profiles N         simulated profiles, 10 per customer (default 90)
  --scrapers N         concurrent /metrics scrapers (default 12: most rounds last
                       over 1 s, a 429's Retry-After, and concurrent scrapes
                       share the round, so 4 scrapers make only ~4 scrapes/s)
  --interval D         least time between the starts of one scraper's scrapes
                       (default 100ms; 0 = back to back)
  --scrape-timeout S   X-Prometheus-Scrape-Timeout-Seconds and the scrapers'
                       own timeout (default 5; the exporter answers by S - 0.5 s)
  --latency D          upstream latency per API request (default 10ms)
  --error-rate R       share of API requests answered 500 (default 0.05)
  --throttle-rate R    share of API requests answered 429 Retry-After: 1 (default 0.02)
  --fault-period D     how long each injected per-profile fault lasts (default 5s);
                       the six kinds rotate, so a fault cycle is 6 periods
  --faulty N           profiles given the current fault (default 3)
  --reload-every D     rewrite the config and POST /-/reload this often (default 20s; 0 = never)
  --token-lifetime D   lifetime of simulated tokens (default 30s, so they are refreshed)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}{}", upstream::USAGE);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`; the
        // soak takes minutes, so it only runs under `cargo bench`.
        println!("soak: skipped (run it with `cargo bench --bench soak`)");
        return;
    }
    if args.iter().any(|a| a == "--upstream") {
        if upstream::run(&args) {
            std::process::exit(1);
        }
        return;
    }
    let options = Options::parse(&args);
    let failed = run(&options);
    if failed {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// options

#[derive(Debug, Clone)]
struct Options {
    duration: Duration,
    profiles: usize,
    scrapers: usize,
    interval: Duration,
    scrape_timeout: Duration,
    latency: Duration,
    error_rate: f64,
    throttle_rate: f64,
    fault_period: Duration,
    faulty: usize,
    reload_every: Duration,
    token_lifetime: Duration,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let number = |name: &str, default: f64| {
            flag(args, name).map_or(default, |v| parse_number::<f64>(&v, name))
        };
        let duration = |name: &str, default: &str| {
            parse_duration(&flag(args, name).unwrap_or_else(|| default.to_owned()))
        };
        let options = Options {
            duration: Duration::from_secs_f64(number("--minutes", 3.0) * 60.0),
            profiles: number("--profiles", 90.0) as usize,
            scrapers: number("--scrapers", 12.0) as usize,
            interval: duration("--interval", "100ms"),
            scrape_timeout: Duration::from_secs_f64(number("--scrape-timeout", 5.0)),
            latency: duration("--latency", "10ms"),
            error_rate: number("--error-rate", 0.05),
            throttle_rate: number("--throttle-rate", 0.02),
            fault_period: duration("--fault-period", "5s"),
            faulty: number("--faulty", 3.0) as usize,
            reload_every: duration("--reload-every", "20s"),
            token_lifetime: duration("--token-lifetime", "30s"),
        };
        assert!(options.profiles >= 1, "--profiles must be at least 1");
        assert!(
            options.profiles <= PROFILES_PER_CUSTOMER
                || options.profiles.is_multiple_of(PROFILES_PER_CUSTOMER),
            "--profiles above {PROFILES_PER_CUSTOMER} must be a multiple of {PROFILES_PER_CUSTOMER}"
        );
        assert!(options.scrapers >= 1, "--scrapers must be at least 1");
        assert!(
            options.duration >= Duration::from_secs(10),
            "--minutes: at least 10 s"
        );
        assert!(
            !options.fault_period.is_zero(),
            "--fault-period must be positive"
        );
        options
    }

    /// One turn of the fault rotation.
    fn fault_cycle(&self) -> Duration {
        self.fault_period * FAULT_KINDS.len() as u32
    }
}

/// The per-profile faults, in rotation order.
const FAULT_KINDS: [&str; 6] = [
    "hang",
    "truncated",
    "not-json",
    "status-500",
    "reset",
    "huge-2MiB",
];

fn fault(kind: &str) -> Fault {
    match kind {
        "hang" => Fault::Hang,
        "truncated" => Fault::Truncated,
        "not-json" => Fault::NotJson,
        "status-500" => Fault::Status(500),
        "reset" => Fault::Reset,
        "huge-2MiB" => Fault::Huge(2 * 1024 * 1024),
        other => unreachable!("fault kind {other}"),
    }
}

// ---------------------------------------------------------------------------
// the exporter process

/// What the exporter's stderr said, tallied by the reader thread.
#[derive(Debug, Default)]
struct LogTally {
    by_level: BTreeMap<String, u64>,
    panics: u64,
    /// "scan profile fetch failed" lines for requests skipped in a back-off.
    backoff_lines: u64,
    first_panic: Option<String>,
}

struct Exporter {
    child: Child,
    pid: u32,
    addr: String,
    log_path: PathBuf,
    log: Arc<Mutex<LogTally>>,
}

impl Exporter {
    fn start(config: &Path, log_path: PathBuf) -> Exporter {
        let mut child = serve_command(Command::new(EXPORTER), config)
            .arg("--web.enable-lifecycle")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {EXPORTER}: {e}"));
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(LogTally::default()));
        let tally = Arc::clone(&log);
        let mut file = std::fs::File::create(&log_path).expect("log file");
        let address = follow_log(stderr, move |line| {
            let _ = writeln!(file, "{line}");
            let mut tally = tally.lock().unwrap();
            if line.contains("panicked at") {
                tally.panics += 1;
                tally.first_panic.get_or_insert_with(|| line.to_owned());
            }
            // Substring tests, not a JSON parse per line: during a
            // back-off the exporter logs thousands of lines a second, and
            // a slow reader would stall it on a full pipe.
            let level = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .into_iter()
                .find(|level| line.contains(&format!("\"level\":\"{level}\"")))
                .unwrap_or("(other)");
            *tally.by_level.entry(level.to_owned()).or_default() += 1;
            if line.contains("\"status\":\"backoff\"") {
                tally.backoff_lines += 1;
            }
        });
        let addr = match address {
            Some(addr) => addr,
            None => {
                let _ = child.kill();
                panic!(
                    "the exporter did not log `listening` within 30 s; see {}",
                    log_path.display()
                );
            }
        };
        Exporter {
            child,
            pid,
            addr,
            log_path,
            log,
        }
    }

    /// `Some(status)` once the process has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then wait up to 10 s for the graceful exit.
    fn terminate(&mut self) -> Result<std::process::ExitStatus, String> {
        if let Some(status) = self.exited() {
            return Err(format!("had already exited: {status}"));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("did not exit within 10 s of SIGTERM (killed)".into())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn exporter_config(sim: &RunningSimulator, only_customers: Option<&[String]>) -> String {
    let mut yaml = format!(
        "# written by benches/soak.rs\navepoint:\n  base_url: {}\n  token_url: {}\n  client_id: {DEMO_CLIENT_ID}\ndiscovery:\n  enabled: true\n  refresh_interval: 15s\n",
        sim.base_url(),
        sim.token_url()
    );
    if let Some(customers) = only_customers {
        yaml.push_str(&format!(
            "  include:\n    - customer_id: \"{}\"\n",
            customers.join("|")
        ));
    }
    yaml.push_str("targets: []\n");
    yaml
}

/// Replace the file in one step, so the exporter never reads half of it.
fn write_config(path: &Path, yaml: &str) {
    let temporary = path.with_extension("yml.new");
    std::fs::write(&temporary, yaml).expect("config written");
    std::fs::rename(&temporary, path).expect("config replaced");
}

// ---------------------------------------------------------------------------
// /proc sampling

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the load started.
    t: f64,
    rss: u64,
    hwm: u64,
    fds: usize,
    threads: u64,
    scrapes: u64,
}

fn proc_sample(pid: u32, t: f64, scrapes: u64) -> Option<Sample> {
    let process = procfs::process::Process::new(pid as i32).ok()?;
    let status = process.status().ok()?;
    Some(Sample {
        t,
        rss: status.vmrss.unwrap_or(0) * 1024,
        hwm: status.vmhwm.unwrap_or(0) * 1024,
        fds: process.fd_count().ok()?,
        threads: status.threads,
        scrapes,
    })
}

// ---------------------------------------------------------------------------
// the load

#[derive(Debug, Default)]
struct Tally {
    metrics_ok: u64,
    metrics_latencies: Vec<Duration>,
    metrics_errors: u64,
    first_errors: Vec<String>,
    /// 200s that arrived after the scrape timeout (cannot happen with the
    /// client timeout, counted anyway).
    metrics_late: u64,
    profiles_up: u64,
    profiles_down: u64,
    /// Scrapes without any profile series (right after a reload, before
    /// the new discovery's first refresh).
    blank_scrapes: u64,
    /// Scrapes with every profile down: answered during a global back-off.
    all_down_scrapes: u64,
    /// `process_open_fds` as the exporter reports it: (t, value).
    open_fds_metric: Vec<(f64, f64)>,
    probe_status: BTreeMap<u16, u64>,
    probe_errors: u64,
    probe_latencies: Vec<Duration>,
    sd_ok: u64,
    sd_errors: u64,
    reloads_ok: u64,
    reloads_failed: u64,
    reload_latencies: Vec<Duration>,
    fault_phases: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn error(&mut self, what: String) {
        if self.first_errors.len() < 10 {
            self.first_errors.push(what);
        }
    }
}

struct Load {
    base: String,
    scrape_timeout: Duration,
    /// Least time between the starts of one scraper's scrapes.
    interval: Duration,
    started: Instant,
    until: Instant,
    tally: Mutex<Tally>,
    metrics_done: AtomicU64,
}

impl Load {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(self.scrape_timeout)
            .build()
            .expect("client")
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> Result<(u16, String), String> {
        let response = client
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, PROMETHEUS_ACCEPT)
            .header(
                SCRAPE_TIMEOUT_HEADER,
                format!("{}", self.scrape_timeout.as_secs_f64()),
            )
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{path}: body: {e}"))?;
        Ok((status, body))
    }

    async fn scraper(self: Arc<Self>) {
        let client = self.client();
        while Instant::now() < self.until {
            let started = Instant::now();
            let next = tokio::time::Instant::now() + self.interval;
            let result = self.get(&client, "/metrics").await;
            let elapsed = started.elapsed();
            let t = self.started.elapsed().as_secs_f64();
            {
                let mut tally = self.tally.lock().unwrap();
                match result {
                    Ok((200, body)) => {
                        tally.metrics_ok += 1;
                        tally.metrics_latencies.push(elapsed);
                        if elapsed > self.scrape_timeout {
                            tally.metrics_late += 1;
                        }
                        let (mut up, mut down) = (0, 0);
                        for line in body.lines() {
                            if line.starts_with("avepoint_scan_profile_up{") {
                                if line.ends_with(" 1") {
                                    up += 1;
                                } else {
                                    down += 1;
                                }
                            } else if let Some(Ok(value)) = line
                                .strip_prefix("process_open_fds ")
                                .map(|value| value.trim().parse())
                            {
                                tally.open_fds_metric.push((t, value));
                            }
                        }
                        tally.profiles_up += up;
                        tally.profiles_down += down;
                        if up + down == 0 {
                            tally.blank_scrapes += 1;
                        } else if up == 0 {
                            tally.all_down_scrapes += 1;
                        }
                    }
                    Ok((status, body)) => {
                        tally.metrics_errors += 1;
                        let first = body.lines().next().unwrap_or("").to_owned();
                        tally.error(format!("t={t:.1}s /metrics: HTTP {status}: {first}"));
                    }
                    Err(error) => {
                        tally.metrics_errors += 1;
                        tally.error(format!("t={t:.1}s {error} after {elapsed:.2?}"));
                    }
                }
            }
            self.metrics_done.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(next).await;
        }
    }

    /// `/probe` for one customer at a time (from those every config keeps),
    /// and `/sd` every fourth turn.
    async fn prober(self: Arc<Self>, customers: Vec<String>) {
        let client = self.client();
        let mut turn = 0usize;
        while Instant::now() < self.until {
            let customer = &customers[turn % customers.len()];
            let started = Instant::now();
            let result = self
                .get(&client, &format!("/probe?customer_id={customer}"))
                .await;
            let elapsed = started.elapsed();
            {
                let mut tally = self.tally.lock().unwrap();
                match result {
                    Ok((status, _)) => {
                        *tally.probe_status.entry(status).or_default() += 1;
                        if status == 200 {
                            tally.probe_latencies.push(elapsed);
                        }
                    }
                    Err(error) => {
                        tally.probe_errors += 1;
                        tally.error(error);
                    }
                }
            }
            if turn.is_multiple_of(4) {
                let result = self.get(&client, "/sd").await;
                let mut tally = self.tally.lock().unwrap();
                match result {
                    Ok((200, body)) if body.starts_with('[') => tally.sd_ok += 1,
                    Ok((status, body)) => {
                        tally.sd_errors += 1;
                        tally.error(format!("/sd: HTTP {status}: {body:.80}"));
                    }
                    Err(error) => {
                        tally.sd_errors += 1;
                        tally.error(error);
                    }
                }
            }
            turn += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Alternate the config between all customers and a subset, and reload.
    async fn reloader(self: Arc<Self>, path: PathBuf, configs: [String; 2], every: Duration) {
        let client = self.client();
        let mut turn = 0usize;
        loop {
            let left = self.until.saturating_duration_since(Instant::now());
            if left <= every + Duration::from_secs(1) {
                return;
            }
            tokio::time::sleep(every).await;
            turn += 1;
            write_config(&path, &configs[turn % 2]);
            let started = Instant::now();
            let result = client.post(format!("{}/-/reload", self.base)).send().await;
            let elapsed = started.elapsed();
            let mut tally = self.tally.lock().unwrap();
            match result {
                Ok(response) if response.status().is_success() => {
                    tally.reloads_ok += 1;
                    tally.reload_latencies.push(elapsed);
                }
                Ok(response) => {
                    tally.reloads_failed += 1;
                    tally.error(format!("/-/reload: HTTP {}", response.status()));
                }
                Err(error) => {
                    tally.reloads_failed += 1;
                    tally.error(format!("/-/reload: {error}"));
                }
            }
        }
    }

    /// Rotate the per-profile faults over a few profiles at a time.
    async fn fault_driver(
        self: Arc<Self>,
        sim: Arc<RunningSimulator>,
        faulty: usize,
        period: Duration,
    ) {
        let profiles: Vec<String> = sim.profile_ids().into_iter().map(|(_, p)| p).collect();
        let mut phase = 0usize;
        while Instant::now() < self.until {
            let kind = FAULT_KINDS[phase % FAULT_KINDS.len()];
            sim.clear_faults();
            for j in 0..faulty.min(profiles.len()) {
                // Different profiles each phase, spread over the customers.
                let index = (phase * 7 + j * 31) % profiles.len();
                sim.set_fault(FaultAt::Report(&profiles[index]), fault(kind));
            }
            *self
                .tally
                .lock()
                .unwrap()
                .fault_phases
                .entry(kind)
                .or_default() += 1;
            tokio::time::sleep(period).await;
            phase += 1;
        }
        sim.clear_faults();
    }
}

// ---------------------------------------------------------------------------
// the run

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The simulated AvePoint of one soak and the two exporter configs the
/// reloads alternate between (all customers; the first two thirds).
struct World {
    sim: Arc<RunningSimulator>,
    customers: usize,
    /// The customers of the second config, which the prober asks about.
    kept: Vec<String>,
    configs: [String; 2],
    config_path: PathBuf,
    /// Holds the config file; removed when dropped.
    _dir: tempfile::TempDir,
}

impl World {
    fn start(runtime: &tokio::runtime::Runtime, options: &Options) -> World {
        let (customers, per_customer) = if options.profiles <= PROFILES_PER_CUSTOMER {
            (1, options.profiles)
        } else {
            (
                options.profiles / PROFILES_PER_CUSTOMER,
                PROFILES_PER_CUSTOMER,
            )
        };
        let config = SimulatorConfig {
            customers,
            profiles_per_customer: per_customer,
            latency: options.latency,
            error_rate: options.error_rate,
            throttle_rate: options.throttle_rate,
            token_lifetime: options.token_lifetime,
            day_length: Duration::from_secs(60),
            ..SimulatorConfig::default()
        };
        let sim = Arc::new(
            runtime
                .block_on(RunningSimulator::start(config, ([127, 0, 0, 1], 0).into()))
                .expect("simulator binds"),
        );
        let customer_ids: Vec<String> = sim.customers().iter().map(|c| c.id.clone()).collect();
        // The second config keeps the first two thirds of the customers.
        let keep = (customer_ids.len() * 2)
            .div_ceil(3)
            .clamp(1, customer_ids.len());
        let kept: Vec<String> = customer_ids[..keep].to_vec();
        let configs = [
            exporter_config(&sim, None),
            exporter_config(&sim, Some(&kept)),
        ];
        let dir = tempfile::Builder::new()
            .prefix("avepoint-soak-")
            .tempdir()
            .expect("temp dir");
        let config_path = dir.path().join("avepoint.yml");
        write_config(&config_path, &configs[0]);
        World {
            sim,
            customers,
            kept,
            configs,
            config_path,
            _dir: dir,
        }
    }
}

fn print_header(options: &Options, customers: usize) {
    println!(
        "avepoint-exporter soak: {} cores, {}; {:.1} min, {} profiles ({customers} customers), {} /metrics scrapers (one scrape per {} at most) + a /probe and /sd loop, scrape timeout {:.1} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        options.duration.as_secs_f64() / 60.0,
        options.profiles,
        options.scrapers,
        ms(options.interval),
        options.scrape_timeout.as_secs_f64(),
    );
    println!(
        "  upstream: latency {}, error_rate {}, throttle_rate {} (Retry-After: 1), tokens live {} s; faults on {} profiles rotate every {} s: {}; reload every {} s",
        ms(options.latency),
        options.error_rate,
        options.throttle_rate,
        options.token_lifetime.as_secs(),
        options.faulty,
        options.fault_period.as_secs_f64(),
        FAULT_KINDS.join(", "),
        options.reload_every.as_secs_f64(),
    );
}

/// Waits until the first discovery refresh has finished (`/-/ready`).
async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return;
        }
        assert!(Instant::now() < until, "exporter not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `/proc` sample of `pid` a second, until `stop` or the process is
/// gone.
fn spawn_monitor(
    pid: u32,
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let t = load.started.elapsed().as_secs_f64();
            match proc_sample(pid, t, load.metrics_done.load(Ordering::Relaxed)) {
                Some(sample) => samples.push(sample),
                None => break,
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        samples
    })
}

/// Every load task at once, until the load's end.
async fn drive(load: &Arc<Load>, options: &Options, world: &World) {
    let mut tasks = Vec::new();
    for _ in 0..options.scrapers {
        tasks.push(tokio::spawn(Arc::clone(load).scraper()));
    }
    tasks.push(tokio::spawn(Arc::clone(load).prober(world.kept.clone())));
    tasks.push(tokio::spawn(Arc::clone(load).fault_driver(
        Arc::clone(&world.sim),
        options.faulty,
        options.fault_period,
    )));
    if !options.reload_every.is_zero() {
        tasks.push(tokio::spawn(Arc::clone(load).reloader(
            world.config_path.clone(),
            world.configs.clone(),
            options.reload_every,
        )));
    }
    for task in tasks {
        task.await.expect("load task");
    }
}

/// The load phase against a ready exporter, then 3 s idle and the
/// exporter's own `/metrics`.
fn load_phase(
    runtime: &tokio::runtime::Runtime,
    options: &Options,
    world: &World,
    exporter: &mut Exporter,
    base: &str,
) -> report::Outcome {
    let pid = exporter.pid;
    let before_load = proc_sample(pid, 0.0, 0).expect("exporter /proc readable");
    let started = Instant::now();
    let load = Arc::new(Load {
        base: base.to_owned(),
        scrape_timeout: options.scrape_timeout,
        interval: options.interval,
        started,
        until: started + options.duration,
        tally: Mutex::default(),
        metrics_done: AtomicU64::new(0),
    });
    let stop_monitor = Arc::new(AtomicBool::new(false));
    let monitor = spawn_monitor(pid, Arc::clone(&load), Arc::clone(&stop_monitor));
    runtime.block_on(drive(&load, options, world));
    let load_time = started.elapsed();
    let crashed_during_load = exporter.exited();
    stop_monitor.store(true, Ordering::Relaxed);
    let samples = monitor.join().unwrap_or_default();
    let end_sample = proc_sample(pid, load_time.as_secs_f64(), 0);

    std::thread::sleep(Duration::from_secs(3));
    let idle_sample = proc_sample(pid, started.elapsed().as_secs_f64(), 0);
    let final_metrics = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .header(SCRAPE_TIMEOUT_HEADER, "5")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    });
    let mut tally = std::mem::take(&mut *load.tally.lock().unwrap());
    tally.metrics_latencies.sort();
    tally.probe_latencies.sort();
    report::Outcome {
        before_load,
        samples,
        tally,
        load_time,
        crashed_during_load,
        end_sample,
        idle_sample,
        final_metrics,
    }
}

/// Runs the soak; `true` when a target was missed.
fn run(options: &Options) -> bool {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::start(&runtime, options);
    print_header(options, world.customers);
    let log_path = std::env::temp_dir().join(format!("avepoint-soak-{}.log", std::process::id()));
    let mut exporter = Exporter::start(&world.config_path, log_path);
    println!(
        "  exporter: {EXPORTER} pid {} on {}; log {}",
        exporter.pid,
        exporter.addr,
        exporter.log_path.display()
    );
    let base = format!("http://{}", exporter.addr);
    runtime.block_on(wait_ready(&base));
    let outcome = load_phase(&runtime, options, &world, &mut exporter, &base);
    let termination = exporter.terminate();
    drop(runtime);

    let log = std::mem::take(&mut *exporter.log.lock().unwrap());
    let log_bytes = std::fs::metadata(&exporter.log_path).map_or(0, |m| m.len());
    report::print_timeline(&outcome);
    report::print_load(&outcome, &log, &world.sim, log_bytes);
    let missed = report::targets(options, &outcome, &log, &termination);
    report::verdict(&outcome, &missed, &exporter.log_path)
}
