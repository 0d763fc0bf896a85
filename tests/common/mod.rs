//! Shared test harness: a simulator and an exporter on 127.0.0.1:0, a
//! scrape helper and a small exposition parser for exact assertions.

pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use avepoint_exporter::avepoint::ScanProfileReport;
use avepoint_exporter::collect::FetchError;
use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings, process_env};
use avepoint_exporter::simulator::{DEMO_CLIENT_SECRET, RunningSimulator, SimulatorConfig};
use avepoint_exporter::state::{AppState, StateOptions};
use avepoint_exporter::web_config::WebConfigHandle;
use avepoint_exporter::{serve, web};
use tokio::sync::oneshot;

/// The `state` label values of `avepoint_scan_last_status_state`, in the
/// documented order: written out here, not taken from the exporter, so a
/// state renamed or dropped there fails the tests that walk this list.
pub const STATES: [&str; 15] = [
    "none",
    "running",
    "finished",
    "failed",
    "finished_with_exception",
    "skipped",
    "pending",
    "failed_to_start",
    "canceled",
    "rejected",
    "stopped",
    "not_scanned",
    "disabled",
    "not_started",
    "wait_for_configuration",
];

/// A simulator plus an exporter scraping it, both on loopback.
pub struct Harness {
    pub sim: RunningSimulator,
    pub state: Arc<AppState>,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

/// Options for [`Harness::start`].
/// See [`Setup::prepare_sim`].
pub type PrepareSim = Box<dyn Fn(&RunningSimulator)>;

pub struct Setup {
    pub sim: SimulatorConfig,
    /// Extra (customer, profile) targets besides the simulator's own.
    pub extra_targets: Vec<(String, String)>,
    /// Lines appended under `avepoint:` in the generated config.
    pub avepoint_extra: String,
    /// The secret the exporter uses.
    pub secret: String,
    /// Whether the simulator's profiles are listed as static targets.
    pub static_targets: bool,
    /// Appended to the generated config (top-level sections such as `discovery:`).
    pub config_tail: String,
    /// Last edit of the generated config text (e.g. to point a URL elsewhere).
    pub rewrite: Option<Box<dyn Fn(String) -> String>>,
    /// Runs on the simulator before the exporter starts (e.g. to set a
    /// fault its background tasks must meet on their first request).
    pub prepare_sim: Option<PrepareSim>,
    /// Whether the profile details refresher runs (the default config's
    /// behaviour). Off unless a test is about it: its background requests
    /// would otherwise race the request and token counts other tests pin.
    pub profile_details: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            sim: SimulatorConfig::default(),
            extra_targets: Vec::new(),
            avepoint_extra: String::new(),
            secret: DEMO_CLIENT_SECRET.to_owned(),
            static_targets: true,
            config_tail: String::new(),
            rewrite: None,
            prepare_sim: None,
            profile_details: false,
        }
    }
}

impl Setup {
    /// The default setup with a simulator that answers every request after
    /// `latency`: for tests of timing, concurrency and timeouts.
    pub fn slow(latency: Duration) -> Setup {
        Setup {
            sim: SimulatorConfig {
                latency,
                ..SimulatorConfig::default()
            },
            ..Setup::default()
        }
    }
}

