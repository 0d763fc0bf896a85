//! The real binary as an operator runs it: logs at trace level, secrets
//! kept out of every log line and response, failure log lines with the
//! request id, and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avepoint_exporter::simulator::{RunningSimulator, SimulatorConfig};

const SECRET: &str = "Sup3r-S3cret-Value-7f3a9c";

struct Exporter {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// Start the binary on 127.0.0.1:0 against `config` and wait for its
/// "listening" log line to learn the port.
fn start_exporter(config: &str, secret: &str) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("avepoint.yml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"))
        .args(["--config.file", path.to_str().unwrap()])
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "trace",
        ])
        .env_remove("AVEPOINT_CLIENT_ID")
        .env("AVEPOINT_CLIENT_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
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
    let address = address_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("exporter did not start: {}", log.lock().unwrap()));
    Exporter {
        child,
        address,
        log,
        _dir: dir,
    }
}

impl Exporter {
    async fn get(&self, path: &str) -> String {
        reqwest::Client::new()
            .get(format!("http://{}{path}", self.address))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the full log.
    fn terminate(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "exit status {exit:?}");
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_tokens_never_appear_in_logs_or_responses() {
    let sim = RunningSimulator::start(
        SimulatorConfig {
            client_secret: SECRET.into(),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let mut targets = sim.profile_ids();
    targets.push((
        "caf90000-2cc6-4000-b04b-794c00005ea3".into(),
        "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d".into(),
    ));
    let exporter = start_exporter(&sim.exporter_config(Some(&targets)), SECRET);

    let mut responses = String::new();
    for path in ["/metrics", "/metrics", "/", "/-/healthy", "/-/ready"] {
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
