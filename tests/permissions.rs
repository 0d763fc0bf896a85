//! Issue #18 A: one permission the app registration lacks takes down only
//! the collectors that need it. AvePoint's identity service (IdentityServer)
//! refuses a whole token request with `400 invalid_scope` when one scope is
//! not granted, and the simulator answers the same way; the exporter then
//! finds out which permissions work, uses a token with those, and names the
//! missing one.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::avepoint::ApiEndpoint;
use avepoint_exporter::avepoint::backup::BACKUP_JOBS;
use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{ALL_PERMISSIONS, SimulatorConfig};
use common::{Exposition, Harness, Setup};

const JOBS: &str = "elements.jobs.read.all";
const SCAN_PROFILES: &str = "elements.scanprofiles.read.all";
/// Every permission but the backup jobs one.
const ALL_BUT_JOBS: &str =
    "elements.scanprofiles.read.all elements.customers.read.all elements.cbprotected.read.all";
const JOBS_ON: &str = "collectors:\n  backup_jobs:\n    enabled: true\n";
const MISSING_JOBS: &str = "the app registration lacks elements.jobs.read.all; grant it in Elements > API app registration";

/// The exporter with the backup jobs collector against an app registration
/// that lacks its permission, once that collector has tried every customer.
async fn without_jobs_permission(sim: SimulatorConfig) -> Harness {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            permissions: ALL_BUT_JOBS.into(),
            ..sim
        },
        config_tail: JOBS_ON.into(),
        ..Setup::default()
    })
    .await;
    let customers = harness.sim.customers().len();
    for _ in 0..200 {
        let metrics = harness.scrape().await;
        if metrics.find("avepoint_backup_collector_up", &[]).len() == customers {
            return harness;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the backup jobs collector never tried every customer");
}

/// Every scan profile is up with exactly the simulator's values.
fn assert_every_profile_exact(harness: &Harness, metrics: &Exposition) {
    let profiles = harness.sim.profile_ids();
    assert_eq!(profiles.len(), 9);
    for (customer, profile) in profiles {
        let report = harness.sim.current_report(&customer, &profile).unwrap();
        let value = |name: &str| metrics.profile_value(name, &customer, &profile);
        assert_eq!(value("avepoint_scan_profile_up"), 1.0);
        assert_eq!(
            value("avepoint_scan_new_registered_content"),
            report.new_registered_content_count as f64
        );
        assert_eq!(
            value("avepoint_scan_moved_to_another_container"),
            report.moved_to_another_container as f64
        );
        assert_eq!(
            value("avepoint_scan_removed_from_m365_or_out_of_policy"),
            report.removed_from_m365_or_out_of_policy as f64
        );
        assert_eq!(
            value("avepoint_scan_last_status"),
            report.last_scan_status as f64
        );
    }
}

#[tokio::test]
async fn a_missing_backup_permission_downs_only_the_backup_jobs_collector() {
    let harness = without_jobs_permission(SimulatorConfig::default()).await;
    let metrics = harness.scrape().await;
    assert_every_profile_exact(&harness, &metrics);
    for customer in harness.sim.customers() {
        assert_eq!(
            metrics.value(
                "avepoint_backup_collector_up",
                &[("collector", "backup_jobs"), ("customer_id", &customer.id)]
            ),
            0.0
        );
    }
    assert!(metrics.find("avepoint_backup_job_status", &[]).is_empty());
    // The refused permission is exported as such; no call needing it is sent.
    let granted = |permission: &str| {
        metrics.value(
            "avepoint_api_granted_permission",
            &[("permission", permission)],
        )
    };
    assert_eq!(granted(JOBS), 0.0);
    assert_eq!(granted(SCAN_PROFILES), 1.0);
    assert_eq!(
        metrics.find("avepoint_api_granted_permission", &[]).len(),
        2
    );
    assert!(
        metrics
            .find(
                "avepoint_api_requests_total",
                &[("api_endpoint", "backup_jobs_batch")]
            )
            .is_empty()
    );
    // Both together (refused), each alone; the one held keeps its token.
    let stats = harness.sim.stats();
    assert_eq!(stats.token_requests.load(Ordering::Relaxed), 3);
    assert_eq!(stats.invalid_scopes.load(Ordering::Relaxed), 2);
    let client = &harness.state.pipeline().client;
    let error = client.authorize(BACKUP_JOBS.endpoint).await.unwrap_err();
    assert_eq!(error.to_string(), MISSING_JOBS);
    assert_eq!(error.kind(), "auth");
    client.authorize(ApiEndpoint::SCAN_PROFILE).await.unwrap();
}

/// A simulator whose tokens live 2 s, so a test sees a token refresh.
fn two_second_tokens() -> SimulatorConfig {
    SimulatorConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimulatorConfig::default()
    }
}

