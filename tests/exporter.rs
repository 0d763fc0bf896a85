//! The exporter end to end against the simulator on 127.0.0.1: exact metric
//! values, every failure mode of issue #2, formats and single-flight rounds.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use avepoint_exporter::avepoint::ScanProfileReport;
use avepoint_exporter::avepoint::model::ScanStatus;
use avepoint_exporter::simulator::{Fault, FaultAt, SimulatorConfig};
use avepoint_exporter::version;
use common::{Exposition, Harness, STATES, Setup};
use time::macros::datetime;

/// Assert every per-profile metric of one profile against the report the
/// simulator served.
fn assert_profile(
    metrics: &Exposition,
    customer: &str,
    report: &ScanProfileReport,
    scan_mode: &str,
) {
    let profile = report.profile_id.as_str();
    let ids = [("customer_id", customer), ("profile_id", profile)];
    assert_eq!(metrics.value("avepoint_scan_profile_up", &ids), 1.0);
    for (name, expected) in common::report_values(report) {
        assert_eq!(metrics.value(name, &ids), expected, "{name}");
    }
    let expected_state = ScanStatus::from_code(report.last_scan_status).map(ScanStatus::label);
    for state in STATES {
        let value = metrics.value(
            "avepoint_scan_last_status_state",
            &[
                ("customer_id", customer),
                ("profile_id", profile),
                ("state", state),
            ],
        );
        assert_eq!(
            value,
            f64::from(u8::from(expected_state == Some(state))),
            "state {state}"
        );
    }
    assert_eq!(
        metrics.find("avepoint_scan_last_status_state", &ids).len(),
        STATES.len()
    );
    assert_eq!(
        metrics.value("avepoint_scan_profile_modified_timestamp_seconds", &ids),
        report.modified_time.unwrap().unix_timestamp_nanos() as f64 / 1e9
    );
    let info = metrics.find("avepoint_scan_profile_info", &ids);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].value, 1.0);
    let labels: Vec<(&str, &str)> = info[0]
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("customer_id", customer),
            ("profile_id", profile),
            ("profile_name", report.profile_name.as_str()),
            ("scan_mode", scan_mode),
            ("tenant_domain", report.tenant_domain.as_str()),
            ("tenant_id", report.tenant_id.as_str()),
        ]
    );
    let fetch = metrics.value("avepoint_scan_profile_fetch_duration_seconds", &ids);
    assert!(fetch > 0.0 && fetch < 5.0, "fetch duration {fetch}");
}

/// [`assert_profile`] against the report the simulator serves for the profile now.
fn assert_as_served(metrics: &Exposition, harness: &Harness, customer: &str, profile: &str) {
    let report = harness.sim.current_report(customer, profile).unwrap();
    let mode = if report.scan_mode == Some(0) {
        "express"
    } else {
        "advanced"
    };
    assert_profile(metrics, customer, &report, mode);
}

fn pinned_report(profile_id: &str) -> ScanProfileReport {
    ScanProfileReport {
        profile_name: "Finance \"Q4\" \\ backup\nsecond line – Ünïcødé 档案 🚀".into(),
        profile_id: profile_id.into(),
        tenant_domain: "contoso".into(),
        tenant_id: "c2350b99-c7a2-4605-b7d4-79e8646f66c3".into(),
        scan_mode: Some(1),
        modified_time: Some(datetime!(2025-09-11 03:19:14 UTC)),
        last_update_time: Some(datetime!(2025-09-12 05:00:00.5 +02:00)),
        last_scan_status: 4,
        new_registered_content_count: 17,
        moved_to_another_container: 3,
        removed_from_m365_or_out_of_policy: 2,
        new_registered_content_listed: None,
        moved_to_another_container_listed: None,
        removed_from_m365_or_out_of_policy_listed: None,
    }
}

