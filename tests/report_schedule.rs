//! `collectors.scan_profiles.refresh: report_schedule`: reports read in
//! the background on each profile's plan and served from memory, against
//! the simulator's daily schedule (each profile scans at its own time of a
//! compressed day, Running until its report appears).

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::simulator::{Fault, FaultAt, SimulatorConfig};
use common::{Exposition, Harness, Setup};

fn schedule_setup(day: Duration, collectors: &str) -> Setup {
    Setup {
        sim: SimulatorConfig {
            customers: 2,
            profiles_per_customer: 5,
            day_length: day,
            daily_schedule: true,
            ..SimulatorConfig::default()
        },
        config_tail: format!(
            "collectors:\n  scan_profiles:\n    refresh: report_schedule\n{collectors}"
        ),
        ..Setup::default()
    }
}

/// Scrape until every profile is up (the first reads run at start).
async fn until_all_up(harness: &Harness, profiles: usize) -> Exposition {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = harness.scrape().await;
        if metrics.up_count() == profiles {
            return metrics;
        }
        assert!(
            Instant::now() < until,
            "{} of {profiles} up",
            metrics.up_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn profile_requests(harness: &Harness, profile: &str) -> u64 {
    harness
        .sim
        .requests_per_profile()
        .get(profile)
        .copied()
        .unwrap_or(0)
}

fn total_requests(harness: &Harness) -> u64 {
    harness.sim.requests_per_profile().values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_are_served_from_memory_and_a_burst_of_them_reads_nothing() {
    let harness = Harness::start(schedule_setup(
        Duration::from_secs(3600),
        "    poll_interval: 1m\n    max_age: 30m\n    report_interval: 1h\n",
    ))
    .await;
    let first = until_all_up(&harness, 10).await;
    let reads = total_requests(&harness);
    assert_eq!(reads, 10, "one read per profile at start");
    for _ in 0..20 {
        let metrics = harness.scrape().await;
        assert_eq!(metrics.up_count(), 10);
    }
    assert_eq!(total_requests(&harness), reads, "scrapes must not read");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(
        first.value("avepoint_scan_reports_max_age_seconds", &[]),
        1800.0
    );
    for sample in first.find("avepoint_scan_profile_next_read_timestamp_seconds", &[]) {
        // Nothing is due before max_age (less its spread) or the window
        // before the next report, whichever comes first.
        assert!(
            sample.value > now && sample.value <= now + 1800.0,
            "{sample:?}"
        );
    }
    assert_eq!(
        first
            .find("avepoint_scan_profile_last_read_timestamp_seconds", &[])
            .len(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_reports_are_read_within_a_poll_interval_of_appearing() {
    // A 6-second day: every profile produces a report a day, after a
    // Running phase; polls every second around the expected moment.
    let day = Duration::from_secs(6);
    let harness = Harness::start(schedule_setup(
        day,
        "    poll_interval: 1s\n    max_age: 1m\n    report_interval: 6s\n    report_grace: 2s\n",
    ))
    .await;
    until_all_up(&harness, 10).await;
    tokio::time::sleep(day * 2 + Duration::from_millis(500)).await;
    let metrics = harness.scrape().await;
    assert_eq!(metrics.up_count(), 10);
    // Two days: every profile's new reports seen (at least one each),
    // each within about a poll interval.
    let count = metrics.value("avepoint_scan_report_read_delay_seconds_count", &[]);
    let sum = metrics.value("avepoint_scan_report_read_delay_seconds_sum", &[]);
    assert!(count >= 10.0, "{count} new reports seen");
    assert!(sum / count <= 1.6, "mean delay {}", sum / count);
    // And few reads: the first, then about two per report.
    for (profile, reads) in harness.sim.requests_per_profile() {
        assert!(reads <= 9, "{profile}: {reads} reads in two days");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_read_downs_only_its_profile_and_is_retried() {
    // The fault is set before the exporter starts: its first read (at
    // start) must fail, or the next would only come at max_age.
    let mut setup = schedule_setup(
        Duration::from_secs(3600),
        "    poll_interval: 1s\n    max_age: 30m\n",
    );
    setup.prepare_sim = Some(Box::new(|sim| {
        let failing = sim.profile_ids()[3].1.clone();
        sim.set_fault(FaultAt::Report(&failing), Fault::Status(500));
    }));
    let harness = Harness::start(setup).await;
    let failing = harness.sim.profile_ids()[3].1.clone();
    let until = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let metrics = harness.scrape().await;
        if metrics.up_count() == 9
            && metrics
                .find("avepoint_scan_profile_up", &[("profile_id", &failing)])
                .len()
                == 1
        {
            break metrics;
        }
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metrics.value("avepoint_scan_profile_up", &[("profile_id", &failing)]),
        0.0
    );
    // Its report's series are absent, as for the backup collectors; when
    // it was last read and will be read again are there.
    let series: Vec<&str> = metrics
        .samples
        .iter()
        .filter(|s| s.labels.get("profile_id") == Some(&failing))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        series,
        [
            "avepoint_scan_profile_up",
            "avepoint_scan_profile_fetch_duration_seconds",
            "avepoint_scan_profile_cache_age_seconds",
            "avepoint_scan_profile_next_read_timestamp_seconds",
        ]
    );
    let failed_reads = profile_requests(&harness, &failing);
    harness.sim.clear_faults();
    // Retried after min(1m doubling, poll_interval) = 1 s.
    let up = until_all_up(&harness, 10).await;
    assert!(up.has_data_for(&failing));
    assert!(profile_requests(&harness, &failing) > failed_reads);
}

fn config_error(collectors: &str) -> String {
    let yaml = format!(
        "avepoint:\n  base_url: https://graph.example.com\n  token_url: https://identity.example.com/connect/token\n  client_id: id\ntargets:\n  - customer_id: 11111111-1111-1111-1111-111111111111\n    profile_ids: [22222222-2222-2222-2222-222222222222]\ncollectors:\n  scan_profiles:\n{collectors}"
    );
    Settings::from_yaml(&yaml, Path::new("exporter.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| "secret".to_owned())
    })
    .expect_err("refused")
    .to_string()
}

#[test]
fn bad_schedules_are_refused_naming_the_key_and_the_file() {
    let error = config_error("    refresh: report_schedule\n    poll_interval: 7h\n");
    assert!(
        error.contains("exporter.yml")
            && error.contains("collectors.scan_profiles.poll_interval")
            && error.contains("7h is longer than max_age (6h)"),
        "{error}"
    );
    let error = config_error("    refresh: report_schedule\n    max_age: 0s\n");
    assert!(
        error.contains("collectors.scan_profiles.max_age") && error.contains("at least 1s"),
        "{error}"
    );
    let error = config_error("    refresh: report_schedule\n    poll_interval: -5m\n");
    assert!(error.contains("poll_interval"), "{error}");
    let error = config_error("    max_age: 6h\n");
    assert!(
        error.contains("collectors.scan_profiles.max_age")
            && error.contains("only applies with refresh: report_schedule"),
        "{error}"
    );
    let error = config_error("    refresh: sometimes\n");
    assert!(
        error.contains("every_scrape") && error.contains("report_schedule"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_keeps_the_targets_keeps_the_plans_and_reads_nothing() {
    use avepoint_exporter::config::process_env;
    use avepoint_exporter::simulator::{DEMO_CLIENT_SECRET, RunningSimulator};
    use avepoint_exporter::state::{AppState, StateOptions};
    let sim = RunningSimulator::start(
        SimulatorConfig {
            customers: 2,
            profiles_per_customer: 3,
            daily_schedule: true,
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), DEMO_CLIENT_SECRET).unwrap();
    let config = dir.path().join("avepoint.yml");
    let write = |tail: &str| {
        let yaml = sim.exporter_config(None).replacen(
            "targets:",
            "  client_secret_file: secret\ntargets:",
            1,
        ) + "profile_details:\n  enabled: false\ncollectors:\n  scan_profiles:\n    refresh: report_schedule\n"
            + tail;
        std::fs::write(&config, yaml).unwrap();
    };
    write("");
    let settings = Settings::load(&config, process_env).unwrap();
    let state = AppState::build(
        &settings,
        StateOptions {
            config_file: Some(config.clone()),
            ..StateOptions::default()
        },
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while state
        .rounds()
        .collect(Duration::from_secs(5))
        .await
        .failures()
        > 0
    {
        assert!(Instant::now() < until, "never all read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reads: u64 = sim.requests_per_profile().values().sum();
    assert_eq!(reads, 6);
    // Another setting changes; the targets and the client do not.
    write("metrics:\n  last_status_state: current\n");
    assert!(state.reload().await.is_ok());
    let snapshot = state.rounds().collect(Duration::from_secs(5)).await;
    assert_eq!(snapshot.failures(), 0, "served at once from the kept plans");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.requests_per_profile().values().sum::<u64>(), reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_that_discovery_adds_is_read_at_once() {
    let sim = SimulatorConfig {
        customers: 3,
        profiles_per_customer: 2,
        daily_schedule: true,
        ..SimulatorConfig::default()
    };
    let harness = Harness::start_discovering(
        sim,
        "  refresh_interval: 1s\ncollectors:\n  scan_profiles:\n    refresh: report_schedule\n    max_age: 1h\n",
    )
    .await;
    let customers: Vec<String> = {
        let mut ids: Vec<String> = harness
            .sim
            .profile_ids()
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        ids.dedup();
        ids
    };
    until_all_up(&harness, 6).await;
    harness.sim.hide_customers(&[customers[2].as_str()]);
    let until = Instant::now() + Duration::from_secs(20);
    while harness.scrape().await.up_count() != 4 {
        assert!(Instant::now() < until, "the hidden customer never left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hidden: Vec<String> = harness
        .sim
        .profile_ids()
        .into_iter()
        .filter(|(c, _)| *c == customers[2])
        .map(|(_, p)| p)
        .collect();
    let before: Vec<u64> = hidden
        .iter()
        .map(|p| profile_requests(&harness, p))
        .collect();
    harness.sim.hide_customers(&[]);
    // Back within a discovery refresh (1 s) plus a tick, long before max_age.
    until_all_up(&harness, 6).await;
    for (profile, before) in hidden.iter().zip(before) {
        assert_eq!(profile_requests(&harness, profile), before + 1, "{profile}");
    }
}
