//! `metrics.last_status_state: all | current | none`: the exact exposition of
//! the status state set in each mode, on `/metrics` and `/probe`, the raw
//! code gauge in every mode, the series count per profile the README's
//! table states, and the setting taking effect on a config reload.

use crate::common;

use std::path::Path;

use avepoint_exporter::avepoint::ScanProfileReport;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, FaultAt, RunningSimulator, SimulatorConfig,
};
use common::{Exposition, Harness, STATES, Setup};
use time::macros::datetime;

const HELP_ALL: &str = "# HELP avepoint_scan_last_status_state 1 for the documented state of the profile's last scan, 0 for the others; all 0 for an undocumented status code.";
const HELP_CURRENT: &str = "# HELP avepoint_scan_last_status_state 1 for the documented state of the profile's last scan; only that state's series is exported (metrics.last_status_state: current), none for an undocumented status code.";
const TYPE: &str = "# TYPE avepoint_scan_last_status_state gauge";

/// A report with both timestamps and status `code`.
fn report(profile_id: &str, code: i64) -> ScanProfileReport {
    ScanProfileReport {
        profile_name: "Finance".into(),
        profile_id: profile_id.into(),
        tenant_domain: "contoso".into(),
        tenant_id: "c2350b99-c7a2-4605-b7d4-79e8646f66c3".into(),
        scan_mode: Some(1),
        modified_time: Some(datetime!(2025-09-11 03:19:14 UTC)),
        last_update_time: Some(datetime!(2025-09-12 05:00:00 UTC)),
        last_scan_status: code,
        new_registered_content_count: 1,
        moved_to_another_container: 0,
        removed_from_m365_or_out_of_policy: 0,
        new_registered_content_listed: None,
        moved_to_another_container_listed: None,
        removed_from_m365_or_out_of_policy_listed: None,
    }
}

/// One customer, three profiles: status 3 (failed), status 99
/// (undocumented), and one whose fetch fails.
fn pin(sim: &RunningSimulator) -> Vec<(String, String)> {
    let ids = sim.profile_ids();
    assert_eq!(ids.len(), 3);
    sim.set_fault(
        FaultAt::Report(&ids[0].1),
        Fault::Report(report(&ids[0].1, 3)),
    );
    sim.set_fault(
        FaultAt::Report(&ids[1].1),
        Fault::Report(report(&ids[1].1, 99)),
    );
    sim.set_fault(FaultAt::Report(&ids[2].1), Fault::Status(500));
    ids
}

fn sim_config() -> SimulatorConfig {
    SimulatorConfig {
        customers: 1,
        profiles_per_customer: 3,
        ..SimulatorConfig::default()
    }
}

async fn harness(mode: Option<&str>) -> (Harness, Vec<(String, String)>) {
    let harness = Harness::start(Setup {
        sim: sim_config(),
        config_tail: mode
            .map(|mode| format!("metrics:\n  last_status_state: {mode}\n"))
            .unwrap_or_default(),
        ..Setup::default()
    })
    .await;
    let ids = pin(&harness.sim);
    (harness, ids)
}

