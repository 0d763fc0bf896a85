//! The exporter against an AvePoint served over HTTPS, as the real one is:
//! a private CA through `avepoint.ca_file`, HTTP/2 negotiated with ALPN.

use crate::common::tls;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::simulator::{DEMO_CLIENT_SECRET, RunningSimulator, SimulatorConfig};
use avepoint_exporter::state::{AppState, StateOptions};
use avepoint_exporter::web_config::WebConfigHandle;

async fn tls_simulator(dir: &Path) -> (RunningSimulator, tls::TlsFiles) {
    let files = tls::write_tls_files(dir);
    let web_config = WebConfigHandle::load(&files.web_config).expect("web config loads");
    let sim = RunningSimulator::start_with_web_config(
        SimulatorConfig::default(),
        ([127, 0, 0, 1], 0).into(),
        Some(web_config),
    )
    .await
    .expect("simulator binds");
    (sim, files)
}

/// Settings for `yaml`, without the profile details refresher: its
/// background requests would race the request counts pinned here.
fn settings(yaml: &str, dir: &Path) -> Result<Settings, String> {
    let yaml = format!("{yaml}profile_details:\n  enabled: false\n");
    Settings::from_yaml(&yaml, &dir.join("avepoint.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
    })
    .map_err(|error| error.to_string())
}

#[tokio::test]
async fn https_with_a_private_ca_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, files) = tls_simulator(dir.path()).await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let yaml = sim.exporter_config(None).replacen(
        "targets:",
        &format!("  ca_file: {}\ntargets:", files.ca_file.display()),
        1,
    );
    let state = AppState::build(
        &settings(&yaml, dir.path()).unwrap(),
        StateOptions::default(),
    )
    .unwrap();
    let snapshot = state.rounds().collect(Duration::from_secs(5)).await;
    assert_eq!(snapshot.failures(), 0, "{:?}", snapshot.profiles[0].outcome);
    let (customer, profile) = &sim.profile_ids()[3];
    let report = sim.current_report(customer, profile).unwrap();
    assert_eq!(snapshot.profiles[3].outcome.as_ref().unwrap(), &report);
    // The token and all nine profiles went over HTTP/2, none over HTTP/1.1.
    assert_eq!(sim.protocols().http2_requests.load(Ordering::Relaxed), 10);
    assert_eq!(sim.protocols().http1_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_every_profile_with_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _files) = tls_simulator(dir.path()).await;
    let state = AppState::build(
        &settings(&sim.exporter_config(None), dir.path()).unwrap(),
        StateOptions::default(),
    )
    .unwrap();
    let snapshot = state.rounds().collect(Duration::from_secs(5)).await;
    assert_eq!(snapshot.failures(), 9);
    let error = snapshot.profiles[0].outcome.as_ref().unwrap_err();
    assert!(
        error.message.starts_with("token request failed: "),
        "{}",
        error.message
    );
    assert!(
        error.message.to_lowercase().contains("certificate"),
        "{}",
        error.message
    );
    assert_eq!(sim.stats().profile_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn ca_file_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _files) = tls_simulator(dir.path()).await;
    std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").unwrap();
    for (file, expected) in [
        (
            "missing.pem",
            "missing.pem: No such file or directory (os error 2)",
        ),
        ("empty.pem", "empty.pem holds no PEM certificate"),
    ] {
        let yaml = sim.exporter_config(None).replacen(
            "targets:",
            &format!("  ca_file: {file}\ntargets:"),
            1,
        );
        let error = settings(&yaml, dir.path()).unwrap_err();
        let config = dir.path().join("avepoint.yml");
        assert!(
            error.starts_with(&format!(
                "config file {}: avepoint.ca_file: ",
                config.display()
            )),
            "{error}"
        );
        assert!(error.ends_with(expected), "{error}");
    }
}
