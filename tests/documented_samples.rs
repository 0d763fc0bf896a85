//! AvePoint's documented response samples (tests/testdata/avepoint-docs/,
//! each naming its source page in that folder's README) decoded through
//! the exporter's own types, and the backup ones served end to end
//! through the simulator: every value they show is exported, and what they
//! leave out ("N/A", null, masked ids) is unknown, never a failure.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use avepoint_exporter::avepoint::backup::{BackupJob, CoverageItem};
use avepoint_exporter::avepoint::lenient::UnreadableFields;
use avepoint_exporter::avepoint::model::{Customer, Page, ScanProfileSummary};
use avepoint_exporter::avepoint::{ScanProfileDetails, ScanProfileReport};
use avepoint_exporter::backup::{coverage_rows, latest_jobs};
use avepoint_exporter::simulator::{Fault, FaultAt, RunningSimulator};
use common::{Exposition, Harness, PrepareSim, Setup};

fn sample(name: &str) -> String {
    let path = format!(
        "{}/tests/testdata/avepoint-docs/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn unix(text: &str) -> f64 {
    avepoint_exporter::avepoint::model::api_time::parse(text)
        .expect("a valid time")
        .unix_timestamp() as f64
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[test]
fn the_jobs_sample_decodes_with_its_na_name() {
    let page: Page<BackupJob> = serde_json::from_str(&sample("customer-jobs.json")).unwrap();
    assert_eq!(page.metadata.total_count, 1);
    let job = &page.data[0];
    assert!(job.unreadable_fields().is_empty());
    let rows = latest_jobs("c", &page.data, &mut Default::default());
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (row.job_type.as_str(), row.job_module.as_str(), row.job_kind),
        ("microsoft_365", "microsoft_365_groups", "backup")
    );
    assert_eq!(row.status, Some(3));
    assert_eq!(
        row.objects,
        [Some(1417), Some(3), Some(1414), Some(0), Some(0)]
    );
    assert_eq!(row.size_bytes, Some(0.0));
    assert_eq!(row.start, Some(unix("2026-10-05T02:10:00Z")));
    assert_eq!(row.end, Some(unix("2026-10-05T02:31:05Z")));
    assert_eq!(row.duration, Some(21.0 * 60.0 + 5.0));
    assert_eq!(row.last_success, None, "the job failed");
}

#[test]
fn a_module_that_never_ran_is_known_with_unknown_times() {
    let page: Page<BackupJob> =
        serde_json::from_str(&sample("customer-jobs-older-api.json")).unwrap();
    assert!(
        page.data
            .iter()
            .all(|job| job.unreadable_fields().is_empty())
    );
    let rows = latest_jobs("c", &page.data, &mut Default::default());
    let teams = rows
        .iter()
        .find(|row| row.job_module == "microsoft_teams")
        .expect("the module that never ran has its row");
    assert_eq!(teams.status, Some(0));
    assert_eq!(
        (teams.start, teams.end, teams.duration, teams.size_bytes),
        (None, None, None, None)
    );
    assert_eq!(teams.objects, [Some(0); 5]);
    let exchange = rows
        .iter()
        .find(|row| row.job_module == "exchange_online")
        .unwrap();
    assert_eq!(exchange.size_bytes, Some(1.25 * GIB));
    assert_eq!(exchange.last_success, Some(unix("2026-10-05T01:04:10Z")));
}

#[test]
fn the_coverage_sample_decodes_with_names_and_na_sizes() {
    let page: Page<CoverageItem> = serde_json::from_str(&sample("coverage-overview.json")).unwrap();
    assert_eq!(page.metadata.total_count, 2);
    assert!(
        page.data
            .iter()
            .all(|item| item.unreadable_fields().is_empty())
    );
    let rows = coverage_rows(&page.data);
    let labels: Vec<_> = rows
        .iter()
        .map(|row| (row.service_type.as_str(), row.service_module.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("microsoft_365", "exchange_online"),
            ("microsoft_365", "microsoft_365_groups"),
        ]
    );
    assert_eq!(
        (rows[0].scanned_objects, rows[0].protected_objects),
        (Some(31), Some(30))
    );
    assert_eq!(rows[0].stored_avepoint, Some(2.0 * GIB));
    assert_eq!(rows[0].stored_byos, None, "N/A: not applicable");
    assert_eq!(rows[1].stored_avepoint, Some(0.0));
}

#[test]
fn the_october_2025_bare_list_decodes_and_rows_of_one_module_add_up() {
    let page: Page<CoverageItem> =
        serde_json::from_str(&sample("coverage-overview-2025-10.json")).unwrap();
    assert_eq!(page.data.len(), 2);
    assert_eq!(
        page.metadata.total_count, 2,
        "one page holds the whole list"
    );
    let rows = coverage_rows(&page.data);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].scanned_objects, rows[0].protected_objects),
        (Some(35), Some(32))
    );
    assert_eq!(rows[0].stored_avepoint, Some(2.5 * GIB));
}

