//! The simulator's own fixtures (`src/simulator/fixtures/`, which it
//! answers from), decoded through the exporter's own model types. They are
//! written from AvePoint's field lists and are no evidence of what
//! AvePoint sends: the documented samples, with their "N/A" values, nulls
//! and masked ids, are tests/documented_samples.rs'. A field the model
//! misspells shows here as a value missing or wrong.

use std::path::Path;

use avepoint_exporter::avepoint::details::object_type_label;
use avepoint_exporter::avepoint::model::{
    ApiErrorBody, Customer, ListMismatch, Page, ScanProfileSummary,
};
use avepoint_exporter::avepoint::{ProfileContainer, ScanProfileDetails, ScanProfileReport};
use time::macros::datetime;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/simulator/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const SAMPLE_PROFILE_ID: &str = "47dba9a1-1004-4c2d-b2ce-8f5e66f5842d";
const SAMPLE_TENANT_ID: &str = "c2350b99-c7a2-4605-b7d4-79e8646f66c3";

#[test]
fn the_seed_report_decodes_exactly() {
    let report: ScanProfileReport =
        serde_json::from_str(&fixture("scan_profile_report.json")).unwrap();
    assert_eq!(
        report,
        ScanProfileReport {
            profile_name: "Default Microsoft 365 Scan Profile".into(),
            profile_id: SAMPLE_PROFILE_ID.into(),
            tenant_domain: "v0s40".into(),
            tenant_id: SAMPLE_TENANT_ID.into(),
            scan_mode: Some(0),
            modified_time: Some(datetime!(2025-09-11 03:19:14 UTC)),
            last_update_time: Some(datetime!(2025-09-11 03:19:14 UTC)),
            last_scan_status: 2,
            new_registered_content_count: 0,
            moved_to_another_container: 0,
            removed_from_m365_or_out_of_policy: 0,
            new_registered_content_listed: None,
            moved_to_another_container_listed: None,
            removed_from_m365_or_out_of_policy_listed: None,
        }
    );
    assert_eq!(report.list_mismatches(), []);
}

#[test]
fn the_changes_report_decodes_with_its_lists_counted() {
    let text = fixture("scan_profile_changes.json");
    let report: ScanProfileReport = serde_json::from_str(&text).unwrap();
    assert_eq!(report.profile_id, SAMPLE_PROFILE_ID);
    assert_eq!(report.last_scan_status, 2);
    assert_eq!(
        (
            report.new_registered_content_count,
            report.moved_to_another_container,
            report.removed_from_m365_or_out_of_policy
        ),
        (2, 1, 1)
    );
    assert_eq!(
        (
            report.new_registered_content_listed,
            report.moved_to_another_container_listed,
            report.removed_from_m365_or_out_of_policy_listed
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(report.list_mismatches(), []);
    // Decoded from a reader, as the client does, it is the same report.
    let streamed: ScanProfileReport = serde_json::from_reader(text.as_bytes()).unwrap();
    assert_eq!(streamed, report);
}

#[test]
fn a_list_that_disagrees_with_its_count_is_named() {
    let text = fixture("scan_profile_changes.json").replace(
        "\"newRegisteredContentCount\": 2",
        "\"newRegisteredContentCount\": 5",
    );
    let report: ScanProfileReport = serde_json::from_str(&text).unwrap();
    assert_eq!(report.new_registered_content_count, 5);
    assert_eq!(
        report.list_mismatches(),
        [ListMismatch {
            count_field: "newRegisteredContentCount",
            count: 5,
            list_field: "newRegisteredContent",
            listed: 2,
        }]
    );
}

#[test]
fn a_list_of_the_wrong_type_is_an_error_naming_what_was_expected() {
    let text = fixture("scan_profile_changes.json").replace(
        "\"removedFromMicrosoft365OrOutOfPolicyObjects\": [\n    \"Old Contract.pdf\"\n  ]",
        "\"removedFromMicrosoft365OrOutOfPolicyObjects\": \"Old Contract.pdf\"",
    );
    let error = serde_json::from_str::<ScanProfileReport>(&text).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid type: string \"Old Contract.pdf\", expected a list"),
        "{error}"
    );
    let null = fixture("scan_profile_changes.json").replace(
        "\"removedFromMicrosoft365OrOutOfPolicyObjects\": [\n    \"Old Contract.pdf\"\n  ]",
        "\"removedFromMicrosoft365OrOutOfPolicyObjects\": null",
    );
    let report: ScanProfileReport = serde_json::from_str(&null).unwrap();
    assert_eq!(report.removed_from_m365_or_out_of_policy_listed, None);
}

