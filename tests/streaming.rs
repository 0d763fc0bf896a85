//! `changes` bodies of any length: decoded as they stream in (the lists
//! counted, never held), the count fields exported, a list that disagrees
//! with its count warned about once, and `avepoint.max_response_bytes` a
//! cap on bytes read that fails only the profile that exceeds it.
//!
//! The memory bound itself is measured from outside the process, by
//! `cargo bench --bench changes_memory` (BENCHMARKS.md).

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{Fault, FaultAt, SimulatorConfig};
use common::{Exposition, Harness, Setup};

/// Every log line of this test binary (one global subscriber: the
/// exporter logs from many tasks and threads).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines_about(profile_id: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs().lock().unwrap())
        .lines()
        .filter(|line| line.contains(profile_id))
        .map(str::to_owned)
        .collect()
}

/// The `changes` path, and time for large bodies in a debug build on a
/// busy machine.
fn changes_setup(seed: u64, extra: &str) -> Setup {
    Setup {
        sim: SimulatorConfig {
            seed,
            ..SimulatorConfig::default()
        },
        avepoint_extra: format!(
            "  endpoint: changes\n  request_timeout: 2m\n  round_timeout: 2m\n{extra}"
        ),
        ..Setup::default()
    }
}

async fn scrape_slowly(harness: &Harness) -> Exposition {
    let response = harness
        .get(
            "/metrics",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "120")],
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    Exposition::parse(&response.body)
}

fn up(metrics: &Exposition, profile: &str) -> f64 {
    metrics.value("avepoint_scan_profile_up", &[("profile_id", profile)])
}

fn counts(metrics: &Exposition, profile: &str) -> [f64; 3] {
    [
        "avepoint_scan_new_registered_content",
        "avepoint_scan_moved_to_another_container",
        "avepoint_scan_removed_from_m365_or_out_of_policy",
    ]
    .map(|name| metrics.value(name, &[("profile_id", profile)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_changes_body_with_200000_objects_per_list_is_up() {
    logs();
    let harness = Harness::start(changes_setup(11, "")).await;
    let (customer, profile) = harness.sim.profile_ids()[2].clone();
    let mut report = harness.sim.current_report(&customer, &profile).unwrap();
    report.new_registered_content_count = 200_000;
    report.moved_to_another_container = 200_000;
    report.removed_from_m365_or_out_of_policy = 200_000;
    harness
        .sim
        .set_fault(FaultAt::Report(&profile), Fault::Report(report));
    harness
        .sim
        .set(Knob::ChangeListSize(&profile, Some(200_000)));
    let metrics = scrape_slowly(&harness).await;
    for (_, other) in harness.sim.profile_ids() {
        assert_eq!(up(&metrics, &other), 1.0, "{other}");
    }
    assert_eq!(counts(&metrics, &profile), [200_000.0; 3]);
    // The lists match their counts: nothing to warn about.
    assert_eq!(log_lines_about(&profile), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_disagrees_with_its_count_exports_the_count_and_warns_once() {
    logs();
    let harness = Harness::start(changes_setup(12, "")).await;
    let (customer, profile) = harness.sim.profile_ids()[4].clone();
    let mut report = harness.sim.current_report(&customer, &profile).unwrap();
    report.new_registered_content_count = 3;
    report.moved_to_another_container = 7;
    report.removed_from_m365_or_out_of_policy = 5;
    harness
        .sim
        .set_fault(FaultAt::Report(&profile), Fault::Report(report));
    harness.sim.set(Knob::ChangeListSize(&profile, Some(7)));
    for _ in 0..3 {
        let metrics = scrape_slowly(&harness).await;
        assert_eq!(up(&metrics, &profile), 1.0);
        assert_eq!(counts(&metrics, &profile), [3.0, 7.0, 5.0]);
    }
    let lines = log_lines_about(&profile);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains(" WARN "), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!(
            "customer_id={customer} profile_id={profile} mismatch=newRegisteredContent holds 7 items where newRegisteredContentCount says 3; removedFromMicrosoft365OrOutOfPolicyObjects holds 7 items where removedFromMicrosoft365OrOutofPolicy says 5"
        )),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_fails_only_its_profile_naming_the_cap() {
    logs();
    let harness = Harness::start(changes_setup(13, "  max_response_bytes: 4194304\n")).await;
    let targets = harness.sim.profile_ids();
    let (_, profile) = targets[6].clone();
    // About 12 MB, streamed without a Content-Length: the cap must count.
    harness
        .sim
        .set(Knob::ChangeListSize(&profile, Some(50_000)));
    let snapshot = harness
        .state
        .rounds()
        .collect(Duration::from_secs(60))
        .await;
    let failure = snapshot.profiles[6].outcome.as_ref().unwrap_err();
    assert_eq!(failure.kind, "invalid_body");
    assert!(
        failure.message.starts_with(
            "invalid response body: response body larger than avepoint.max_response_bytes (4194304 bytes), refused [request-id sim-"
        ),
        "{}",
        failure.message
    );
    assert_eq!(snapshot.failures(), 1);
    let metrics = scrape_slowly(&harness).await;
    for (index, (_, other)) in targets.iter().enumerate() {
        let expected = if index == 6 { 0.0 } else { 1.0 };
        assert_eq!(up(&metrics, other), expected, "{other}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_the_minimum_rate_is_given_up_early_and_a_slow_one_above_it_is_read() {
    // request_timeout 30 s: without the floor the trickle would hold its
    // permit (and, being chunked and long, a decode slot) for 30 s.
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            seed: 17,
            ..SimulatorConfig::default()
        },
        avepoint_extra: "  endpoint: changes\n  request_timeout: 30s\n  round_timeout: 60s\n"
            .into(),
        ..Setup::default()
    })
    .await;
    let targets = harness.sim.profile_ids();
    let (trickling, steady) = (targets[2].1.clone(), targets[3].1.clone());
    harness.sim.set_fault(
        FaultAt::Report(&trickling),
        Fault::Trickle {
            bytes: 100_000,
            per_second: 2_000,
        },
    );
    // 48 KB at 24 KB/s: slow, but above 8 KiB/s all the way.
    harness.sim.set_fault(
        FaultAt::Report(&steady),
        Fault::Trickle {
            bytes: 48_000,
            per_second: 24_000,
        },
    );
    let started = std::time::Instant::now();
    let snapshot = harness
        .state
        .rounds()
        .collect(Duration::from_secs(60))
        .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let failure = snapshot.profiles[2].outcome.as_ref().unwrap_err();
    assert_eq!(failure.kind, "timeout");
    assert!(
        failure
            .message
            .starts_with("request failed: response body too slow: ")
            && failure
                .message
                .ends_with(", below the minimum of 8 KiB/s; given up"),
        "{}",
        failure.message
    );
    assert!(
        snapshot.profiles[3].outcome.is_ok(),
        "{:?}",
        snapshot.profiles[3].outcome
    );
    assert_eq!(snapshot.failures(), 1);
}
