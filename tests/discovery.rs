//! Discovery of customers and profiles, `/probe` and `/sd`, against the
//! simulator on 127.0.0.1.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::avepoint::ApiClient;
use avepoint_exporter::avepoint::ApiMetrics;
use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::discovery::{self, DiscoveryState};
use avepoint_exporter::refresher::Permits;
use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, FaultAt, RunningSimulator, SimulatorConfig,
};
use common::{Exposition, Harness, Setup};

async fn simulator(customers: usize, profiles_per_customer: usize) -> RunningSimulator {
    RunningSimulator::start(
        SimulatorConfig {
            customers,
            profiles_per_customer,
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap()
}

/// Settings with discovery on, no static targets, and `discovery_yaml`
/// (indented lines under `discovery:`).
fn settings(sim: &RunningSimulator, discovery_yaml: &str) -> Settings {
    let yaml = sim.exporter_config(Some(&[])) + "discovery:\n  enabled: true\n" + discovery_yaml;
    Settings::from_yaml(&yaml, Path::new("test.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
    })
    .unwrap()
}

/// One discovery refresh from scratch against `sim`, with `discovery_yaml`
/// under `discovery:`.
async fn first_refresh(sim: &RunningSimulator, discovery_yaml: &str) -> DiscoveryState {
    refresh_once(&settings(sim, discovery_yaml), &DiscoveryState::default()).await
}

/// How many discovery requests `sim` has answered.
fn discovery_requests(sim: &RunningSimulator) -> u64 {
    sim.stats().discovery_requests.load(Ordering::Relaxed)
}

/// The refresh found `customers` customers and `targets` targets.
fn assert_found(state: &DiscoveryState, customers: usize, targets: usize) {
    assert_eq!(state.customers.len(), customers);
    assert_eq!(state.targets.len(), targets);
}

/// The (customer, profile) ids of the targets `state` holds, sorted.
fn sorted_targets(state: &DiscoveryState) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = state
        .targets
        .iter()
        .map(|t| (t.customer_id.clone(), t.profile_id.clone()))
        .collect();
    found.sort();
    found
}

async fn refresh_once(settings: &Settings, previous: &DiscoveryState) -> DiscoveryState {
    let client = ApiClient::new(&settings.avepoint, ApiMetrics::default()).unwrap();
    discovery::refresh(
        &client,
        settings.discovery.as_ref().unwrap(),
        &settings.targets,
        previous,
        &Permits::share_of(client.concurrency()),
    )
    .await
}

#[tokio::test]
async fn pages_through_hundreds_of_customers() {
    let sim = simulator(250, 2).await;
    let state = first_refresh(&sim, "  page_size: 100\n").await;
    assert_eq!(state.customers.len(), 250);
    assert_eq!(state.discovered.len(), 500);
    assert_eq!(state.targets.len(), 500);
    let mut expected = sim.profile_ids();
    expected.sort();
    let found = sorted_targets(&state);
    assert_eq!(found, expected);
    assert!(state.last_success.is_some());
    assert_eq!(state.errors_total, 0);
    // 3 pages of customers, then one page of profiles per customer.
    assert_eq!(discovery_requests(&sim), 3 + 250);
}

#[tokio::test]
async fn include_and_exclude_rules() {
    let sim = simulator(6, 4).await;
    let settings = settings(
        &sim,
        "  include:\n    - organization: 'Contoso.*|Fabrikam.*'\n    - customer_id: '%ID%'\n  exclude:\n    - profile_name: '.*VIP.*'\n"
            .replace("%ID%", &sim.customers()[5].id)
            .as_str(),
    );
    let state = refresh_once(&settings, &DiscoveryState::default()).await;
    let organizations: Vec<&str> = state
        .customers
        .iter()
        .map(|c| c.organization.as_str())
        .collect();
    let mut expected_orgs = vec![
        "Contoso Ltd",
        "Fabrikam, Inc.",
        sim.customers()[5].organization.as_str(),
    ];
    expected_orgs.sort_by_key(|org| {
        sim.customers()
            .iter()
            .find(|c| c.organization == *org)
            .unwrap()
            .id
            .clone()
    });
    assert_eq!(organizations, expected_orgs);
    let expected: Vec<(String, String)> = [0usize, 1, 5]
        .iter()
        .flat_map(|&c| {
            let customer = &sim.customers()[c];
            customer
                .profiles
                .iter()
                .filter(|p| !p.name.contains("VIP"))
                .map(move |p| (customer.id.clone(), p.id.clone()))
        })
        .collect();
    let found = sorted_targets(&state);
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(found, expected_sorted);
    assert!(expected.len() < 12, "the VIP rule excluded nothing");
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_last_known_set() {
    let sim = simulator(5, 2).await;
    let settings = settings(&sim, "");
    let first = refresh_once(&settings, &DiscoveryState::default()).await;
    assert_eq!(first.targets.len(), 10);

    sim.set(Knob::DiscoveryFailing(true));
    let second = refresh_once(&settings, &first).await;
    assert_eq!(second.targets, first.targets);
    assert_eq!(second.customers.len(), 5);
    assert_eq!(second.errors_total, 1);
    assert_eq!(second.last_success, first.last_success);
    assert!(second.attempted);

    sim.set(Knob::DiscoveryFailing(false));
    let third = refresh_once(&settings, &second).await;
    assert_eq!(third.errors_total, 1);
    assert!(third.last_success > first.last_success);
}

#[tokio::test]
async fn customers_appear_and_disappear_between_refreshes() {
    let sim = simulator(4, 2).await;
    let settings = settings(&sim, "");
    let gone = sim.customers()[2].id.clone();
    sim.hide_customers(&[&gone]);
    let without = refresh_once(&settings, &DiscoveryState::default()).await;
    assert_eq!(without.customers.len(), 3);
    assert!(without.targets.iter().all(|t| t.customer_id != gone));

    sim.hide_customers(&[]);
    let with = refresh_once(&settings, &without).await;
    assert_eq!(with.customers.len(), 4);
    assert_eq!(
        with.targets
            .iter()
            .filter(|t| t.customer_id == gone)
            .count(),
        2
    );

    sim.hide_customers(&[&gone]);
    let again = refresh_once(&settings, &with).await;
    assert_eq!(again.targets.len(), 6);
    assert_eq!(again.errors_total, 0);
}

#[tokio::test]
async fn a_server_lying_about_total_count_cannot_keep_us_paging() {
    let sim = simulator(120, 1).await;
    sim.set(Knob::PagingLies(true));
    let state = first_refresh(&sim, "  page_size: 50\n").await;
    assert_found(&state, 120, 120);
    // Customers: pages 1-3, then page 4 repeats page 3 and brings nothing
    // new. Profiles: page 1, then page 2 repeats it.
    assert_eq!(discovery_requests(&sim), 4 + 120 * 2);
}

#[tokio::test]
async fn static_and_discovered_targets_merge_without_duplicates() {
    let sim = simulator(3, 2).await;
    let mut settings = settings(&sim, "");
    let ids = sim.profile_ids();
    settings.targets = vec![avepoint_exporter::config::ProfileTarget {
        customer_id: ids[1].0.clone(),
        profile_id: ids[1].1.clone(),
    }];
    let state = refresh_once(&settings, &DiscoveryState::default()).await;
    assert_eq!(state.targets.len(), 6);
    assert_eq!(state.targets[0].profile_id, ids[1].1);
}

async fn discovering_harness() -> Harness {
    Harness::start_discovering(SimulatorConfig::default(), "").await
}

#[tokio::test]
async fn metrics_include_discovery_and_customer_metrics_but_no_personal_data() {
    let harness = discovering_harness().await;
    let metrics = harness.scrape().await;
    assert_eq!(metrics.find("avepoint_scan_profile_up", &[]).len(), 9);
    assert_eq!(metrics.value("avepoint_discovery_targets", &[]), 9.0);
    assert_eq!(metrics.value("avepoint_discovery_errors_total", &[]), 0.0);
    assert!(metrics.value("avepoint_discovery_last_success_timestamp_seconds", &[]) > 1.7e9);
    for customer in harness.sim.customers() {
        let info = metrics.find(
            "avepoint_customer_info",
            &[("customer_id", customer.id.as_str())],
        );
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].labels["organization"], customer.organization);
        assert_eq!(info[0].labels["country_or_region"], customer.country);
        assert_eq!(
            metrics.value(
                "avepoint_customer_job_status",
                &[("customer_id", customer.id.as_str())]
            ),
            customer.job_status as f64
        );
        assert_eq!(
            metrics.value(
                "avepoint_customer_tenants",
                &[("customer_id", customer.id.as_str())]
            ),
            1.0
        );
    }
    assert!(
        !metrics.text.contains('@'),
        "an e-mail address leaked into the metrics"
    );
}