#[test]
fn the_profile_details_decode_exactly_without_the_impersonation_account() {
    let details: ScanProfileDetails =
        serde_json::from_str(&fixture("scan_profile_details.json")).unwrap();
    assert_eq!(
        details,
        ScanProfileDetails {
            profile_id: SAMPLE_PROFILE_ID.into(),
            profile_name: "Default Microsoft 365 Scan Profile".into(),
            tenant_id: SAMPLE_TENANT_ID.into(),
            tenant_domain: "domain".into(),
            scan_mode: Some(0),
            modified_time: Some(datetime!(2025-09-11 03:19:14 UTC)),
            created_time: Some(datetime!(2025-09-11 03:19:14 UTC)),
            daily_scan_time: Some(15 * 3600 + 19 * 60),
            scan_inplace_archived_mailboxes: Some(false),
            is_ignore_locked_site_enabled: Some(false),
            is_send_out_of_policy_notification: Some(false),
            containers: vec![
                ProfileContainer {
                    name: "Default_ProjectOnline_Sites_Group".into(),
                    object_type: 6,
                },
                ProfileContainer {
                    name: "Default OneDrive for Business Group".into(),
                    object_type: 2,
                },
            ],
        }
    );
    assert_eq!(
        object_type_label(details.containers[0].object_type),
        "project_online"
    );
    let debug = format!("{details:?}");
    assert!(!debug.contains("user@domain.com"), "{debug}");
}

#[test]
fn daily_scan_no_is_off_and_a_bad_value_names_the_field() {
    let text = fixture("scan_profile_details.json");
    let off = text.replace(
        "\"enableDailyScan\": \"15:19\"",
        "\"enableDailyScan\": \"No\"",
    );
    let details: ScanProfileDetails = serde_json::from_str(&off).unwrap();
    assert_eq!(details.daily_scan_time, None);
    let bad = text.replace(
        "\"enableDailyScan\": \"15:19\"",
        "\"enableDailyScan\": \"25:00\"",
    );
    let error = serde_json::from_str::<ScanProfileDetails>(&bad).unwrap_err();
    assert_eq!(
        error.to_string(),
        "enableDailyScan: expected No or a time of day hh:mm at line 13 column 28"
    );
    let missing = text.replace("\"enableDailyScan\": \"15:19\",", "");
    let error = serde_json::from_str::<ScanProfileDetails>(&missing).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("missing field `enableDailyScan`"),
        "{error}"
    );
}

#[test]
fn the_customer_page_decodes_without_the_owner_email() {
    let page: Page<Customer> = serde_json::from_str(&fixture("customers_page.json")).unwrap();
    assert_eq!(
        (
            page.metadata.page_index,
            page.metadata.page_size,
            page.metadata.total_count
        ),
        (1, 50, 1)
    );
    let [customer] = page.data.as_slice() else {
        panic!("one customer expected: {:?}", page.data);
    };
    assert_eq!(customer.id, "8a3f1c52-6d0e-4b7a-9c21-5e4d3b2a1f60");
    assert_eq!(customer.organization, "Contoso Ltd");
    assert_eq!(customer.job_status, Some(1));
    assert_eq!(customer.country_or_region.as_deref(), Some("US"));
    assert_eq!(customer.management_mode, Some(1));
    assert_eq!(customer.tenants.len(), 1);
    assert_eq!(customer.tenants[0].id, SAMPLE_TENANT_ID);
    assert_eq!(customer.tenants[0].name, "contoso.onmicrosoft.com");
    assert!(!format!("{page:?}").contains("admin@contoso.com"));
}

#[test]
fn the_scan_profile_page_decodes_exactly() {
    let page: Page<ScanProfileSummary> =
        serde_json::from_str(&fixture("scan_profiles_page.json")).unwrap();
    assert_eq!(page.metadata.total_count, 1);
    let [profile] = page.data.as_slice() else {
        panic!("one profile expected: {:?}", page.data);
    };
    assert_eq!(profile.profile_id, SAMPLE_PROFILE_ID);
    assert_eq!(profile.profile_name, "Default Microsoft 365 Scan Profile");
    assert_eq!(profile.scan_mode, Some(0));
    assert_eq!(
        profile.modified_time,
        Some(datetime!(2025-09-11 03:19:14 UTC))
    );
}

#[test]
fn the_error_body_gives_message_request_id_and_trace_id() {
    let body: ApiErrorBody = serde_json::from_str(&fixture("error.json")).unwrap();
    assert_eq!(
        body.message.as_deref(),
        Some("The scan profile was not found.")
    );
    assert_eq!(body.request_id.as_deref(), Some("0HN7J2KQ8V1UA:00000001"));
    assert_eq!(
        body.trace_id.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    // A field of an odd type is dropped, not fatal to the rest.
    let odd: ApiErrorBody =
        serde_json::from_str(r#"{"message": "no", "requestId": 42, "traceId": {"x": 1}}"#).unwrap();
    assert_eq!(
        (
            odd.message.as_deref(),
            odd.request_id.as_deref(),
            odd.trace_id
        ),
        (Some("no"), Some("42"), None)
    );
}
