//! The real binary as an operator runs it: logs at trace level, secrets
//! kept out of every log line and response, failure log lines with the
//! request id, and graceful shutdown on SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avepoint_exporter::simulator::backup::NEVER_RAN_CUSTOMER;
use avepoint_exporter::simulator::{FaultAt, RunningSimulator, SimulatorConfig};
use common::RunningBinary;

const SECRET: &str = "Sup3r-S3cret-Value-7f3a9c";

struct Exporter {
    binary: RunningBinary,
    _dir: tempfile::TempDir,
}

/// Start the binary on 127.0.0.1:0 against `config`, logging at trace level.
fn start_exporter(config: &str, secret: &str) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("avepoint.yml");
    std::fs::write(&path, config).unwrap();
    let mut command = common::trace_command(&path);
    command.env("AVEPOINT_CLIENT_SECRET", secret);
    Exporter {
        binary: RunningBinary::spawn(command),
        _dir: dir,
    }
}

impl Exporter {
    async fn get(&self, path: &str) -> String {
        common::get_text(format!("http://{}{path}", self.binary.address)).await
    }

    /// SIGTERM, then a clean exit; returns the full log.
    fn terminate(self) -> String {
        self.binary.terminate()
    }
}

/// The simulator on 127.0.0.1:0, accepting only the client secret SECRET
/// (the value the tests look for in logs and responses).
async fn secret_simulator() -> RunningSimulator {
    RunningSimulator::start(
        SimulatorConfig {
            client_secret: SECRET.into(),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_tokens_never_appear_in_logs_or_responses() {
    let sim = secret_simulator().await;
    let mut targets = sim.profile_ids();
    targets.push((
        "caf90000-2cc6-4000-b04b-794c00005ea3".into(),
        "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d".into(),
    ));
    // Discovery too: the simulator sends each customer's owner e-mail address.
    let config = sim.exporter_config(Some(&targets)) + "discovery:\n  enabled: true\n";
    let exporter = start_exporter(&config, SECRET);

    let mut responses = String::new();
    for path in ["/-/ready", "/metrics", "/metrics", "/", "/-/healthy", "/sd"] {
        responses.push_str(&exporter.get(path).await);
    }
    sim.revoke_tokens();
    responses.push_str(&exporter.get("/metrics").await);
    let log = exporter.terminate();

    assert!(responses.contains("avepoint_scan_profile_up"));
    assert!(
        log.contains("level=trace") || log.contains("level=debug"),
        "not at trace level:\n{log}"
    );
    for (what, text) in [("log", &log), ("responses", &responses)] {
        assert!(!text.contains(SECRET), "client secret in {what}");
        assert!(!text.contains("sim-token-"), "access token in {what}");
        assert!(
            !text.contains(".example"),
            "an owner e-mail address in {what}"
        );
    }
    // The failing profile is logged with everything needed to chase it.
    let failure = log
        .lines()
        .find(|line| line.contains("scan profile fetch failed"))
        .unwrap_or_else(|| panic!("no failure line in:\n{log}"));
    assert!(
        failure.contains("customer_id=caf90000-2cc6-4000-b04b-794c00005ea3"),
        "{failure}"
    );
    assert!(
        failure.contains("profile_id=47dba9a1-1004-4c2d-b2ce-8f5e66f5842d"),
        "{failure}"
    );
    assert!(failure.contains("status=404"), "{failure}");
    assert!(failure.contains("request_id=sim-"), "{failure}");
    assert!(log.contains("message=\"shutting down\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_secret_is_logged_clearly_without_the_secret() {
    let sim = RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let exporter = start_exporter(&sim.exporter_config(None), SECRET);
    let metrics = exporter.get("/metrics").await;
    let log = exporter.terminate();
    let up: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("avepoint_scan_profile_up{"))
        .collect();
    assert_eq!(up.len(), 9);
    assert!(up.iter().all(|line| line.ends_with("} 0")), "{up:?}");
    assert!(log.contains("invalid_client"), "{log}");
    assert!(
        log.contains("check avepoint.client_id and the client secret"),
        "{log}"
    );
    assert!(!log.contains(SECRET) && !metrics.contains(SECRET));
}

/// The README's first command: `demo` serves every metric of the design's
/// table for every simulated profile within one scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_every_metric_for_every_simulated_profile() {
    let (mut child, metrics_url, banner, _) = spawn_demo("warn");
    let base = metrics_url.trim_end_matches("/metrics").to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "demo never became ready");
    let body = text_of(&client, &metrics_url).await;
    let _ = child.kill();
    let _ = child.wait();

    let banner = banner.lock().unwrap().clone();
    assert!(banner.contains("discovery:\n  enabled: true"), "{banner}");
    let up: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("avepoint_scan_profile_up{"))
        .collect();
    assert_eq!(up.len(), 9, "{body}");
    for metric in [
        "avepoint_scan_profile_up",
        "avepoint_scan_profile_fetch_duration_seconds",
        "avepoint_scan_profile_info",
        "avepoint_scan_new_registered_content",
        "avepoint_scan_moved_to_another_container",
        "avepoint_scan_removed_from_m365_or_out_of_policy",
        "avepoint_scan_last_status",
        "avepoint_scan_last_update_timestamp_seconds",
        "avepoint_scan_profile_modified_timestamp_seconds",
    ] {
        let count = body
            .lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .count();
        assert_eq!(count, 9, "{metric}: {count} series\n{body}");
    }
    let states = body
        .lines()
        .filter(|l| l.starts_with("avepoint_scan_last_status_state{"))
        .count();
    assert_eq!(states, 9 * 15);
    for metric in [
        "avepoint_exporter_build_info",
        "avepoint_exporter_collect_duration_seconds",
        "avepoint_exporter_targets 9",
        "avepoint_api_requests_total",
        "avepoint_api_request_duration_seconds_bucket",
        "avepoint_api_token_refreshes_total",
        "avepoint_api_token_expiry_timestamp_seconds",
        "avepoint_discovery_targets 9",
        "avepoint_customer_info",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(metric), "{metric} missing");
    }
}