#[tokio::test]
async fn probe_serves_one_customer_in_a_fresh_registry() {
    let harness = discovering_harness().await;
    let customer = harness.sim.customers()[1].clone();
    let response = harness
        .get(&format!("/probe?customer_id={}", customer.id), &[])
        .await;
    assert_eq!(response.status, 200);
    let probe = Exposition::parse(&response.body);
    assert_eq!(probe.value("avepoint_probe_success", &[]), 1.0);
    assert!(probe.value("avepoint_probe_duration_seconds", &[]) > 0.0);
    let up = probe.find("avepoint_scan_profile_up", &[]);
    assert_eq!(up.len(), 3);
    assert!(
        up.iter()
            .all(|s| s.labels["customer_id"] == customer.id && s.value == 1.0)
    );
    assert!(probe.samples.iter().all(|s| {
        s.labels
            .get("customer_id")
            .is_none_or(|c| *c == customer.id)
    }));
    assert_eq!(probe.find("avepoint_customer_info", &[]).len(), 1);
    // No exporter-level or process metrics in a probe.
    assert!(probe.find("avepoint_exporter_build_info", &[]).is_empty());
    assert!(probe.find("process_cpu_seconds_total", &[]).is_empty());
    assert!(probe.find("avepoint_api_requests_total", &[]).is_empty());

    // One profile only, id given in upper case.
    let profile = &customer.profiles[2];
    let one = harness
        .get(
            &format!(
                "/probe?customer_id={}&profile_id={}",
                customer.id,
                profile.id.to_uppercase()
            ),
            &[],
        )
        .await;
    let one = Exposition::parse(&one.body);
    assert_eq!(one.find("avepoint_scan_profile_up", &[]).len(), 1);
    assert_eq!(
        one.find(
            "avepoint_scan_profile_up",
            &[("profile_id", profile.id.as_str())]
        )
        .len(),
        1
    );
}