#[test]
fn the_report_details_and_discovery_samples_decode() {
    let report: ScanProfileReport =
        serde_json::from_str(&sample("scan-profile-changes.json")).unwrap();
    assert_eq!(report.profile_id, "5be1****-2a77-****-81c9-0d3e****a912");
    assert_eq!(report.last_scan_status, 2);
    assert_eq!(
        report.last_update_time.map(|t| t.unix_timestamp() as f64),
        Some(unix("2026-10-05T03:40:51Z"))
    );
    assert_eq!(report.new_registered_content_listed, Some(0));
    assert!(report.list_mismatches().is_empty());

    let details: ScanProfileDetails =
        serde_json::from_str(&sample("scan-profile-detail.json")).unwrap();
    assert_eq!(details.daily_scan_time, Some(3 * 3600 + 30 * 60));
    assert_eq!(details.containers.len(), 3);

    let profiles: Page<ScanProfileSummary> =
        serde_json::from_str(&sample("scan-profiles.json")).unwrap();
    assert_eq!(profiles.data[0].profile_name, "Daily Microsoft 365 Scan");

    let customers: Page<Customer> = serde_json::from_str(&sample("customers.json")).unwrap();
    assert_eq!(customers.data.len(), 2);
    assert_eq!(customers.data[0].tenants.len(), 1);
    assert!(customers.data[1].tenants.is_empty(), "tenants: null");
}

#[test]
fn odd_values_in_reports_and_discovery_are_unknown_not_failures() {
    let report: ScanProfileReport = serde_json::from_str(
        r#"{"profileName": null, "profileId": "p", "tenantDomain": null,
            "tenantId": null, "scanMode": "N/A", "modifiedTime": "",
            "lastUpdateTime": "0001-01-01T00:00:00", "lastScanStatus": 2,
            "newRegisteredContentCount": 1, "movedToAnotherContainer": 2,
            "removedFromMicrosoft365OrOutofPolicy": 3,
            "newRegisteredContent": null}"#,
    )
    .expect("the report decodes");
    assert_eq!(report.profile_name, "");
    assert_eq!(report.scan_mode, None);
    assert_eq!(
        (report.modified_time, report.last_update_time),
        (None, None)
    );
    assert_eq!(report.new_registered_content_count, 1);

    let spaced: ScanProfileReport = serde_json::from_str(
        r#"{"lastUpdateTime": "2026-10-05 03:40:51Z", "modifiedTime": "N/A",
            "lastScanStatus": 2, "newRegisteredContentCount": 0,
            "movedToAnotherContainer": 0, "removedFromMicrosoft365OrOutofPolicy": 0}"#,
    )
    .expect("a space for the T is read");
    assert_eq!(
        spaced.last_update_time.map(|t| t.unix_timestamp() as f64),
        Some(unix("2026-10-05T03:40:51Z"))
    );

    let profiles: Page<ScanProfileSummary> = serde_json::from_str(
        r#"{"data": [{"profileName": "a", "profileId": "p1", "modifiedTime": ""},
                     {"profileName": null, "profileId": "p2", "modifiedTime": "N/A"}],
            "metadata": {"pageIndex": 1, "pageSize": 50, "totalCount": 2}}"#,
    )
    .expect("odd discovery times do not fail the page");
    assert_eq!(profiles.data.len(), 2);

    let empty: Page<Customer> =
        serde_json::from_str(r#"{"data": null, "metadata": {"totalCount": 0}}"#).unwrap();
    assert!(empty.data.is_empty());
}