/// The `avepoint_scan_last_status_state` family of an exposition, as text.
fn state_family(body: &str) -> String {
    body.lines()
        .filter(|line| {
            line.starts_with("avepoint_scan_last_status_state{")
                || line.starts_with("# HELP avepoint_scan_last_status_state ")
                || line.starts_with("# TYPE avepoint_scan_last_status_state ")
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

fn state_line(customer: &str, profile: &str, state: &str, value: u8) -> String {
    format!(
        "avepoint_scan_last_status_state{{customer_id=\"{customer}\",profile_id=\"{profile}\",state=\"{state}\"}} {value}\n"
    )
}

/// What each mode must write for the pinned profiles.
fn expected(mode: &str, ids: &[(String, String)]) -> String {
    let (failed, undocumented) = (&ids[0], &ids[1]);
    match mode {
        "all" => {
            let mut text = format!("{HELP_ALL}\n{TYPE}\n");
            for state in STATES {
                text += &state_line(&failed.0, &failed.1, state, u8::from(state == "failed"));
            }
            for state in STATES {
                text += &state_line(&undocumented.0, &undocumented.1, state, 0);
            }
            text
        }
        "current" => format!(
            "{HELP_CURRENT}\n{TYPE}\n{}",
            state_line(&failed.0, &failed.1, "failed", 1)
        ),
        "none" => String::new(),
        other => panic!("no mode {other}"),
    }
}

/// The raw code gauge is there in every mode, undocumented codes included.
fn assert_raw_codes(metrics: &Exposition, ids: &[(String, String)]) {
    for ((customer, profile), code) in ids.iter().zip([3.0, 99.0]) {
        assert_eq!(
            metrics.profile_value("avepoint_scan_last_status", customer, profile),
            code
        );
    }
    assert!(
        metrics
            .find("avepoint_scan_last_status", &[("profile_id", &ids[2].1)])
            .is_empty()
    );
}

#[tokio::test]
async fn each_mode_writes_exactly_its_state_series_on_metrics_and_probe() {
    for (config, mode) in [
        (None, "all"),
        (Some("all"), "all"),
        (Some("current"), "current"),
        (Some("none"), "none"),
    ] {
        let (harness, ids) = harness(config).await;
        let metrics = harness.get("/metrics", &[]).await;
        assert_eq!(metrics.status, 200);
        assert_eq!(state_family(&metrics.body), expected(mode, &ids), "{mode}");
        assert_raw_codes(&Exposition::parse(&metrics.body), &ids);

        let probe = harness
            .get(&format!("/probe?customer_id={}", ids[0].0), &[])
            .await;
        assert_eq!(probe.status, 200, "{}", probe.body);
        assert_eq!(state_family(&probe.body), expected(mode, &ids), "{mode}");
        assert_raw_codes(&Exposition::parse(&probe.body), &ids);

        // OpenMetrics: the same lines (gauges need no suffix).
        let open = harness
            .get(
                "/metrics",
                &[("accept", "application/openmetrics-text; version=1.0.0")],
            )
            .await;
        assert!(
            open.content_type
                .starts_with("application/openmetrics-text")
        );
        assert_eq!(state_family(&open.body), expected(mode, &ids), "{mode}");
    }
}

/// Series per profile in each mode, counted from the real output, and the
/// README's table, which must state the same numbers.
#[tokio::test]
async fn series_per_profile_match_the_readme_table() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for (mode, per_profile, state_set) in [("all", 24, 15), ("current", 10, 1), ("none", 9, 0)] {
        let (harness, ids) = harness(Some(mode)).await;
        let metrics = harness.scrape().await;
        let (customer, profile) = &ids[0];
        let of_profile = |name: Option<&str>| {
            metrics
                .samples
                .iter()
                .filter(|s| name.is_none_or(|name| s.name == name))
                .filter(|s| s.labels.get("customer_id") == Some(customer))
                .filter(|s| s.labels.get("profile_id") == Some(profile))
                .count()
        };
        assert_eq!(of_profile(None), per_profile, "{mode}");
        assert_eq!(
            of_profile(Some("avepoint_scan_last_status_state")),
            state_set,
            "{mode}"
        );
        // The failed profile: up and fetch duration only, in every mode.
        let failed = metrics
            .samples
            .iter()
            .filter(|s| s.labels.get("profile_id") == Some(&ids[2].1))
            .count();
        assert_eq!(failed, 2, "{mode}");

        let default = if mode == "all" { " (default)" } else { "" };
        let row = format!(
            "| `{mode}`{default} | {per_profile} | {state_set} | {} |",
            thousands(per_profile * 10_000)
        );
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn the_mode_changes_on_reload() {
    let sim = RunningSimulator::start(sim_config(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let ids = pin(&sim);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), DEMO_CLIENT_SECRET).unwrap();
    let path = dir.path().join("avepoint.yml");
    let write = |mode: &str| {
        let yaml = sim.exporter_config(Some(&ids)).replacen(
            "targets:",
            "  client_secret_file: secret\ntargets:",
            1,
        ) + &format!("metrics:\n  last_status_state: {mode}\n");
        std::fs::write(&path, yaml).unwrap();
    };
    write("all");
    let base = start(&path).await;
    let family = |body: String| state_family(&body);
    assert_eq!(family(get(&base, "/metrics").await), expected("all", &ids));

    for mode in ["current", "none", "all"] {
        write(mode);
        let reload = reqwest::Client::new()
            .post(format!("{base}/-/reload"))
            .send()
            .await
            .unwrap();
        assert_eq!(reload.status().as_u16(), 200, "{mode}");
        assert_eq!(
            family(get(&base, "/metrics").await),
            expected(mode, &ids),
            "{mode}"
        );
    }
}

/// The exporter for the config at `path`, with `POST /-/reload` enabled.
async fn start(path: &Path) -> String {
    common::serve_config_file(path, true).await.1
}

async fn get(base: &str, path: &str) -> String {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
