//! `ApiClient::fetch_profile_details` against the simulator: the details of
//! every simulated profile decode to exactly what the simulator holds, the
//! call shares the client's retry path and counters, a failure is an error
//! naming what went wrong, and an error without a `request-id` header takes
//! the ids of its body.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::avepoint::{ApiClient, ApiError, ApiMetrics, ScanProfileDetails};
use avepoint_exporter::config::{CLIENT_SECRET_ENV, ProfileTarget, Settings};
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, RunningSimulator, SimulatorConfig, wire,
};
use common::{Harness, Setup};
use reqwest::StatusCode;

async fn simulator() -> RunningSimulator {
    RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

/// A client for `sim` with `extra` lines under `avepoint:`.
fn client(sim: &RunningSimulator, extra: &str) -> (ApiClient, ApiMetrics) {
    let yaml = sim
        .exporter_config(None)
        .replacen("targets:", &format!("{extra}targets:"), 1);
    let settings = Settings::from_yaml(&yaml, Path::new("test.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
    })
    .unwrap();
    let metrics = ApiMetrics::default();
    (
        ApiClient::new(&settings.avepoint, metrics.clone()).unwrap(),
        metrics,
    )
}

fn target(customer_id: &str, profile_id: &str) -> ProfileTarget {
    ProfileTarget {
        customer_id: customer_id.to_owned(),
        profile_id: profile_id.to_owned(),
    }
}

fn encoded(metrics: &ApiMetrics) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[tokio::test]
async fn every_simulated_profile_has_exactly_its_details() {
    let sim = simulator().await;
    let (client, metrics) = client(&sim, "");
    let mut seen_off = false;
    let mut seen_unknown_type = false;
    for customer in sim.customers() {
        for profile in &customer.profiles {
            let details: ScanProfileDetails = client
                .fetch_profile_details(&target(&customer.id, &profile.id))
                .await
                .unwrap();
            assert_eq!(details.profile_id, profile.id);
            assert_eq!(details.profile_name, profile.name);
            assert_eq!(details.tenant_id, customer.tenant_id);
            assert_eq!(details.tenant_domain, customer.tenant_domain);
            assert_eq!(details.scan_mode, Some(profile.scan_mode));
            assert_eq!(
                details.modified_time.map(|t| t.unix_timestamp()),
                Some(profile.modified_time.unix_timestamp())
            );
            assert_eq!(
                details.created_time.map(|t| t.unix_timestamp()),
                Some(profile.created_time.unix_timestamp())
            );
            assert_eq!(
                details.daily_scan_time,
                profile.daily_scan.map(|(h, m)| h * 3600 + m * 60)
            );
            let containers: Vec<(String, i64)> = details
                .containers
                .iter()
                .map(|c| (c.name.clone(), c.object_type))
                .collect();
            assert_eq!(containers, profile.containers);
            assert!(!format!("{details:?}").contains('@'), "{details:?}");
            seen_off |= details.daily_scan_time.is_none();
            seen_unknown_type |= containers.iter().any(|(_, t)| *t == 42);
        }
    }
    assert!(seen_off && seen_unknown_type);
    assert_eq!(sim.stats().details_requests.load(Ordering::Relaxed), 9);
    assert!(
        encoded(&metrics).contains(
            "avepoint_api_requests_total{api_endpoint=\"profile_details\",code=\"200\"} 9\n"
        ),
        "{}",
        encoded(&metrics)
    );
}

#[tokio::test]
async fn details_faults_are_errors_that_say_what_went_wrong() {
    let sim = simulator().await;
    let (client, metrics) = client(&sim, "");
    let (customer, profile) = sim.profile_ids()[3].clone();
    let profile_target = target(&customer, &profile);

    sim.set_details_fault(&profile, Fault::WrongTypes);
    let error = client
        .fetch_profile_details(&profile_target)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "invalid_body");
    assert!(
        error.to_string().starts_with(
            "invalid response body: not scan profile details: enableDailyScan must be \"No\" or a time \"hh:mm\", got \"sometimes\""
        ),
        "{error}"
    );

    sim.set_details_fault(&profile, Fault::Status(404));
    let error = client
        .fetch_profile_details(&profile_target)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ApiError::Status { status, hint, .. }
            if *status == StatusCode::NOT_FOUND && hint == "customer or scan profile not found; check the ids"),
        "{error}"
    );

    // A 503 is retried once, as every call is, and then given up.
    sim.set_details_fault(&profile, Fault::Status(503));
    let before = sim.stats().details_requests.load(Ordering::Relaxed);
    let error = client
        .fetch_profile_details(&profile_target)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "503");
    assert_eq!(
        sim.stats().details_requests.load(Ordering::Relaxed) - before,
        2
    );
    assert!(
        encoded(&metrics).contains(
            "avepoint_api_retries_total{api_endpoint=\"profile_details\",code=\"503\"} 1\n"
        )
    );

    // A 503 given up asks for a pause, which holds for every call, as
    // AvePoint sees one client.
    let error = client
        .scan_profile(
            &profile_target,
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "backoff");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.clear_faults();
    assert!(client.fetch_profile_details(&profile_target).await.is_ok());
}

/// A fresh simulator numbers requests from 1, the token request first: the
/// first API request is `sim-00000002`.
#[tokio::test]
async fn without_the_request_id_header_the_error_body_ids_are_used() {
    for omitted in [false, true] {
        let sim = simulator().await;
        sim.set_request_id_header_omitted(omitted);
        let (client, _) = client(&sim, "  endpoint: changes\n");
        let (customer, profile) = sim.profile_ids()[0].clone();
        sim.set_fault(&profile, Fault::Status(404));
        let error = client
            .scan_profile(
                &target(&customer, &profile),
                tokio::time::Instant::now() + Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert_eq!(
            error.request_id(),
            Some("sim-00000002"),
            "omitted: {omitted}"
        );
        let trace = wire::trace_id(2);
        assert_eq!(error.trace_id(), Some(trace.as_str()));
        assert!(
            error.to_string().ends_with(&format!(
                " (AvePoint says: injected fault) [request-id sim-00000002, trace-id {trace}]"
            )),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_round_reports_the_body_request_id_when_the_header_is_missing() {
    let harness = Harness::start(Setup {
        avepoint_extra: "  endpoint: changes\n".into(),
        sim: SimulatorConfig::default(),
        ..Setup::default()
    })
    .await;
    harness.sim.set_request_id_header_omitted(true);
    let (_, profile) = harness.sim.profile_ids()[5].clone();
    harness.sim.set_fault(&profile, Fault::Status(403));
    let snapshot = harness.state.rounds().collect(Duration::from_secs(3)).await;
    let failure = snapshot.profiles[5].outcome.as_ref().unwrap_err();
    let request_id = failure.request_id.as_deref().unwrap();
    assert!(
        request_id.starts_with("sim-") && request_id.len() == 12,
        "{request_id}"
    );
    let number = u64::from_str_radix(&request_id[4..], 16).unwrap();
    assert!(failure.message.ends_with(&format!(
        "[request-id {request_id}, trace-id {}]",
        wire::trace_id(number)
    )));
    assert_eq!(snapshot.failures(), 1);
}