async fn exact_values_on(endpoint: &str) {
    let harness = Harness::start(Setup {
        avepoint_extra: format!("  endpoint: {endpoint}\n"),
        ..Setup::default()
    })
    .await;
    let targets = harness.sim.profile_ids();
    let (pinned_customer, pinned_profile) = targets[4].clone();
    harness.sim.set_fault(
        FaultAt::Report(&pinned_profile),
        Fault::Report(pinned_report(&pinned_profile)),
    );

    let metrics = harness.scrape().await;

    // The pinned profile: values written by hand above, checked literally.
    let ids = [
        ("customer_id", pinned_customer.as_str()),
        ("profile_id", pinned_profile.as_str()),
    ];
    for (name, expected) in [
        ("avepoint_scan_new_registered_content", 17.0),
        ("avepoint_scan_moved_to_another_container", 3.0),
        ("avepoint_scan_removed_from_m365_or_out_of_policy", 2.0),
        ("avepoint_scan_last_status", 4.0),
        (
            "avepoint_scan_last_update_timestamp_seconds",
            1_757_646_000.5,
        ),
        (
            "avepoint_scan_profile_modified_timestamp_seconds",
            1_757_560_754.0,
        ),
    ] {
        assert_eq!(metrics.value(name, &ids), expected, "{name}");
    }
    assert_profile(
        &metrics,
        &pinned_customer,
        &pinned_report(&pinned_profile),
        "advanced",
    );

    // Every other profile: exactly what the simulator served.
    for (customer, profile) in &targets {
        if *profile == pinned_profile {
            continue;
        }
        assert_as_served(&metrics, &harness, customer, profile);
    }

    assert_eq!(
        metrics.value("avepoint_exporter_targets", &[]),
        targets.len() as f64
    );
    assert_eq!(
        metrics.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "scan_profile"), ("code", "200")]
        ),
        targets.len() as f64
    );
    assert_eq!(
        metrics.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "token"), ("code", "200")]
        ),
        1.0
    );
    assert_eq!(
        metrics.value("avepoint_api_token_refreshes_total", &[]),
        1.0
    );
    assert_eq!(
        metrics.value(
            "avepoint_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The same build metadata as --version.
    let info = metrics.find("avepoint_exporter_build_info", &[]);
    assert_eq!(info.len(), 1);
    for (label, value) in [
        ("revision", version::REVISION),
        ("branch", version::BRANCH),
        ("build_date", version::BUILD_DATE),
        ("rustc_version", version::RUSTC_VERSION),
    ] {
        assert_eq!(info[0].labels[label], value, "{label}");
        assert_ne!(value, "", "{label}");
    }
    assert!(version::RUSTC_VERSION.starts_with("rustc "));
    let expiry = metrics.value("avepoint_api_token_expiry_timestamp_seconds", &[]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        (expiry - (now + 3600.0)).abs() < 60.0,
        "expiry {expiry} vs now {now}"
    );
    assert_eq!(
        metrics.value(
            "avepoint_api_request_duration_seconds_count",
            &[("api_endpoint", "scan_profile")]
        ),
        targets.len() as f64
    );
    assert!(metrics.value("avepoint_exporter_collect_duration_seconds", &[]) > 0.0);
    assert!(metrics.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(metrics.value("process_start_time_seconds", &[]) > 1.7e9);
}

#[tokio::test]
async fn exact_values_for_every_metric_on_the_seed_endpoint() {
    exact_values_on("scan-profiles-v2").await;
}

#[tokio::test]
async fn exact_values_for_every_metric_on_the_changes_endpoint() {
    exact_values_on("changes").await;
}

#[tokio::test]
async fn wrong_secret_sets_every_profile_down_and_says_why() {
    let harness = Harness::start(Setup {
        secret: "not-the-right-secret".into(),
        ..Setup::default()
    })
    .await;
    let message = common::auth_error_of_every_profile(&harness).await;
    // One rejected token request for all nine profiles, not one each.
    assert_eq!(harness.token_requests(), 1);
    assert_eq!(
        message,
        "token endpoint rejected the client credentials (HTTP 401 Unauthorized, invalid_client: unknown client or wrong secret): check avepoint.client_id and the client secret"
    );

    let metrics = harness.scrape().await;
    common::assert_token_refused(&harness, &metrics);
    assert!(
        metrics
            .find(
                "avepoint_api_requests_total",
                &[("api_endpoint", "scan_profile")]
            )
            .is_empty()
    );
    assert!(!metrics.text.contains("not-the-right-secret"));
}

#[tokio::test]
async fn revoked_token_mid_run_is_refreshed_once_and_retried() {
    let harness = Harness::start(Setup::default()).await;
    let targets = harness.sim.profile_ids();
    let first = harness.scrape().await;
    assert_eq!(first.up_count(), targets.len());

    harness.sim.revoke_tokens();
    let second = harness.scrape().await;
    for (customer, profile) in &targets {
        assert_eq!(
            second.profile_value("avepoint_scan_profile_up", customer, profile),
            1.0
        );
    }
    // The profiles in flight saw a 401 with the old token (how many depends on
    // timing), yet only one new token was fetched for all of them.
    let rejected = second.value(
        "avepoint_api_requests_total",
        &[("api_endpoint", "scan_profile"), ("code", "401")],
    );
    assert!(
        (1.0..=targets.len() as f64).contains(&rejected),
        "{rejected}"
    );
    assert_eq!(second.value("avepoint_api_token_refreshes_total", &[]), 2.0);
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn expiring_tokens_are_refreshed_before_expiry() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            token_lifetime: Duration::from_secs(1),
            ..SimulatorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    harness.scrape().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.value("avepoint_api_token_refreshes_total", &[]),
        2.0
    );
    // The token was replaced before the API could reject it.
    assert!(
        metrics
            .find("avepoint_api_requests_total", &[("code", "401")])
            .is_empty()
    );
}

/// A 403 from the API itself (the token endpoint granted the permission):
/// the hint names the permission, and that the app registration may be
/// limited to some customers. A permission the token endpoint refuses is
/// tested in `permissions.rs`.
#[tokio::test]
async fn a_403_names_the_permission_and_the_customer_limit() {
    let harness = Harness::start(Setup::default()).await;
    let (_, profile) = harness.sim.profile_ids()[0].clone();
    harness
        .sim
        .set_fault(FaultAt::Report(&profile), Fault::Status(403));
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    assert_eq!(snapshot.failures(), 1);
    let error = snapshot.profiles[0].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, "403");
    assert!(
        error.message.starts_with("HTTP 403 Forbidden: the app registration lacks the permission elements.scanprofiles.read.all, or may not access this customer (an app registration can be limited to some customers or customer groups); check both in Elements > API app registration (AvePoint says: injected fault) [request-id sim-"),
        "{}",
        error.message
    );
}