fn run_check(config: &str, secret: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("avepoint.yml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"))
        .args(["check", "--config.file", path.to_str().unwrap()])
        .env_remove("AVEPOINT_CLIENT_ID")
        .env("AVEPOINT_CLIENT_SECRET", secret)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_a_table_and_fails_when_a_profile_fails() {
    let sim = RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mut targets = sim.profile_ids()[..2].to_vec();
    targets.push((
        "caf90000-2cc6-4000-b04b-794c00005ea3".into(),
        "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d".into(),
    ));
    let (ok, stdout, _) = tokio::task::spawn_blocking({
        let config = sim.exporter_config(Some(&targets));
        move || run_check(&config, avepoint_exporter::simulator::DEMO_CLIENT_SECRET)
    })
    .await
    .unwrap();
    assert!(!ok, "check must fail when a profile fails");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CUSTOMER"), "{stdout}");
    assert!(
        lines[0].contains("LAST SCAN") && lines[0].ends_with("RESULT"),
        "{stdout}"
    );
    let (customer, profile) = &targets[0];
    let report = sim.current_report(customer, profile).unwrap();
    let row = lines.iter().find(|l| l.contains(profile.as_str())).unwrap();
    assert!(row.ends_with(" ok"), "{row}");
    assert!(
        row.contains(&report.new_registered_content_count.to_string()),
        "{row}"
    );
    let failed = lines
        .iter()
        .find(|l| l.contains("47dba9a1-1004-4c2d-b2ce-8f5e66f5842d"))
        .unwrap();
    assert!(
        failed.contains("FAILED: HTTP 404 Not Found: customer or scan profile not found"),
        "{failed}"
    );
    // Which path answered: the seed path, with the default endpoint: auto.
    assert_eq!(
        lines[lines.len() - 2],
        "profile path: scan-profiles-v2 (avepoint.endpoint: auto)"
    );
    assert_eq!(lines.last().unwrap(), &"3 profiles: 2 ok, 1 failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_waits_for_discovery() {
    let sim = RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let config = sim.exporter_config(Some(&[])) + "discovery:\n  enabled: true\n";
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_check(&config, avepoint_exporter::simulator::DEMO_CLIENT_SECRET)
    })
    .await
    .unwrap();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("discovery: 3 customers, 9 scan profiles\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("9 profiles: 9 ok, 0 failed\n"), "{stdout}");
}

/// A back-off is logged once per round, not once per profile: a long pause
/// must not flood the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_off_is_logged_once_per_round() {
    let sim = secret_simulator().await;
    let throttled = sim.profile_ids()[0].1.clone();
    sim.set_fault(
        FaultAt::Report(&throttled),
        avepoint_exporter::simulator::Fault::Throttle(Some("30".into())),
    );
    let config = sim
        .exporter_config(None)
        .replacen("targets:", "  concurrency: 16\ntargets:", 1);
    let exporter = start_exporter(&config, SECRET);
    for _ in 0..3 {
        exporter.get("/metrics").await;
    }
    let log = exporter.terminate();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("scan profile fetch failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("status=429"), "{}", failures[0]);
    let pauses: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("asked for a pause"))
        .collect();
    assert_eq!(pauses.len(), 2, "{pauses:#?}");
    assert!(
        pauses.iter().all(|l| l.contains("skipped=9")),
        "{pauses:#?}"
    );
}

