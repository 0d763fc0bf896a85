//! `ApiClient::get(PROFILE_DETAILS, ..)` against the simulator: the details of
//! every simulated profile decode to exactly what the simulator holds, the
//! call shares the client's retry path and counters, a failure is an error
//! naming what went wrong, and an error without a `request-id` header takes
//! the ids of its body.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::avepoint::details::PROFILE_DETAILS;
use avepoint_exporter::avepoint::{ApiClient, ApiError, ApiMetrics, ScanProfileDetails};
use avepoint_exporter::config::{CLIENT_SECRET_ENV, ProfileTarget, Settings};
use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, FaultAt, RunningSimulator, SimulatorConfig, wire,
};
use common::{Harness, Setup};
use reqwest::StatusCode;

async fn simulator() -> RunningSimulator {
    RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

/// One profile's details, as the profile details reader asks for them.
async fn details(
    client: &ApiClient,
    target: &ProfileTarget,
) -> Result<ScanProfileDetails, ApiError> {
    let ids = [target.customer_id.as_str(), target.profile_id.as_str()];
    client.get(PROFILE_DETAILS, ids).await
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
            let details: ScanProfileDetails = details(&client, &target(&customer.id, &profile.id))
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

    sim.set_fault(FaultAt::Details(&profile), Fault::WrongTypes);
    let error = details(&client, &profile_target).await.unwrap_err();
    assert_eq!(error.kind(), "invalid_body");
    assert!(
        error.to_string().starts_with(
            "invalid response body: not scan profile details: enableDailyScan: expected No or a time of day hh:mm (enableDailyScan, line 1 column "
        ),
        "{error}"
    );

    sim.set_fault(FaultAt::Details(&profile), Fault::Status(404));
    let error = details(&client, &profile_target).await.unwrap_err();
    assert!(
        matches!(&error, ApiError::Status { status, hint, .. }
            if *status == StatusCode::NOT_FOUND && hint == "customer or scan profile not found; check the ids"),
        "{error}"
    );

    // A 503 is retried once, as every call is, and then given up.
    sim.set_fault(FaultAt::Details(&profile), Fault::Status(503));
    let before = sim.stats().details_requests.load(Ordering::Relaxed);
    let error = details(&client, &profile_target).await.unwrap_err();
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

    // A 503 given up asks for a pause, which holds for the details only
    // (issue #19): the scan reports are not paused by it.
    let error = details(&client, &profile_target).await.unwrap_err();
    assert_eq!(error.kind(), "backoff");
    client
        .scan_profile(
            &profile_target,
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect("the reports are not paused by the details' back-off");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.clear_faults();
    assert!(details(&client, &profile_target).await.is_ok());
}

/// A fresh simulator numbers requests from 1, the token request first: the
/// first API request is `sim-00000002`.
#[tokio::test]
async fn without_the_request_id_header_the_error_body_ids_are_used() {
    for omitted in [false, true] {
        let sim = simulator().await;
        sim.set(Knob::RequestIdHeaderOmitted(omitted));
        let (client, _) = client(&sim, "  endpoint: changes\n");
        let (customer, profile) = sim.profile_ids()[0].clone();
        sim.set_fault(FaultAt::Report(&profile), Fault::Status(404));
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
    harness.sim.set(Knob::RequestIdHeaderOmitted(true));
    let (_, profile) = harness.sim.profile_ids()[5].clone();
    harness
        .sim
        .set_fault(FaultAt::Report(&profile), Fault::Status(403));
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

/// The exporter with the details refresher on, once it has read every
/// profile's details (`failing` of them with an error); `prepare` runs on
/// the simulator first.
async fn exporter_with_details(prepare: Option<common::PrepareSim>, failing: usize) -> Harness {
    let harness = Harness::start(Setup {
        profile_details: true,
        prepare_sim: prepare,
        ..Setup::default()
    })
    .await;
    let total = harness.sim.profile_ids().len();
    for _ in 0..200 {
        let metrics = harness.scrape().await;
        let known = metrics.find("avepoint_profile_details_profiles", &[]);
        let errors = metrics.find("avepoint_profile_details_errors_total", &[]);
        if known.first().map(|s| s.value) == Some((total - failing) as f64)
            && errors.first().map(|s| s.value) == Some(failing as f64)
        {
            return harness;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the details refresher never read every profile");
}
#[tokio::test]
async fn every_profile_exports_exactly_its_simulated_details() {
    let harness = exporter_with_details(None, 0).await;
    let metrics = harness.scrape().await;
    let value =
        |name: &str, customer: &str, profile: &str| metrics.profile_value(name, customer, profile);
    for customer in harness.sim.customers() {
        for profile in &customer.profiles {
            let (c, p) = (customer.id.as_str(), profile.id.as_str());
            let enabled = profile.daily_scan.is_some();
            assert_eq!(
                value("avepoint_scan_profile_daily_scan_enabled", c, p),
                f64::from(u8::from(enabled))
            );
            let time = metrics.find(
                "avepoint_scan_profile_daily_scan_time_seconds",
                &[("customer_id", c), ("profile_id", p)],
            );
            match profile.daily_scan {
                Some((h, m)) => assert_eq!(time[0].value, f64::from(h * 3600 + m * 60)),
                None => assert!(time.is_empty(), "{time:?}"),
            }
            assert_eq!(
                value("avepoint_scan_profile_created_timestamp_seconds", c, p),
                profile.created_time.unix_timestamp_nanos() as f64 / 1e9
            );
            let mut expected: std::collections::BTreeMap<&str, f64> = Default::default();
            for (_, code) in &profile.containers {
                *expected
                    .entry(avepoint_exporter::avepoint::details::object_type_label(
                        *code,
                    ))
                    .or_default() += 1.0;
            }
            let exported: std::collections::BTreeMap<&str, f64> = metrics
                .find(
                    "avepoint_scan_profile_containers",
                    &[("customer_id", c), ("profile_id", p)],
                )
                .iter()
                .map(|s| (s.labels["object_type"].as_str(), s.value))
                .collect();
            assert_eq!(exported, expected, "{p}");
            // The documented sample's settings are all false.
            for flag in [
                "avepoint_scan_profile_out_of_policy_notification_enabled",
                "avepoint_scan_profile_inplace_archived_mailboxes_enabled",
                "avepoint_scan_profile_ignore_locked_sites_enabled",
            ] {
                assert_eq!(value(flag, c, p), 0.0, "{flag}");
            }
        }
    }
    assert!(
        !metrics
            .find(
                "avepoint_scan_profile_containers",
                &[("object_type", "other")]
            )
            .is_empty(),
        "the simulated world has an undocumented objectType"
    );
    assert_eq!(
        metrics
            .find(
                "avepoint_profile_details_last_success_timestamp_seconds",
                &[]
            )
            .len(),
        1
    );
    // One request per profile per refresh, never one per scrape.
    let requests = harness.sim.stats().details_requests.load(Ordering::Relaxed);
    assert_eq!(requests, harness.sim.profile_ids().len() as u64);

    // A probe shows its own customer's details only.
    let customers = harness.sim.customers();
    let probed = &customers[1];
    let response = harness
        .get(&format!("/probe?customer_id={}", probed.id), &[])
        .await;
    let probe = common::Exposition::parse(&response.body);
    let detailed: std::collections::BTreeSet<&str> = probe
        .find("avepoint_scan_profile_daily_scan_enabled", &[])
        .iter()
        .map(|s| s.labels["profile_id"].as_str())
        .collect();
    let own: std::collections::BTreeSet<&str> =
        probed.profiles.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(detailed, own);
    assert!(
        probe
            .find("avepoint_profile_details_profiles", &[])
            .is_empty()
    );
}

#[tokio::test]
async fn a_profile_whose_details_fail_lacks_them_and_nothing_else_is_disturbed() {
    // The third simulated profile (same seed, same ids every run).
    let failing = std::sync::Arc::new(std::sync::Mutex::new(None));
    let remember = std::sync::Arc::clone(&failing);
    let prepare = Box::new(move |sim: &RunningSimulator| {
        let (customer, profile) = sim.profile_ids()[2].clone();
        sim.set_fault(FaultAt::Details(&profile), Fault::Status(500));
        *remember.lock().unwrap() = Some((customer, profile));
    });
    let harness = exporter_with_details(Some(prepare), 1).await;
    let (customer, profile) = failing.lock().unwrap().clone().unwrap();
    let metrics = harness.scrape().await;
    // Its report is unaffected; only its details are missing.
    assert_eq!(
        metrics.profile_value("avepoint_scan_profile_up", &customer, &profile),
        1.0
    );
    let own = [
        ("customer_id", customer.as_str()),
        ("profile_id", profile.as_str()),
    ];
    assert!(
        metrics
            .find("avepoint_scan_profile_daily_scan_enabled", &own)
            .is_empty()
    );
    for (c, p) in harness
        .sim
        .profile_ids()
        .iter()
        .filter(|(_, p)| *p != profile)
    {
        assert_eq!(
            metrics
                .find(
                    "avepoint_scan_profile_daily_scan_enabled",
                    &[("customer_id", c), ("profile_id", p)]
                )
                .len(),
            1
        );
    }
    // A refresh with a failure is not a complete one.
    assert!(
        metrics
            .find(
                "avepoint_profile_details_last_success_timestamp_seconds",
                &[]
            )
            .is_empty()
    );
}