impl Harness {
    /// How many scan profile requests the simulator has answered.
    pub fn profile_requests(&self) -> u64 {
        self.sim
            .stats()
            .profile_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many token requests the simulator has answered.
    pub fn token_requests(&self) -> u64 {
        self.sim
            .stats()
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A harness over [`Setup::slow`] with at most `concurrency` requests in flight.
    pub async fn start_slow(concurrency: usize, latency: Duration) -> Harness {
        Harness::start(Setup {
            avepoint_extra: format!("  concurrency: {concurrency}\n"),
            ..Setup::slow(latency)
        })
        .await
    }

    /// The ids of the simulator's customers, in its order.
    pub fn customer_ids(&self) -> Vec<String> {
        self.sim.customers().iter().map(|c| c.id.clone()).collect()
    }

    /// A harness whose targets come from discovery only (`config_tail` is
    /// added after `discovery: enabled: true`), once the first discovery
    /// has finished (`/-/ready`).
    pub async fn start_discovering(sim: SimulatorConfig, config_tail: &str) -> Harness {
        let harness = Harness::start(Setup {
            sim,
            static_targets: false,
            config_tail: format!("discovery:\n  enabled: true\n{config_tail}"),
            ..Setup::default()
        })
        .await;
        for _ in 0..100 {
            if harness.get("/-/ready", &[]).await.status == 200 {
                return harness;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("discovery never finished");
    }

    pub async fn start(setup: Setup) -> Harness {
        let sim = RunningSimulator::start(setup.sim, ([127, 0, 0, 1], 0).into())
            .await
            .expect("simulator binds");
        if let Some(prepare) = &setup.prepare_sim {
            prepare(&sim);
        }
        let mut targets = if setup.static_targets {
            sim.profile_ids()
        } else {
            Vec::new()
        };
        targets.extend(setup.extra_targets);
        let yaml = sim.exporter_config(Some(&targets)).replacen(
            "targets:",
            &format!("{}targets:", setup.avepoint_extra),
            1,
        ) + &setup.config_tail;
        let yaml = if setup.profile_details || yaml.contains("profile_details:") {
            yaml
        } else {
            yaml + "profile_details:\n  enabled: false\n"
        };
        let yaml = match &setup.rewrite {
            Some(rewrite) => rewrite(yaml),
            None => yaml,
        };
        let secret = setup.secret;
        let settings = Settings::from_yaml(&yaml, Path::new("test.yml"), |name| {
            (name == CLIENT_SECRET_ENV).then(|| secret.clone())
        })
        .expect("generated config is valid");
        let state = AppState::build(&settings, StateOptions::default()).expect("state builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let router = web::router(Arc::clone(&state));
        tokio::spawn(serve::serve(listener, router, async {
            let _ = shutdown_rx.await;
        }));
        Harness {
            sim,
            state,
            addr,
            shutdown: Some(shutdown),
        }
    }

    /// GET a path of the exporter with optional extra headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut request = client.get(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("exporter answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.text().await.unwrap();
        Response {
            status,
            content_type,
            body,
        }
    }

    /// Scrape `/metrics` in the Prometheus text format.
    pub async fn scrape(&self) -> Exposition {
        let response = self.get("/metrics", &[]).await;
        assert_eq!(response.status, 200, "{}", response.body);
        Exposition::parse(&response.body)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition (text 0.0.4 or OpenMetrics; comments skipped).
#[derive(Debug)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(parse_sample)
            .collect();
        Exposition {
            text: text.to_owned(),
            samples,
        }
    }

    /// Every sample of `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// How many profiles are up (`avepoint_scan_profile_up 1`).
    pub fn up_count(&self) -> usize {
        self.find("avepoint_scan_profile_up", &[])
            .iter()
            .filter(|s| s.value == 1.0)
            .count()
    }

    /// Whether every `avepoint_scan_profile_up` sample is `value` (all up
    /// with 1.0, all down with 0.0; true when there is none).
    pub fn every_up_is(&self, value: f64) -> bool {
        self.find("avepoint_scan_profile_up", &[])
            .iter()
            .all(|s| s.value == value)
    }

    /// The value of the one sample of `name` with `labels`; panics if not exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "expected one {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }

    /// Value of a per-profile metric.
    pub fn profile_value(&self, name: &str, customer: &str, profile: &str) -> f64 {
        self.value(name, &[("customer_id", customer), ("profile_id", profile)])
    }

    /// Whether any per-profile series of this profile other than up/fetch
    /// duration exists (there must be none for a failed profile).
    pub fn has_data_for(&self, profile: &str) -> bool {
        self.samples.iter().any(|s| {
            s.labels.get("profile_id").map(String::as_str) == Some(profile)
                && s.name != "avepoint_scan_profile_up"
                && s.name != "avepoint_scan_profile_fetch_duration_seconds"
        })
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name_end, has_labels) = match line.find(['{', ' ']) {
        Some(i) => (i, line.as_bytes()[i] == b'{'),
        None => panic!("bad sample line {line:?}"),
    };
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if has_labels {
        let mut chars = rest[1..].char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label set");
            match c {
                '}' => break i + 2,
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next().expect("unterminated value");
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some('\\') => value.push('\\'),
                                Some('"') => value.push('"'),
                                other => panic!("bad escape {other:?} in {line:?}"),
                            },
                            '"' => break,
                            '\n' => panic!("raw newline in {line:?}"),
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        };
        rest = &rest[end..];
    }
    let value_text = rest.split_whitespace().next().expect("sample value");
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

/// Whether an external tool is installed; in CI (CI=true) a missing tool
/// fails the test instead of skipping it, so CI can never pass by skipping.
pub fn tool_available(check: &mut std::process::Command, what: &str) -> bool {
    let ok = check.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what} is required in CI but is not installed (see .ci/run)");
        }
        eprintln!("SKIPPED: {what} is not installed (bash .ci/run installs it)");
    }
    ok
}

/// The real binary, serving on the port it announces in its `listening`
/// log line; its stderr is collected. Killed if a test ends without
/// [`RunningBinary::terminate`].
pub struct RunningBinary {
    child: std::process::Child,
    /// `host:port` from the (first) `listening` line.
    pub address: String,
    /// `host:port` from every `listening` line [`RunningBinary::spawn_listening`] waited for.
    pub addresses: Vec<String>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RunningBinary {
    /// Start `command` (the binary with its arguments and environment; it
    /// must listen on `127.0.0.1:0` and log in logfmt) and wait for it to listen.
    pub fn spawn(command: std::process::Command) -> RunningBinary {
        Self::spawn_listening(command, 1)
    }

    /// Like [`RunningBinary::spawn`], for a binary that logs `count`
    /// `listening` lines (one per address).
    pub fn spawn_listening(mut command: std::process::Command, count: usize) -> RunningBinary {
        use std::io::{BufRead, BufReader};
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&log);
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("message=listening")
                    && let Some(address) = line
                        .split_whitespace()
                        .find_map(|f| f.strip_prefix("address="))
                {
                    let _ = address_tx.send(address.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut binary = RunningBinary {
            child,
            address: String::new(),
            addresses: Vec::new(),
            log,
            reader: Some(reader),
        };
        while binary.addresses.len() < count {
            let address = address_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!("the binary did not start listening:\n{}", binary.log())
                });
            binary.addresses.push(address);
        }
        binary.address = binary.addresses[0].clone();
        binary
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then a clean exit within 10 s; returns the whole log.
    pub fn terminate(mut self) -> String {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let log = self.log();
        assert!(exit.success(), "exit status {exit:?}\n{log}");
        log
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The message of the `auth` error every profile failed with in the first round.
pub async fn auth_error_of_every_profile(harness: &Harness) -> String {
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    assert_eq!(snapshot.failures(), snapshot.profiles.len());
    let error = snapshot.profiles[0].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, "auth");
    error.message.clone()
}

/// After the token endpoint refused the client credentials: every profile
/// is down and has no data, and the refusal is counted as a 401 of the
/// token endpoint.
pub fn assert_token_refused(harness: &Harness, metrics: &Exposition) {
    for (customer, profile) in harness.sim.profile_ids() {
        assert_eq!(
            metrics.profile_value("avepoint_scan_profile_up", &customer, &profile),
            0.0
        );
        assert!(!metrics.has_data_for(&profile));
    }
    assert!(
        metrics.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "token"), ("code", "401")]
        ) >= 1.0
    );
}