#[tokio::test]
async fn probe_failures_are_200_with_success_0_and_mistakes_are_400() {
    let harness = discovering_harness().await;
    let customer = harness.sim.customers()[0].clone();
    harness.sim.set_fault(
        FaultAt::Report(&customer.profiles[0].id),
        Fault::Status(500),
    );
    let failed = harness
        .get(&format!("/probe?customer_id={}", customer.id), &[])
        .await;
    assert_eq!(failed.status, 200);
    let failed = Exposition::parse(&failed.body);
    assert_eq!(failed.value("avepoint_probe_success", &[]), 0.0);
    assert_eq!(
        failed.value(
            "avepoint_scan_profile_up",
            &[("profile_id", customer.profiles[0].id.as_str())]
        ),
        0.0
    );

    for (query, message) in [
        ("", "customer_id parameter is missing\n"),
        ("?customer_id=acme", "customer_id \"acme\" is not a UUID\n"),
        (
            "?customer_id=caf90000-2cc6-4000-b04b-794c00005ea3",
            "customer caf90000-2cc6-4000-b04b-794c00005ea3 has no configured or discovered scan profiles\n",
        ),
    ] {
        let response = harness.get(&format!("/probe{query}"), &[]).await;
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.content_type, "text/plain; charset=utf-8");
        assert_eq!(response.body, message);
    }
    let unknown_profile = harness
        .get(
            &format!(
                "/probe?customer_id={}&profile_id=47dba9a1-1004-4c2d-b2ce-8f5e66f5842d",
                customer.id
            ),
            &[],
        )
        .await;
    assert_eq!(unknown_profile.status, 400);
    assert_eq!(
        unknown_profile.body,
        format!(
            "profile 47dba9a1-1004-4c2d-b2ce-8f5e66f5842d of customer {} is not a configured or discovered target\n",
            customer.id
        )
    );
}

#[tokio::test]
async fn sd_lists_one_target_per_customer() {
    let harness = discovering_harness().await;
    let response = harness.get("/sd", &[]).await;
    assert_eq!(response.status, 200);
    assert!(response.content_type.starts_with("application/json"));
    let groups: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    let mut expected: Vec<serde_json::Value> = harness
        .sim
        .customers()
        .iter()
        .map(|c| {
            serde_json::json!({
                "targets": [c.id],
                "labels": {"customer_id": c.id, "organization": c.organization},
            })
        })
        .collect();
    let mut found = groups.as_array().unwrap().clone();
    let key = |v: &serde_json::Value| v["targets"][0].as_str().unwrap().to_owned();
    expected.sort_by_key(key);
    found.sort_by_key(key);
    assert_eq!(found, expected);
}