#[tokio::test]
async fn a_permission_granted_later_is_used_from_the_next_token_refresh() {
    let harness = without_jobs_permission(two_second_tokens()).await;
    let client = &harness.state.pipeline().client;
    assert!(client.authorize(BACKUP_JOBS.endpoint).await.is_err());
    harness.sim.set(Knob::Permissions(ALL_PERMISSIONS));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = harness.scrape().await;
    assert_every_profile_exact(&harness, &metrics);
    assert_eq!(
        metrics.value("avepoint_api_granted_permission", &[("permission", JOBS)]),
        1.0
    );
    client.authorize(BACKUP_JOBS.endpoint).await.unwrap();
    // The refresh asked for both at once, and got both.
    assert_eq!(
        harness.sim.stats().invalid_scopes.load(Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn every_permission_missing_names_the_one_each_collector_needs() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            permissions: "elements.customers.read.all".into(),
            ..SimulatorConfig::default()
        },
        config_tail: JOBS_ON.into(),
        ..Setup::default()
    })
    .await;
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    assert_eq!(snapshot.failures(), 9);
    for profile in &snapshot.profiles {
        let error = profile.outcome.as_ref().unwrap_err();
        assert_eq!(error.kind, "auth");
        assert_eq!(
            error.message,
            "the app registration lacks elements.scanprofiles.read.all; grant it in Elements > API app registration"
        );
    }
    let client = &harness.state.pipeline().client;
    let error = client.authorize(BACKUP_JOBS.endpoint).await.unwrap_err();
    assert_eq!(error.to_string(), MISSING_JOBS);
    let metrics = harness.scrape().await;
    for permission in [SCAN_PROFILES, JOBS] {
        assert_eq!(
            metrics.value(
                "avepoint_api_granted_permission",
                &[("permission", permission)]
            ),
            0.0
        );
    }
    // Refused credentials are not asked again at once: one negotiation.
    assert_eq!(
        harness.sim.stats().token_requests.load(Ordering::Relaxed),
        3
    );
    assert_eq!(harness.profile_requests(), 0);
}

/// A token refresh that fails for another reason (here a redirect) leaves
/// no grants to show: a refused credential must not look like a refused
/// permission, which the authentication alert would then ignore.
#[tokio::test]
async fn a_failed_token_refresh_clears_the_granted_permissions() {
    let harness = without_jobs_permission(two_second_tokens()).await;
    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.value("avepoint_api_granted_permission", &[("permission", JOBS)]),
        0.0
    );
    harness.sim.set(Knob::TokenRedirect(Some(
        "http://127.0.0.1:9/connect/token",
    )));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = harness.scrape().await;
    assert!(metrics.every_up_is(0.0));
    assert!(
        metrics
            .find("avepoint_api_granted_permission", &[])
            .is_empty(),
        "{}",
        metrics.text
    );
}

/// The simulator's token endpoint answers like IdentityServer: one scope
/// the app lacks refuses the whole request, and a granted request gets
/// exactly the scopes asked for, listed in `scope`.
#[tokio::test]
async fn the_simulator_refuses_a_scope_the_app_lacks_as_a_whole() {
    use avepoint_exporter::simulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, RunningSimulator};
    let sim = RunningSimulator::start(
        SimulatorConfig {
            permissions: ALL_BUT_JOBS.into(),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let ask = |scope: &'static str| {
        let url = sim.token_url();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", DEMO_CLIENT_ID),
                    ("client_secret", DEMO_CLIENT_SECRET),
                    ("scope", scope),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }
    };
    let (status, body) = ask("elements.scanprofiles.read.all elements.jobs.read.all").await;
    assert_eq!(status, 400);
    assert_eq!(body, serde_json::json!({"error": "invalid_scope"}));
    let (status, body) = ask("elements.scanprofiles.read.all").await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "elements.scanprofiles.read.all");
    let (status, body) = ask("elements.cbprotected.read.all elements.scanprofiles.read.all").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["scope"],
        "elements.cbprotected.read.all elements.scanprofiles.read.all"
    );
    assert_eq!(sim.stats().invalid_scopes.load(Ordering::Relaxed), 1);
}