/// The per-profile metrics that carry a field of `report` as is, with its value.
pub fn report_values(report: &ScanProfileReport) -> [(&'static str, f64); 5] {
    [
        (
            "avepoint_scan_new_registered_content",
            report.new_registered_content_count as f64,
        ),
        (
            "avepoint_scan_moved_to_another_container",
            report.moved_to_another_container as f64,
        ),
        (
            "avepoint_scan_removed_from_m365_or_out_of_policy",
            report.removed_from_m365_or_out_of_policy as f64,
        ),
        ("avepoint_scan_last_status", report.last_scan_status as f64),
        (
            "avepoint_scan_last_update_timestamp_seconds",
            report.last_update_time.unwrap().unix_timestamp_nanos() as f64 / 1e9,
        ),
    ]
}

/// A customer and scan profile that no path of the simulator knows.
pub fn unknown_target() -> (String, String) {
    (
        "caf90000-2cc6-4000-b04b-794c00005ea3".to_owned(),
        "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d".to_owned(),
    )
}

/// A harness whose first round fails for [`unknown_target`] alone: a 404 starting `message_start`.
pub async fn start_with_unknown_target(
    avepoint_extra: &str,
    message_start: &str,
) -> (Harness, FetchError) {
    let unknown = unknown_target();
    let harness = Harness::start(Setup {
        extra_targets: vec![unknown.clone()],
        avepoint_extra: avepoint_extra.to_owned(),
        ..Setup::default()
    })
    .await;
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    let failed: Vec<_> = snapshot
        .profiles
        .iter()
        .filter_map(|p| p.outcome.as_ref().err().map(|e| (&p.target, e)))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0.profile_id, unknown.1);
    let error = failed[0].1.clone();
    assert_eq!(error.kind, "404");
    assert!(
        error.message.starts_with(message_start),
        "{}",
        error.message
    );
    (harness, error)
}