/// A 400's reason is in the error body's `errors[]`, its `message` being
/// just "Bad Request": the causes are in the error, a few of them.
#[tokio::test]
async fn a_400_quotes_the_causes_of_the_error_body() {
    let harness = Harness::start(Setup::default()).await;
    let (_, profile) = harness.sim.profile_ids()[0].clone();
    let cause = |n: usize| serde_json::json!({"code": "Invalid", "field": format!("field{n}"), "message": "is not valid"});
    harness.sim.set_fault(
        FaultAt::Report(&profile),
        Fault::BadRequest(serde_json::json!([cause(1), cause(2), cause(3), cause(4)])),
    );
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    let error = snapshot.profiles[0].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, "400");
    assert!(
        error.message.starts_with(
            "HTTP 400 Bad Request: AvePoint refused the request as invalid (AvePoint says: Bad Request: \
             field1: is not valid (Invalid); field2: is not valid (Invalid); field3: is not valid (Invalid); \
             and 1 more) [request-id sim-"
        ),
        "{}",
        error.message
    );
}

/// AvePoint's docs ask for `Content-Type: application/json` on every
/// request: the GETs of the reports as well as the POSTs of discovery.
#[tokio::test]
async fn every_request_says_content_type_json() {
    let harness = Harness::start_discovering(SimulatorConfig::default(), "").await;
    let metrics = harness.scrape().await;
    assert_eq!(metrics.up_count(), 9);
    let stats = harness.sim.stats();
    assert_eq!(stats.profile_requests.load(Ordering::Relaxed), 9);
    assert!(stats.discovery_requests.load(Ordering::Relaxed) > 0);
    assert_eq!(
        stats
            .requests_without_json_content_type
            .load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn unknown_profile_is_a_404_that_names_the_other_endpoint_and_spares_the_others() {
    let unknown = common::unknown_target();
    let (harness, error) = common::start_with_unknown_target(
        "  endpoint: scan-profiles-v2\n",
        "HTTP 404 Not Found: customer or scan profile not found on the scan-profiles-v2 endpoint; check the ids, or try `avepoint.endpoint: changes`",
    )
    .await;
    assert!(error.request_id.as_deref().unwrap().starts_with("sim-"));

    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.profile_value("avepoint_scan_profile_up", &unknown.0, &unknown.1),
        0.0
    );
    assert!(!metrics.has_data_for(&unknown.1));
    for (customer, profile) in harness.sim.profile_ids() {
        assert_as_served(&metrics, &harness, &customer, &profile);
    }
}

/// Inject `fault` into one profile, scrape, and check that exactly that
/// profile is down with `status`, and every other profile keeps its values.
async fn one_profile_fails(fault: Fault, status: &str, message_start: &str) -> Harness {
    let harness = Harness::start(Setup::default()).await;
    let targets = harness.sim.profile_ids();
    let (bad_customer, bad_profile) = targets[1].clone();
    harness.sim.set_fault(FaultAt::Report(&bad_profile), fault);

    let snapshot = harness.state.rounds().collect(Duration::from_secs(3)).await;
    let error = snapshot.profiles[1].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, status, "{}", error.message);
    assert!(
        error.message.starts_with(message_start),
        "{}",
        error.message
    );
    assert_eq!(snapshot.failures(), 1);

    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.profile_value("avepoint_scan_profile_up", &bad_customer, &bad_profile),
        0.0
    );
    assert!(!metrics.has_data_for(&bad_profile));
    for (customer, profile) in targets.iter().filter(|(_, p)| *p != bad_profile) {
        assert_as_served(&metrics, &harness, customer, profile);
    }
    harness
}

