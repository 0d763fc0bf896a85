//! The backup collectors end to end against the simulator: every exported
//! value of every customer, the latest job per module out of a history,
//! the last success of a failing module, a module that never ran, an
//! injected failure that fails only its customer and collector (odd
//! values are tests/documented_samples.rs'), and what `/probe` and `/sd`
//! show for a customer the scan profile collector does not know.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use avepoint_exporter::simulator::backup::{
    JOB_TYPE, MODULES, NEVER_RAN_CUSTOMER, NEVER_RAN_MODULE, coverage_counts, latest_status,
};
use avepoint_exporter::simulator::{Fault, FaultAt, RunningSimulator};
use common::{Exposition, Harness, PrepareSim, Setup};

const BOTH: &str =
    "collectors:\n  backup_jobs:\n    enabled: true\n  backup_coverage:\n    enabled: true\n";

/// The exporter with both backup collectors, once each has read every
/// customer (`failing` of them with an error).
async fn exporter(prepare: Option<PrepareSim>, tail: &str, failing: usize) -> Harness {
    let harness = Harness::start(Setup {
        config_tail: tail.to_owned(),
        prepare_sim: prepare,
        ..Setup::default()
    })
    .await;
    let customers = harness.sim.customers().len();
    for _ in 0..200 {
        let metrics = harness.scrape().await;
        let up = metrics.find("avepoint_backup_collector_up", &[]);
        let down = up.iter().filter(|s| s.value == 0.0).count();
        if up.len() == 2 * customers && down == failing {
            return harness;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the backup collectors never read every customer");
}

fn module_label(module: usize) -> &'static str {
    [
        "sharepoint_online",
        "exchange_online",
        "onedrive",
        "microsoft_teams",
    ][module]
}

#[tokio::test]
async fn every_customer_exports_exactly_its_jobs_and_coverage() {
    let harness = exporter(None, BOTH, 0).await;
    let metrics = harness.scrape().await;
    assert_eq!(JOB_TYPE, 7);
    for (index, customer) in harness.sim.customers().iter().enumerate() {
        for (module, code) in MODULES.iter().enumerate() {
            let job = [
                ("customer_id", customer.id.as_str()),
                ("job_type", "microsoft_365"),
                ("job_module", module_label(module)),
            ];
            let value = |name: &str| {
                let found = metrics.find(name, &job);
                assert_eq!(found.len(), 1, "{name} {job:?} {code}");
                found[0].value
            };
            // The latest of three days of history.
            let status = latest_status(index, module);
            assert_eq!(value("avepoint_backup_job_status"), status as f64);
            let total = (100 + 37 * index + 11 * module) as f64;
            let failed = if matches!(status, 3 | 4) {
                (total / 20.0).floor()
            } else {
                0.0
            };
            let skipped = if status == 4 {
                (total / 50.0).floor()
            } else {
                0.0
            };
            let objects = |result: &str| {
                let mut labels = job.to_vec();
                labels.push(("result", result));
                metrics.value("avepoint_backup_job_objects", &labels)
            };
            assert_eq!(objects("total"), total);
            assert_eq!(objects("failed"), failed);
            assert_eq!(objects("skipped"), skipped);
            assert_eq!(objects("successful"), total - failed - skipped);
            assert_eq!(objects("warning"), 0.0);
            let size = (module + 1) as f64 + (index % 10) as f64 / 10.0;
            assert_eq!(
                value("avepoint_backup_job_size_bytes"),
                size * 1024f64.powi(3)
            );
            let start = value("avepoint_backup_job_start_timestamp_seconds");
            let duration = value("avepoint_backup_job_duration_seconds");
            assert_eq!(duration, (600 + 61 * (module + index % 5)) as f64);
            let end = metrics.find("avepoint_backup_job_end_timestamp_seconds", &job);
            let success = value("avepoint_backup_last_success_timestamp_seconds");
            match status {
                // Running: no end; the last success is yesterday's job.
                1 => {
                    assert!(end.is_empty());
                    assert_eq!(success, start - 86_400.0 + duration);
                }
                // Failed today and yesterday: the success is two days old.
                3 => {
                    assert_eq!(end[0].value, start + duration);
                    assert_eq!(success, start - 2.0 * 86_400.0 + duration);
                }
                _ => {
                    assert_eq!(end[0].value, start + duration);
                    assert_eq!(success, end[0].value);
                }
            }
            let row = [
                ("customer_id", customer.id.as_str()),
                ("service_type", "microsoft_365"),
                ("service_module", module_label(module)),
            ];
            let (scanned, protected) = coverage_counts(index, module);
            assert_eq!(
                metrics.value("avepoint_backup_scanned_objects", &row),
                scanned as f64
            );
            assert_eq!(
                metrics.value("avepoint_backup_protected_objects", &row),
                protected as f64
            );
            let mut avepoint = row.to_vec();
            avepoint.push(("storage", "avepoint"));
            assert_eq!(
                metrics.value("avepoint_backup_stored_bytes", &avepoint),
                ((module + index % 3) as f64 + 0.5) * 1024f64.powi(3)
            );
        }
    }
    // A module that never ran: its status (None), no times, no size.
    let never_ran = [
        (
            "customer_id",
            harness.sim.customers()[NEVER_RAN_CUSTOMER].id.as_str(),
        ),
        ("job_module", "microsoft_365_groups"),
    ];
    assert_eq!(NEVER_RAN_MODULE, 304);
    assert_eq!(metrics.value("avepoint_backup_job_status", &never_ran), 0.0);
    for absent in [
        "avepoint_backup_job_start_timestamp_seconds",
        "avepoint_backup_job_end_timestamp_seconds",
        "avepoint_backup_job_duration_seconds",
        "avepoint_backup_job_size_bytes",
        "avepoint_backup_last_success_timestamp_seconds",
    ] {
        assert!(metrics.find(absent, &never_ran).is_empty(), "{absent}");
    }
    assert!(
        metrics
            .find("avepoint_api_unreadable_fields_total", &[])
            .is_empty()
    );
    // The coverage item's `customer` is an e-mail address: never exported.
    assert!(!metrics.text.contains('@'), "personal data in /metrics");
    for collector in ["backup_jobs", "backup_coverage"] {
        assert_eq!(
            metrics
                .find(
                    "avepoint_collector_last_success_timestamp_seconds",
                    &[("collector", collector)]
                )
                .len(),
            1
        );
    }
}

#[tokio::test]
async fn a_failing_customer_fails_only_that_customer_and_collector() {
    let chosen: Arc<Mutex<Vec<String>>> = Arc::default();
    let remember = Arc::clone(&chosen);
    let prepare: PrepareSim = Box::new(move |sim: &RunningSimulator| {
        let customers = sim.customers();
        sim.set_fault(FaultAt::BackupJobs(&customers[0].id), Fault::Status(500));
        // Not customer 1, whose module that never ran adds a job series.
        sim.set_fault(FaultAt::Coverage(&customers[2].id), Fault::Status(500));
        let mut chosen = remember.lock().unwrap();
        chosen.push(customers[0].id.clone());
        chosen.push(customers[2].id.clone());
    });
    let harness = exporter(Some(prepare), BOTH, 2).await;
    let (bad_jobs, bad_coverage) = {
        let chosen = chosen.lock().unwrap();
        (chosen[0].clone(), chosen[1].clone())
    };
    let metrics = harness.scrape().await;
    let up = |collector: &str, customer: &str| {
        metrics.value(
            "avepoint_backup_collector_up",
            &[("collector", collector), ("customer_id", customer)],
        )
    };
    assert_eq!(up("backup_jobs", &bad_jobs), 0.0);
    assert_eq!(up("backup_coverage", &bad_jobs), 1.0);
    assert_eq!(up("backup_jobs", &bad_coverage), 1.0);
    assert_eq!(up("backup_coverage", &bad_coverage), 0.0);
    let of = |name: &str, customer: &str| metrics.find(name, &[("customer_id", customer)]).len();
    assert_eq!(of("avepoint_backup_job_status", &bad_jobs), 0);
    assert_eq!(
        of("avepoint_backup_job_status", &bad_coverage),
        MODULES.len()
    );
    assert_eq!(of("avepoint_backup_protected_objects", &bad_coverage), 0);
    assert_eq!(
        of("avepoint_backup_protected_objects", &bad_jobs),
        MODULES.len()
    );
    // Scan profiles are not disturbed, and no collector read every customer.
    assert!(metrics.every_up_is(1.0));
    assert!(
        metrics
            .find("avepoint_collector_last_success_timestamp_seconds", &[])
            .is_empty()
    );
}

#[tokio::test]
async fn backup_only_customers_are_probed_and_listed() {
    // No scan profile collector: the customers come from `targets` alone
    // (their profile ids are then ignored).
    let tail =
        "collectors:\n  scan_profiles:\n    enabled: false\n  backup_jobs:\n    enabled: true\n";
    let harness = Harness::start(Setup {
        config_tail: tail.to_owned(),
        ..Setup::default()
    })
    .await;
    let customers: Vec<String> = harness.customer_ids();
    let mut probed = None;
    for _ in 0..200 {
        let response = harness
            .get(&format!("/probe?customer_id={}", customers[2]), &[])
            .await;
        if response.status == 200 && response.body.contains("avepoint_backup_job_status{") {
            probed = Some(Exposition::parse(&response.body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let probe = probed.expect("the probe of a backup-only customer answers");
    assert!(probe.find("avepoint_scan_profile_up", &[]).is_empty());
    let customers_seen: std::collections::BTreeSet<&str> = probe
        .find("avepoint_backup_job_status", &[])
        .iter()
        .map(|s| s.labels["customer_id"].as_str())
        .collect();
    assert_eq!(
        customers_seen.into_iter().collect::<Vec<_>>(),
        [customers[2].as_str()]
    );
    let sd = harness.get("/sd", &[]).await;
    for customer in &customers {
        assert!(sd.body.contains(customer.as_str()), "{}", sd.body);
    }
    assert_eq!(harness.profile_requests(), 0);
}

/// Both optional collectors of issue #23.
const LICENCES: &str =
    "collectors:\n  protected_users:\n    enabled: true\n  subscriptions:\n    enabled: true\n";

#[tokio::test]
async fn protected_users_and_subscriptions_export_exactly_the_simulated_values() {
    use avepoint_exporter::simulator::licences::{
        NOT_APPLICABLE_CUSTOMER, UNPROTECTED_CUSTOMER, capacity_gb, expiry, seats, user_counts,
    };
    let harness = Harness::start_discovering(Default::default(), LICENCES).await;
    let customers = harness.sim.customers().to_vec();
    let mut metrics = harness.scrape().await;
    for _ in 0..200 {
        let users_up = metrics.find(
            "avepoint_backup_collector_up",
            &[("collector", "protected_users")],
        );
        if metrics.find("avepoint_subscriptions_up", &[]).len() == 1
            && users_up.len() == customers.len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        metrics = harness.scrape().await;
    }
    assert_eq!(metrics.value("avepoint_subscriptions_up", &[]), 1.0);
    let now = time::OffsetDateTime::now_utc();
    const GB: f64 = 1024.0 * 1024.0 * 1024.0;
    for (index, customer) in customers.iter().enumerate() {
        let id = customer.id.as_str();
        let backup = [
            ("customer_id", id),
            ("service_name", "cloud_backup_for_microsoft_365"),
        ];
        if index == NOT_APPLICABLE_CUSTOMER {
            // Every value "N/A": no series at all, and no error.
            let any = metrics.samples.iter().any(|s| {
                s.name.starts_with("avepoint_subscription_")
                    && s.labels.get("customer_id").map(String::as_str) == Some(id)
            });
            assert!(!any, "customer {index} has subscription series");
        } else {
            let expires = expiry(index, now).unix_timestamp() as f64;
            assert_eq!(
                metrics.value("avepoint_subscription_expiry_timestamp_seconds", &backup),
                expires
            );
            let (purchased, assigned, available) = seats(index);
            for (kind, want) in [
                ("purchased", purchased),
                ("assigned", assigned),
                ("available", available),
            ] {
                let labels = [backup[0], backup[1], ("kind", kind)];
                assert_eq!(
                    metrics.value("avepoint_subscription_seats", &labels),
                    want as f64,
                    "{kind}"
                );
            }
            let (bought, used, protected, consumed) = capacity_gb(index);
            for (kind, want) in [
                ("purchased", bought),
                ("used", used),
                ("protected", protected),
                ("consumed", consumed),
            ] {
                let labels = [backup[0], backup[1], ("kind", kind)];
                assert_eq!(
                    metrics.value("avepoint_subscription_capacity_bytes", &labels),
                    want as f64 * GB,
                    "{kind}"
                );
            }
            let migration = [
                ("customer_id", id),
                ("service_name", "fly_migration_to_google"),
                ("kind", "purchased"),
            ];
            assert_eq!(
                metrics.value("avepoint_subscription_seats", &migration),
                25.0
            );
        }
        let (users, mailboxes, onedrives) = user_counts(index);
        let tenant = customer.tenant_id.as_str();
        for (module, unprotected) in [("mailbox", mailboxes), ("onedrive", onedrives)] {
            for (protected, want) in [("false", unprotected), ("true", users - unprotected)] {
                let labels = [
                    ("customer_id", id),
                    ("tenant_id", tenant),
                    ("module", module),
                    ("protected", protected),
                ];
                assert_eq!(
                    metrics.value("avepoint_backup_users", &labels),
                    want as f64,
                    "{index} {module} {protected}"
                );
            }
        }
    }
    assert_eq!(UNPROTECTED_CUSTOMER, 1);
    // No address of a user or a customer reaches the exposition.
    let text = harness.get("/metrics", &[]).await.body;
    assert!(!text.contains('@'), "an address in /metrics");
    // A probe of one customer carries its own series only.
    let probe = harness
        .get(&format!("/probe?customer_id={}", customers[0].id), &[])
        .await;
    let probe = Exposition::parse(&probe.body);
    let seen: std::collections::BTreeSet<&str> = probe
        .samples
        .iter()
        .filter(|s| {
            s.name.starts_with("avepoint_subscription_") || s.name == "avepoint_backup_users"
        })
        .map(|s| s.labels["customer_id"].as_str())
        .collect();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [customers[0].id.as_str()]
    );
}