const BOTH: &str =
    "collectors:\n  backup_jobs:\n    enabled: true\n  backup_coverage:\n    enabled: true\n";

/// The exporter with both backup collectors, the first customer's jobs
/// and coverage answered as `faults` says, once both have read it.
async fn backup_exporter(jobs: Fault, coverage: Fault) -> (Harness, String) {
    let chosen: Arc<Mutex<String>> = Arc::default();
    let remember = Arc::clone(&chosen);
    let prepare: PrepareSim = Box::new(move |sim: &RunningSimulator| {
        let customer = sim.customers()[0].id.clone();
        sim.set_fault(FaultAt::BackupJobs(&customer), jobs.clone());
        sim.set_fault(FaultAt::Coverage(&customer), coverage.clone());
        *remember.lock().unwrap() = customer;
    });
    let harness = Harness::start(Setup {
        config_tail: BOTH.to_owned(),
        prepare_sim: Some(prepare),
        ..Setup::default()
    })
    .await;
    let customer = chosen.lock().unwrap().clone();
    for _ in 0..200 {
        let metrics = harness.scrape().await;
        if metrics
            .find(
                "avepoint_backup_collector_up",
                &[("customer_id", &customer)],
            )
            .len()
            == 2
        {
            return (harness, customer);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the backup collectors never read the customer");
}

fn up(metrics: &Exposition, collector: &str, customer: &str) -> f64 {
    metrics.value(
        "avepoint_backup_collector_up",
        &[("collector", collector), ("customer_id", customer)],
    )
}

#[tokio::test]
async fn the_documented_samples_export_the_values_they_show() {
    let (harness, customer) = backup_exporter(
        Fault::Body(sample("customer-jobs.json")),
        Fault::Body(sample("coverage-overview.json")),
    )
    .await;
    let metrics = harness.scrape().await;
    assert_eq!(up(&metrics, "backup_jobs", &customer), 1.0);
    assert_eq!(up(&metrics, "backup_coverage", &customer), 1.0);
    let job = [
        ("customer_id", customer.as_str()),
        ("job_type", "microsoft_365"),
        ("job_module", "microsoft_365_groups"),
        ("job_kind", "backup"),
    ];
    assert_eq!(metrics.value("avepoint_backup_job_status", &job), 3.0);
    let mut failed = job.to_vec();
    failed.push(("result", "failed"));
    assert_eq!(metrics.value("avepoint_backup_job_objects", &failed), 3.0);
    assert_eq!(
        metrics.value("avepoint_backup_job_start_timestamp_seconds", &job),
        unix("2026-10-05T02:10:00Z")
    );
    // Coverage joins the jobs: the same module label from the name.
    let row = [
        ("customer_id", customer.as_str()),
        ("service_type", "microsoft_365"),
        ("service_module", "microsoft_365_groups"),
    ];
    assert_eq!(metrics.value("avepoint_backup_scanned_objects", &row), 9.0);
    assert_eq!(
        metrics.value("avepoint_backup_protected_objects", &row),
        9.0
    );
    let mut byos = row.to_vec();
    byos.push(("storage", "byos"));
    assert!(
        metrics
            .find("avepoint_backup_stored_bytes", &byos)
            .is_empty(),
        "N/A is no size"
    );
    assert!(!metrics.text.contains('@'), "an e-mail address in /metrics");
    assert!(
        metrics
            .find("avepoint_api_unreadable_fields_total", &[])
            .is_empty()
    );
}

#[tokio::test]
async fn na_and_null_fields_and_a_bare_list_fail_nothing() {
    let (harness, customer) = backup_exporter(Fault::NotApplicable, Fault::BareList).await;
    let metrics = harness.scrape().await;
    assert_eq!(up(&metrics, "backup_jobs", &customer), 1.0);
    assert_eq!(up(&metrics, "backup_coverage", &customer), 1.0);
    // The bare list is the whole list: every module's coverage.
    assert_eq!(
        metrics
            .find(
                "avepoint_backup_scanned_objects",
                &[("customer_id", &customer)]
            )
            .len(),
        4
    );
    // Every module still has its latest job.
    assert_eq!(
        metrics
            .find("avepoint_backup_job_status", &[("customer_id", &customer)])
            .len(),
        4
    );
    assert!(
        metrics
            .find("avepoint_api_unreadable_fields_total", &[])
            .is_empty(),
        "N/A and null are no value, not an unreadable one"
    );
}

#[tokio::test]
async fn an_unreadable_count_or_size_is_that_field_unknown_and_counted() {
    let (harness, customer) = backup_exporter(Fault::WrongTypes, Fault::WrongTypes).await;
    let metrics = harness.scrape().await;
    assert_eq!(up(&metrics, "backup_jobs", &customer), 1.0);
    assert_eq!(up(&metrics, "backup_coverage", &customer), 1.0);
    assert_eq!(
        metrics.value(
            "avepoint_api_unreadable_fields_total",
            &[
                ("api_endpoint", "backup_jobs_batch"),
                ("field", "totalCount")
            ]
        ),
        1.0
    );
    assert_eq!(
        metrics.value(
            "avepoint_api_unreadable_fields_total",
            &[
                ("api_endpoint", "backup_coverage"),
                ("field", "dataSizeStoredInAvePoint")
            ]
        ),
        1.0
    );
    // The value the customer's module sent as "12x" is absent; the rest is there.
    let totals = metrics.find(
        "avepoint_backup_job_objects",
        &[("customer_id", &customer), ("result", "total")],
    );
    assert_eq!(totals.len(), 3, "{totals:?}");
    assert!(
        !metrics.text.contains("12x"),
        "the upstream value is exported"
    );
}

#[tokio::test]
async fn jobs_are_asked_for_per_job_type_when_all_at_once_is_refused() {
    let (harness, customer) = backup_exporter(Fault::OneJobTypeOnly, Fault::Status(500)).await;
    let metrics = harness.scrape().await;
    assert_eq!(up(&metrics, "backup_jobs", &customer), 1.0);
    assert_eq!(up(&metrics, "backup_coverage", &customer), 0.0);
    assert_eq!(
        metrics
            .find("avepoint_backup_job_status", &[("customer_id", &customer)])
            .len(),
        4
    );
    assert!(
        metrics.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "backup_jobs_batch"), ("code", "400")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn a_report_and_details_with_na_times_and_null_names_stay_up() {
    let chosen: Arc<Mutex<(String, String)>> = Arc::default();
    let remember = Arc::clone(&chosen);
    let prepare: PrepareSim = Box::new(move |sim: &RunningSimulator| {
        let (customer, profile) = sim.profile_ids()[0].clone();
        sim.set_fault(FaultAt::Report(&profile), Fault::NotApplicable);
        sim.set_fault(FaultAt::Details(&profile), Fault::NotApplicable);
        *remember.lock().unwrap() = (customer, profile);
    });
    let harness = Harness::start(Setup {
        prepare_sim: Some(prepare),
        profile_details: true,
        ..Setup::default()
    })
    .await;
    let (customer, profile) = chosen.lock().unwrap().clone();
    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.profile_value("avepoint_scan_profile_up", &customer, &profile),
        1.0
    );
    let of_profile = [
        ("customer_id", customer.as_str()),
        ("profile_id", profile.as_str()),
    ];
    // lastUpdateTime 0001-01-01 and modifiedTime "N/A": no timestamp series.
    for absent in [
        "avepoint_scan_last_update_timestamp_seconds",
        "avepoint_scan_profile_modified_timestamp_seconds",
    ] {
        assert!(metrics.find(absent, &of_profile).is_empty(), "{absent}");
    }
    let mut info = of_profile.to_vec();
    info.push(("profile_name", ""));
    assert_eq!(metrics.value("avepoint_scan_profile_info", &info), 1.0);
    assert!(
        metrics
            .find("avepoint_scan_new_registered_content", &of_profile)
            .len()
            == 1
    );
}