/// `router` served under `web_config` in a task until the returned sender sends or is dropped.
pub fn serve_in_background(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    web_config: Arc<WebConfigHandle>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve::serve_with_web_config(
        listener,
        router,
        async {
            let _ = shutdown_rx.await;
        },
        Some(web_config),
    ));
    (shutdown, task)
}

/// The exporter built from the config file at `path`, as `serve` builds it
/// (reloadable from that file; `POST /-/reload` when `enable_lifecycle`),
/// served on 127.0.0.1:0 until the test's runtime ends. Returns its state
/// and base URL (`http://127.0.0.1:PORT`).
pub async fn serve_config_file(path: &Path, enable_lifecycle: bool) -> (Arc<AppState>, String) {
    let settings = Settings::load(path, process_env).unwrap();
    let state = AppState::build(
        &settings,
        StateOptions {
            config_file: Some(path.to_owned()),
            enable_lifecycle,
            ..StateOptions::default()
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve::serve(
        listener,
        web::router(Arc::clone(&state)),
        std::future::pending(),
    ));
    (state, base)
}

/// The exporter binary on the config file `config`, listening on
/// 127.0.0.1:0 and logging at trace level, with no AVEPOINT_CLIENT_ID from
/// the test's environment; the caller sets or removes the secret.
pub fn trace_command(config: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"));
    command
        .args(["--config.file", config.to_str().unwrap()])
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "trace",
        ])
        .env_remove("AVEPOINT_CLIENT_ID");
    command
}

/// A config file in `dir` that validates without anything answering at
/// its URLs (settings are checked before anything connects).
pub fn write_offline_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("avepoint.yml");
    std::fs::write(
        &path,
        "avepoint:\n  client_id: 00000000-0000-0000-0000-000000000000\n  base_url: http://127.0.0.1:9\n  token_url: http://127.0.0.1:9/connect/token\ntargets:\n  - customer_id: caf90000-2cc6-4000-b04b-794c00005ea3\n    profile_ids: [47dba9a1-1004-4c2d-b2ce-8f5e66f5842d]\n",
    )
    .unwrap();
    path
}

/// The body of a plain GET of `url` (15 s at most).
pub async fn get_text(url: String) -> String {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `metrics` has `count` `avepoint_scan_profile_up` lines and each says 1:
/// every scrape reached AvePoint.
pub fn assert_profiles_up(metrics: &str, count: usize) {
    let up: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("avepoint_scan_profile_up{"))
        .collect();
    assert_eq!(up.len(), count, "{metrics}");
    assert!(up.iter().all(|line| line.ends_with("} 1")), "{up:?}");
}
