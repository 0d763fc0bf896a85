//! Reloading the config without a restart: `POST /-/reload` and SIGHUP.
//! A good edit takes effect on the next scrape; a bad edit is refused and
//! the old targets keep being scraped.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, FaultAt, RunningSimulator, SimulatorConfig,
};
use avepoint_exporter::state::{AppState, ReloadOutcome};
use common::Exposition;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    /// A config dir with the simulator's secret in a file next to the config.
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), DEMO_CLIENT_SECRET).unwrap();
        Files { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("avepoint.yml")
    }

    /// Write a config for `targets`; `client_secret_file` is relative.
    fn write(&self, sim: &RunningSimulator, targets: &[(String, String)], extra: &str) {
        let yaml = sim.exporter_config(Some(targets)).replacen(
            "targets:",
            "  client_secret_file: secret\ntargets:",
            1,
        ) + extra;
        std::fs::write(self.config(), yaml).unwrap();
    }
}

/// The exporter for the config at `path`, with `POST /-/reload` enabled.
async fn start(path: &Path) -> (Arc<AppState>, String) {
    start_with(path, true).await
}

async fn start_with(path: &Path, enable_lifecycle: bool) -> (Arc<AppState>, String) {
    common::serve_config_file(path, enable_lifecycle).await
}

/// Waits (up to 2 s) until the discovery of the running config has
/// attempted its first refresh, so a scrape sees its outcome.
async fn wait_for_first_discovery(state: &AppState) {
    for _ in 0..100 {
        if state
            .pipeline()
            .discovery_state()
            .is_some_and(|d| d.attempted)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scrape(base: &str) -> Exposition {
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Exposition::parse(&body)
}

async fn post_reload(base: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn profiles(metrics: &Exposition) -> Vec<String> {
    let mut ids: Vec<String> = metrics
        .find("avepoint_scan_profile_up", &[])
        .iter()
        .map(|s| s.labels["profile_id"].clone())
        .collect();
    ids.sort();
    ids
}

async fn simulator() -> RunningSimulator {
    RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_good_edit_takes_effect_on_the_next_scrape() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    let files = Files::new();
    files.write(&sim, &ids[..2], "");
    let (_state, base) = start(&files.config()).await;
    let before = scrape(&base).await;
    assert_eq!(profiles(&before).len(), 2);
    assert_eq!(
        before.value("avepoint_exporter_config_last_reload_successful", &[]),
        1.0
    );
    let loaded_at = before.value(
        "avepoint_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    files.write(&sim, &ids[..5], "");
    assert_eq!(
        post_reload(&base).await,
        (200, "Config reloaded\n".to_owned())
    );

    let after = scrape(&base).await;
    let mut expected: Vec<String> = ids[..5].iter().map(|(_, p)| p.clone()).collect();
    expected.sort();
    assert_eq!(profiles(&after), expected);
    assert_eq!(
        after.value("avepoint_exporter_config_last_reload_successful", &[]),
        1.0
    );
    assert!(
        after.value(
            "avepoint_exporter_config_last_reload_success_timestamp_seconds",
            &[]
        ) > loaded_at
    );
    // The API counters survive the reload.
    assert_eq!(
        after.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "scan_profile"), ("code", "200")]
        ),
        7.0
    );
}

#[tokio::test]
async fn a_bad_edit_is_refused_and_the_old_targets_stay() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    let files = Files::new();
    files.write(&sim, &ids[..3], "");
    let (state, base) = start(&files.config()).await;
    let loaded_at = scrape(&base).await.value(
        "avepoint_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    );

    files.write(&sim, &ids, "scrape_interval: 1m\n");
    let (status, body) = post_reload(&base).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        format!(
            "failed to reload config: config file {}: scrape_interval: unknown field `scrape_interval`, \
             expected one of `avepoint`, `targets`, `discovery`, `profile_details`, `collectors`, `metrics` at line 23 column 1\n",
            files.config().display()
        )
    );
    let after = scrape(&base).await;
    let mut expected: Vec<String> = ids[..3].iter().map(|(_, p)| p.clone()).collect();
    expected.sort();
    assert_eq!(profiles(&after), expected);
    assert!(after.every_up_is(1.0));
    assert_eq!(
        after.value("avepoint_exporter_config_last_reload_successful", &[]),
        0.0
    );
    assert_eq!(
        after.value(
            "avepoint_exporter_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        loaded_at
    );
    assert!(!state.reload_metrics.last_successful());

    // Fixing the file recovers.
    files.write(&sim, &ids, "");
    assert_eq!(post_reload(&base).await.0, 200);
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
}

#[tokio::test]
async fn reload_turns_discovery_on_and_off() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    let files = Files::new();
    files.write(&sim, &ids[..1], "");
    let (state, base) = start(&files.config()).await;
    files.write(&sim, &[], "discovery:\n  enabled: true\n");
    assert_eq!(post_reload(&base).await.0, 200);
    wait_for_first_discovery(&state).await;
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
    files.write(&sim, &ids[..1], "");
    assert_eq!(post_reload(&base).await.0, 200);
    assert_eq!(profiles(&scrape(&base).await).len(), 1);
    assert!(state.pipeline().discovery.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_running_binary() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    let files = Files::new();
    files.write(&sim, &ids[..1], "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"))
        .args(["--config.file", files.config().to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env_remove("AVEPOINT_CLIENT_SECRET")
        .env_remove("AVEPOINT_CLIENT_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            let line = lines_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    let listening = wait_for("message=listening");
    let address = listening
        .split_whitespace()
        .find_map(|f| f.strip_prefix("address="))
        .unwrap()
        .to_owned();
    let base = format!("http://{address}");
    assert_eq!(profiles(&scrape(&base).await).len(), 1);

    files.write(&sim, &ids, "");
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let reloaded = wait_for("config reloaded");
    assert!(reloaded.contains("targets=9"), "{reloaded}");
    assert_eq!(profiles(&scrape(&base).await).len(), 9);

    files.write(&sim, &ids, "avepoint_typo: 1\n");
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let refused = wait_for("config reload failed");
    assert!(refused.contains("avepoint_typo"), "{refused}");
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_reload_keeps_the_discovered_targets_until_the_new_discovery_succeeds() {
    let sim = simulator().await;
    let files = Files::new();
    files.write(&sim, &[], "discovery:\n  enabled: true\n");
    let (state, base) = start(&files.config()).await;
    wait_for_first_discovery(&state).await;
    assert_eq!(profiles(&scrape(&base).await).len(), 9);

    // The new config's first discovery fails: the last known set stays.
    sim.set(Knob::DiscoveryFailing(true));
    files.write(
        &sim,
        &[],
        "discovery:\n  enabled: true\n  refresh_interval: 2h\n",
    );
    assert_eq!(post_reload(&base).await.0, 200);
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
    let mut errors = 0;
    for _ in 0..100 {
        errors = state
            .pipeline()
            .discovery_state()
            .map_or(0, |d| d.errors_total);
        if errors > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        errors, 1,
        "the new discovery's first refresh should have failed"
    );
    let metrics = scrape(&base).await;
    assert_eq!(profiles(&metrics).len(), 9);
    assert_eq!(metrics.value("avepoint_discovery_errors_total", &[]), 1.0);
}

#[tokio::test]
async fn a_back_off_survives_a_reload() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    sim.set_fault(
        FaultAt::Report(&ids[0].1),
        avepoint_exporter::simulator::Fault::Throttle(Some("30".into())),
    );
    let files = Files::new();
    files.write(&sim, &ids, "");
    std::fs::write(
        files.config(),
        std::fs::read_to_string(files.config()).unwrap().replacen(
            "targets:",
            "  concurrency: 16\ntargets:",
            1,
        ),
    )
    .unwrap();
    let (_state, base) = start(&files.config()).await;
    scrape(&base).await;
    let requests = || {
        sim.stats()
            .profile_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(requests(), 9);
    assert_eq!(post_reload(&base).await.0, 200);
    let after = scrape(&base).await;
    // AvePoint asked for 30 s; a new config does not end the pause.
    assert_eq!(requests(), 9);
    assert!(after.every_up_is(0.0));
}

#[tokio::test]
async fn a_static_target_dropped_by_a_reload_goes_even_while_discovery_fails() {
    let sim = simulator().await;
    let extra = (
        "caf90000-2cc6-4000-b04b-794c00005ea3".to_owned(),
        "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d".to_owned(),
    );
    let files = Files::new();
    files.write(
        &sim,
        std::slice::from_ref(&extra),
        "discovery:\n  enabled: true\n",
    );
    let (state, base) = start(&files.config()).await;
    wait_for_first_discovery(&state).await;
    assert_eq!(profiles(&scrape(&base).await).len(), 10);

    sim.set(Knob::DiscoveryFailing(true));
    files.write(&sim, &[], "discovery:\n  enabled: true\n");
    assert_eq!(post_reload(&base).await.0, 200);
    let after = profiles(&scrape(&base).await);
    assert_eq!(after.len(), 9);
    assert!(!after.contains(&extra.1));
}

/// Wait until the simulator's discovery request count stops moving.
async fn settled_discovery_requests(sim: &RunningSimulator) -> u64 {
    let count = || sim.stats().discovery_requests.load(Ordering::Relaxed);
    let mut last = count();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now == last && now > 0 {
            return now;
        }
        last = now;
    }
    panic!("discovery never settled ({last} requests)");
}

#[tokio::test]
async fn reload_over_http_is_off_without_the_lifecycle_flag() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    let files = Files::new();
    files.write(&sim, &ids[..2], "");
    let (state, base) = start_with(&files.config(), false).await;
    files.write(&sim, &ids, "");
    assert_eq!(
        post_reload(&base).await,
        (
            403,
            "Lifecycle API is not enabled. Start with --web.enable-lifecycle, or send SIGHUP.\n"
                .to_owned()
        )
    );
    assert_eq!(profiles(&scrape(&base).await).len(), 2);
    // The reload itself (what SIGHUP runs) still works.
    assert_eq!(state.reload().await.unwrap(), ReloadOutcome::Reloaded);
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
}

#[tokio::test]
async fn a_hundred_reloads_of_an_unchanged_config_cost_nothing() {
    let sim = simulator().await;
    let files = Files::new();
    files.write(&sim, &[], "discovery:\n  enabled: true\n");
    let (state, base) = start(&files.config()).await;
    let discovery = settled_discovery_requests(&sim).await;
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
    let tokens = sim.stats().token_requests.load(Ordering::Relaxed);
    let before = state.pipeline();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let client = reqwest::Client::new();
    let reload = || async {
        let response = client
            .post(format!("{base}/-/reload"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    // Warm the client's connections, so the count of tasks compares like
    // with like.
    futures_util::future::join_all((0..10).map(|_| reload())).await;
    let tasks_before = tasks();
    for _ in 0..10 {
        let answers = futures_util::future::join_all((0..10).map(|_| reload())).await;
        for answer in answers {
            assert_eq!(answer, (200, "Config unchanged\n".to_owned()));
        }
    }
    assert_eq!(tasks(), tasks_before, "a reload left a task behind");
    assert!(
        Arc::ptr_eq(&before, &state.pipeline()),
        "something was rebuilt"
    );
    assert_eq!(settled_discovery_requests(&sim).await, discovery);
    assert_eq!(profiles(&scrape(&base).await).len(), 9);
    assert_eq!(sim.stats().token_requests.load(Ordering::Relaxed), tokens);
}

#[tokio::test]
async fn a_burst_of_reloads_of_a_changed_config_rebuilds_once_and_stops_the_old_discovery() {
    let sim = simulator().await;
    let files = Files::new();
    // The old discovery refreshes every second: if its task outlived the
    // reload, the request count would keep climbing.
    files.write(
        &sim,
        &[],
        "discovery:\n  enabled: true\n  refresh_interval: 1s\n",
    );
    let (state, base) = start(&files.config()).await;
    settled_discovery_requests(&sim).await;
    let tokens = sim.stats().token_requests.load(Ordering::Relaxed);
    let old_discovery = Arc::downgrade(state.pipeline().discovery.as_ref().unwrap());

    // A new concurrency: a new client (one new token), a new discovery.
    let yaml = std::fs::read_to_string(files.config()).unwrap();
    std::fs::write(
        files.config(),
        yaml.replace("refresh_interval: 1s", "refresh_interval: 1h")
            .replacen("targets:", "  concurrency: 4\ntargets:", 1),
    )
    .unwrap();
    let start_count = sim.stats().discovery_requests.load(Ordering::Relaxed);
    let answers = futures_util::future::join_all((0..10).map(|_| post_reload(&base))).await;
    for answer in &answers {
        assert_eq!(answer.0, 200, "{}", answer.1);
    }
    assert!(answers.iter().any(|a| a.1 == "Config reloaded\n"));
    let settled = settled_discovery_requests(&sim).await;
    // One discovery run of the new config (customers + 3 profile lists),
    // give or take one refresh of the old one that was already under way.
    assert!(
        (start_count + 4..=start_count + 8).contains(&settled),
        "{start_count} -> {settled}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        sim.stats().discovery_requests.load(Ordering::Relaxed),
        settled,
        "the replaced discovery kept refreshing"
    );
    assert!(
        old_discovery.upgrade().is_none(),
        "the old discovery is alive"
    );
    assert_eq!(
        sim.stats().token_requests.load(Ordering::Relaxed),
        tokens + 1
    );
    assert_eq!(state.pipeline().settings.avepoint.limits.concurrency, 4);
}

#[tokio::test]
async fn a_reload_that_leaves_the_avepoint_section_alone_keeps_the_client() {
    let sim = simulator().await;
    let ids = sim.profile_ids();
    let files = Files::new();
    files.write(&sim, &ids[..2], "");
    let (state, base) = start(&files.config()).await;
    assert_eq!(profiles(&scrape(&base).await).len(), 2);
    let client = Arc::clone(&state.pipeline().client);
    files.write(&sim, &ids[..5], "");
    assert_eq!(
        post_reload(&base).await,
        (200, "Config reloaded\n".to_owned())
    );
    assert!(Arc::ptr_eq(&client, &state.pipeline().client));
    assert_eq!(profiles(&scrape(&base).await).len(), 5);
    // The token fetched for the first scrape serves on.
    assert_eq!(sim.stats().token_requests.load(Ordering::Relaxed), 1);
}