/// `check` with the backup collectors: each one's permission, then every
/// customer's first page; a permission the app registration lacks is named
/// and fails the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_collector_permission_and_first_page() {
    let sim = RunningSimulator::start(
        SimulatorConfig {
            permissions: "elements.scanprofiles.read.all elements.jobs.read.all".into(),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = sim.exporter_config(None)
        + "collectors:\n  backup_jobs:\n    enabled: true\n  backup_coverage:\n    enabled: true\n";
    let customers: Vec<String> = sim.customers().iter().map(|c| c.id.clone()).collect();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_check(&config, avepoint_exporter::simulator::DEMO_CLIENT_SECRET)
    })
    .await
    .unwrap();
    assert!(
        !ok,
        "a missing permission fails the check\n{stdout}\n{stderr}"
    );
    let tail: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("collector "))
        .collect();
    let mut expected =
        vec!["collector backup_jobs (permission elements.jobs.read.all):".to_owned()];
    expected.extend(customers.iter().enumerate().map(|(index, c)| {
        // Three days of four modules; one customer lists a module that never ran.
        let jobs = 12 + usize::from(index == NEVER_RAN_CUSTOMER);
        format!(
            "  customer {c}: first page {jobs} items of {jobs}, asked for as one request for all job types (body {{}})"
        )
    }));
    expected.push(String::new());
    expected
        .push("collector backup_coverage (permission elements.cbprotected.read.all):".to_owned());
    // Named once, not as a 403 per customer; the other collectors work.
    expected.push(
        "  FAILED: the app registration lacks elements.cbprotected.read.all; grant it in Elements > API app registration"
            .to_owned(),
    );
    assert_eq!(tail, expected, "{stdout}");
    assert!(
        stdout.contains("\n9 profiles: 9 ok, 0 failed\n"),
        "{stdout}"
    );
    assert!(!stderr.contains("client secret"), "{stderr}");
}

/// Issue #18: the binary with the backup jobs collector on and its
/// permission not granted: the log names the permission once (per token
/// refresh, not per request), never hints at the secret, and the scan
/// profiles are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_logged_once_by_name() {
    let sim = RunningSimulator::start(
        SimulatorConfig {
            client_secret: SECRET.into(),
            permissions: "elements.scanprofiles.read.all elements.customers.read.all".into(),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = sim.exporter_config(None) + "collectors:\n  backup_jobs:\n    enabled: true\n";
    let exporter = start_exporter(&config, SECRET);
    let mut metrics = String::new();
    for _ in 0..3 {
        metrics = exporter.get("/metrics").await;
    }
    let log = exporter.terminate();
    let named: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("missing_permissions="))
        .collect();
    assert_eq!(named.len(), 1, "{log}");
    assert!(named[0].contains("level=warn"), "{}", named[0]);
    assert!(
        named[0].contains("missing_permissions=elements.jobs.read.all"),
        "{}",
        named[0]
    );
    assert!(
        named[0].contains("the app registration lacks elements.jobs.read.all"),
        "{}",
        named[0]
    );
    assert!(!log.contains("client secret"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert!(
        metrics
            .contains("avepoint_api_granted_permission{permission=\"elements.jobs.read.all\"} 0\n"),
        "{metrics}"
    );
    common::assert_profiles_up(&metrics, 9);
}

#[tokio::test]
async fn no_address_of_a_user_or_customer_reaches_the_log_or_the_metrics() {
    // The demo runs protected_users and subscriptions against the
    // simulator, whose users and customers all have addresses; at debug
    // level every request is logged.
    let (mut child, metrics_url, stdout, stderr) = spawn_demo("debug");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut body = String::new();
    for _ in 0..200 {
        body = text_of(&client, &metrics_url).await;
        if body.contains("avepoint_backup_users{") && body.contains("avepoint_subscription_seats{")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.contains("avepoint_backup_users{"), "{body}");
    let log = stdout.lock().unwrap().clone() + &stderr.lock().unwrap();
    // The simulator's addresses are user<N>@<tenant>.example and
    // admin@<tenant>.example.
    assert!(log.contains("level=debug"), "debug logging is on:\n{log}");
    for (what, text) in [("log", &log), ("metrics", &body)] {
        assert!(
            !text.contains(".example"),
            "an address in the {what}:\n{text}"
        );
        assert!(!text.contains("@"), "an address in the {what}");
    }
}

/// Lines a child writes, kept as they come.
type Lines = Arc<Mutex<String>>;

/// `demo` on a free port at `log_level`: the child, its metrics URL (from
/// its banner) and what it writes to stdout and to stderr.
fn spawn_demo(log_level: &str) -> (std::process::Child, String, Lines, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"))
        .args([
            "demo",
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            log_level,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let keep = |stream: Box<dyn std::io::Read + Send>| {
        let lines = Lines::default();
        let (sink, url_tx) = (Arc::clone(&lines), url_tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("metrics:") {
                    let _ = url_tx.send(url.trim().to_owned());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        lines
    };
    let stdout = keep(Box::new(child.stdout.take().unwrap()));
    let stderr = keep(Box::new(child.stderr.take().unwrap()));
    let metrics_url = url_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("demo prints its URL");
    (child, metrics_url, stdout, stderr)
}

/// The body of `GET url`, which must answer.
async fn text_of(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}