#[tokio::test]
async fn not_ready_until_the_first_discovery_finished() {
    let harness = Harness::start(Setup {
        static_targets: false,
        config_tail: "discovery:\n  enabled: true\n".into(),
        ..Setup::slow(Duration::from_millis(400))
    })
    .await;
    let early = harness.get("/-/ready", &[]).await;
    assert_eq!(early.status, 503);
    assert_eq!(
        early.body,
        "Not ready: the first discovery has not finished\n"
    );
    assert_eq!(harness.get("/-/healthy", &[]).await.status, 200);
}

#[tokio::test]
async fn metrics_can_leave_the_profiles_to_probe() {
    let harness = Harness::start_discovering(
        SimulatorConfig::default(),
        "metrics:\n  include_profiles: false\n",
    )
    .await;
    let metrics = harness.scrape().await;
    assert!(metrics.find("avepoint_scan_profile_up", &[]).is_empty());
    assert_eq!(metrics.value("avepoint_exporter_targets", &[]), 9.0);
    assert_eq!(metrics.find("avepoint_customer_info", &[]).len(), 3);
    assert_eq!(harness.profile_requests(), 0);
    let customer = &harness.sim.customers()[0].id;
    let probe = harness
        .get(&format!("/probe?customer_id={customer}"), &[])
        .await;
    assert_eq!(
        Exposition::parse(&probe.body)
            .find("avepoint_scan_profile_up", &[])
            .len(),
        3
    );
    assert_eq!(harness.profile_requests(), 3);
}

#[tokio::test]
async fn concurrency_bounds_requests_across_concurrent_probes() {
    // 2 customers x 3 profiles probed at once, 200 ms each, concurrency 2:
    // at least ceil(6 / 2) x 200 ms if the bound is global, 400 ms if not.
    let harness = Harness::start_slow(2, Duration::from_millis(200)).await;
    harness.scrape().await; // token fetched, connections warm
    let customers = harness.sim.customers();
    let (path_a, path_b) = (
        format!("/probe?customer_id={}", customers[0].id),
        format!("/probe?customer_id={}", customers[1].id),
    );
    let started = std::time::Instant::now();
    let (first, second) = tokio::join!(harness.get(&path_a, &[]), harness.get(&path_b, &[]));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    for probe in [first, second] {
        assert_eq!(
            Exposition::parse(&probe.body).value("avepoint_probe_success", &[]),
            1.0
        );
    }
}

#[tokio::test]
async fn ids_that_are_not_uuids_are_skipped() {
    let sim = simulator(3, 2).await;
    sim.set(Knob::BogusCustomer(true));
    let state = first_refresh(&sim, "").await;
    assert_found(&state, 3, 6);
    assert!(
        state
            .customers
            .iter()
            .all(|c| uuid::Uuid::parse_str(&c.id).is_ok())
    );
    // Its profiles were never asked for (the id would have become a path).
    assert_eq!(discovery_requests(&sim), 1 + 3);
}

#[tokio::test]
async fn one_id_in_three_spellings_is_one_customer_and_one_profile() {
    let sim = simulator(3, 2).await;
    sim.set(Knob::RespelledIds(true));
    let state = first_refresh(&sim, "").await;
    assert_found(&state, 3, 6);
    let mut ids: Vec<_> = state.targets.iter().map(|t| t.profile_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    // Each customer's profiles are listed once, not once per spelling. Each
    // list takes two pages: the server's totalCount counts the repeats, so
    // a second, empty page confirms the end.
    assert_eq!(discovery_requests(&sim), 2 + 3 * 2);
}

#[tokio::test]
async fn respelled_ids_give_one_series_per_customer_and_one_fetch_per_profile() {
    let harness = Harness::start_discovering(
        SimulatorConfig {
            respelled_ids: true,
            ..SimulatorConfig::default()
        },
        "",
    )
    .await;
    let metrics = harness.scrape().await;
    assert_eq!(metrics.find("avepoint_customer_job_status", &[]).len(), 3);
    assert_eq!(metrics.find("avepoint_customer_tenants", &[]).len(), 3);
    assert_eq!(metrics.find("avepoint_scan_profile_up", &[]).len(), 9);
    assert_eq!(harness.profile_requests(), 9);
    // /probe takes any spelling of the customer id and answers for the one customer.
    let customer = harness.sim.customers()[0].id.clone();
    let braced = format!("{{{}}}", customer.to_uppercase());
    let probe = harness
        .get(&format!("/probe?customer_id={braced}"), &[])
        .await;
    assert_eq!(probe.status, 200, "{}", probe.body);
    let probe = Exposition::parse(&probe.body);
    assert_eq!(probe.find("avepoint_scan_profile_up", &[]).len(), 3);
    assert_eq!(probe.find("avepoint_customer_job_status", &[]).len(), 1);
}