#[tokio::test]
async fn server_error_fails_only_that_profile_after_one_retry() {
    let harness = one_profile_fails(
        Fault::Status(500),
        "500",
        "HTTP 500 Internal Server Error: AvePoint server error",
    )
    .await;
    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.value(
            "avepoint_api_retries_total",
            &[("api_endpoint", "scan_profile"), ("code", "500")]
        ),
        3.0
    );
}

#[tokio::test]
async fn truncated_body_fails_only_that_profile() {
    one_profile_fails(
        Fault::Truncated,
        "invalid_body",
        "invalid response body: not a scan profile report: the JSON ends early (line 1 column ",
    )
    .await;
}

#[tokio::test]
async fn html_body_fails_only_that_profile() {
    one_profile_fails(
        Fault::NotJson,
        "invalid_body",
        "invalid response body: not a scan profile report: not valid JSON (line 1 column 1)",
    )
    .await;
}

#[tokio::test]
async fn missing_field_fails_only_that_profile_and_names_the_field() {
    one_profile_fails(
        Fault::MissingField,
        "invalid_body",
        "invalid response body: not a scan profile report: missing field `lastScanStatus`",
    )
    .await;
}

#[tokio::test]
async fn wrong_field_type_fails_only_that_profile() {
    one_profile_fails(
        Fault::WrongTypes,
        "invalid_body",
        "invalid response body: not a scan profile report: newRegisteredContentCount: expected a count (an integer of at least 0), got a string (line 1 column ",
    )
    .await;
}

#[tokio::test]
async fn hanging_upstream_does_not_hold_the_scrape_past_its_deadline() {
    let harness = Harness::start(Setup::default()).await;
    let targets = harness.sim.profile_ids();
    let (hung_customer, hung_profile) = targets[0].clone();
    harness
        .sim
        .set_fault(FaultAt::Report(&hung_profile), Fault::Hang);

    let started = Instant::now();
    let response = harness
        .get("/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "2")])
        .await;
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_millis(2000),
        "{elapsed:?}"
    );
    let metrics = Exposition::parse(&response.body);
    assert_eq!(
        metrics.profile_value("avepoint_scan_profile_up", &hung_customer, &hung_profile),
        0.0
    );
    let others_up = metrics.up_count();
    assert_eq!(others_up, targets.len() - 1);
}

#[tokio::test]
async fn unknown_enum_values_are_exported_raw_and_do_not_fail_the_profile() {
    let harness = Harness::start(Setup::default()).await;
    let (customer, profile) = harness.sim.profile_ids()[2].clone();
    let mut report = pinned_report(&profile);
    report.last_scan_status = 99;
    report.scan_mode = Some(7);
    harness
        .sim
        .set_fault(FaultAt::Report(&profile), Fault::Report(report.clone()));

    let metrics = harness.scrape().await;
    assert_profile(&metrics, &customer, &report, "unknown");
    let ids = [
        ("customer_id", customer.as_str()),
        ("profile_id", profile.as_str()),
    ];
    assert_eq!(metrics.value("avepoint_scan_last_status", &ids), 99.0);
    assert!(
        metrics
            .find("avepoint_scan_last_status_state", &ids)
            .iter()
            .all(|s| s.value == 0.0)
    );
}

#[tokio::test]
async fn two_concurrent_scrapes_cause_one_upstream_round() {
    let harness = Harness::start(Setup::slow(Duration::from_millis(300))).await;
    let targets = harness.sim.profile_ids().len() as u64;
    let (first, second) = tokio::join!(harness.scrape(), harness.scrape());
    assert_eq!(harness.profile_requests(), targets);
    assert_eq!(
        first.find("avepoint_scan_profile_up", &[]).len() as u64,
        targets
    );
    assert_eq!(
        first.value("avepoint_exporter_collect_duration_seconds", &[]),
        second.value("avepoint_exporter_collect_duration_seconds", &[])
    );
    // A later scrape starts a new round.
    harness.scrape().await;
    assert_eq!(harness.profile_requests(), 2 * targets);
}

#[tokio::test]
async fn concurrency_bound_is_respected() {
    // 9 profiles, concurrency 2, 200 ms latency: at least ceil(9/2) * 200 ms.
    let harness = Harness::start_slow(2, Duration::from_millis(200)).await;
    let started = Instant::now();
    let metrics = harness.scrape().await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert_eq!(metrics.up_count(), 9);
}

#[tokio::test]
async fn a_short_timeout_scrape_does_not_cut_a_longer_one_short() {
    let harness = Harness::start_slow(16, Duration::from_millis(400)).await;
    harness.scrape().await; // token fetched
    let short = harness.get(
        "/metrics",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "0.7")],
    );
    let long = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        harness.scrape().await
    };
    let (short, long) = tokio::join!(short, long);
    let short = Exposition::parse(&short.body);
    assert!(short.every_up_is(0.0));
    assert!(long.every_up_is(1.0));
    assert_eq!(long.find("avepoint_scan_profile_up", &[]).len(), 9);
}
