//! The simulator's JSON: each answer starts as a fixture (`fixtures/*.json`,
//! the simulator's own, written from the documented field lists and
//! richer than AvePoint's samples; not copies of them: those, with their
//! `"N/A"` values and masked ids, are tests/testdata/avepoint-docs/) and
//! gets the simulated values set field by field, under the documented
//! names. Nothing here serializes the exporter's own model
//! types, so a field the model misspells is a field the tests see missing.

use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};

use super::data::{SimCustomer, SimProfile, mix};
use crate::avepoint::model::{ScanProfileReport, api_time};

/// §2: the `scan-profiles-v2` report.
pub const REPORT_FIXTURE: &str = include_str!("fixtures/scan_profile_report.json");
/// §2: the `changes` report, the same object plus the three lists.
pub const CHANGES_FIXTURE: &str = include_str!("fixtures/scan_profile_changes.json");
/// §2b: a profile's details.
pub const DETAILS_FIXTURE: &str = include_str!("fixtures/scan_profile_details.json");
/// §3: a page of customers.
pub const CUSTOMERS_PAGE_FIXTURE: &str = include_str!("fixtures/customers_page.json");
/// §3: a page of a customer's scan profiles.
pub const PROFILES_PAGE_FIXTURE: &str = include_str!("fixtures/scan_profiles_page.json");
/// §4: the error body.
pub const ERROR_FIXTURE: &str = include_str!("fixtures/error.json");

/// A fixture parsed once. They are part of the binary, and a unit test
/// parses each, so a broken one fails the tests, never a request.
fn parsed(text: &'static str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("a fixture is not JSON: {error}"))
}

static REPORT: LazyLock<Value> = LazyLock::new(|| parsed(REPORT_FIXTURE));
static CHANGES: LazyLock<Value> = LazyLock::new(|| parsed(CHANGES_FIXTURE));
static DETAILS: LazyLock<Value> = LazyLock::new(|| parsed(DETAILS_FIXTURE));
static CUSTOMERS_PAGE: LazyLock<Value> = LazyLock::new(|| parsed(CUSTOMERS_PAGE_FIXTURE));
static PROFILES_PAGE: LazyLock<Value> = LazyLock::new(|| parsed(PROFILES_PAGE_FIXTURE));
static ERROR: LazyLock<Value> = LazyLock::new(|| parsed(ERROR_FIXTURE));

/// The lists of a `changes` body, as documented: two of objects, one of names.
const NEW_LIST: &str = "newRegisteredContent";
const MOVED_LIST: &str = "movedToAnotherContainerObjects";
const REMOVED_LIST: &str = "removedFromMicrosoft365OrOutOfPolicyObjects";

/// Most items a list gets from its count; a count pinned higher (a test's
/// report) is served with a shorter list rather than megabytes of it.
const MAX_LIST_FROM_COUNT: i64 = 1000;

/// Set a field the fixture already has. A name the fixture lacks is a typo
/// here, not a new field: debug builds (the tests) stop on it.
fn set(object: &mut Value, field: &str, value: Value) {
    debug_assert!(
        object.get(field).is_some(),
        "`{field}` is no field of the documented example"
    );
    object[field] = value;
}

fn time(at: Option<time::OffsetDateTime>) -> Value {
    at.map_or(Value::Null, |at| json!(api_time::format(at)))
}

/// A profile report: the §2 example (with `with_lists`, the `changes`
/// example) with `report`'s values. The lists hold as many items as the
/// counts say, up to [`MAX_LIST_FROM_COUNT`].
pub(super) fn report_body(report: &ScanProfileReport, with_lists: bool) -> Value {
    let mut body = if with_lists { &*CHANGES } else { &*REPORT }.clone();
    set(&mut body, "profileName", json!(report.profile_name));
    set(&mut body, "profileId", json!(report.profile_id));
    set(&mut body, "tenantDomain", json!(report.tenant_domain));
    set(&mut body, "tenantId", json!(report.tenant_id));
    set(&mut body, "scanMode", json!(report.scan_mode));
    set(&mut body, "modifiedTime", time(report.modified_time));
    set(&mut body, "lastUpdateTime", time(report.last_update_time));
    set(&mut body, "lastScanStatus", json!(report.last_scan_status));
    let counts = [
        (
            "newRegisteredContentCount",
            report.new_registered_content_count,
        ),
        ("movedToAnotherContainer", report.moved_to_another_container),
        (
            "removedFromMicrosoft365OrOutofPolicy",
            report.removed_from_m365_or_out_of_policy,
        ),
    ];
    for (field, count) in counts {
        set(&mut body, field, json!(count));
    }
    if with_lists {
        for ((list, _), (_, count)) in lists().into_iter().zip(counts) {
            let length = count.clamp(0, MAX_LIST_FROM_COUNT) as usize;
            set(&mut body, list, Value::Array(list_items(list, length)));
        }
    }
    body
}

/// How the i-th item of a list is made.
type ItemMaker = fn(usize) -> Value;

/// The three list names, each with how its i-th item is made.
fn lists() -> [(&'static str, ItemMaker); 3] {
    [
        (NEW_LIST, new_item),
        (MOVED_LIST, moved_item),
        (REMOVED_LIST, removed_item),
    ]
}

fn list_items(list: &str, length: usize) -> Vec<Value> {
    let make = lists()
        .into_iter()
        .find(|(name, _)| *name == list)
        .map_or(removed_item as ItemMaker, |(_, make)| make);
    (0..length).map(make).collect()
}

/// An item shaped like the fixture's first of `list`, with its own values.
fn object_item(list: &str, object_name: String, container_name: String) -> Value {
    let mut item = CHANGES[list][0].clone();
    set(&mut item, "objectName", json!(object_name));
    set(&mut item, "containerName", json!(container_name));
    item
}

fn new_item(index: usize) -> Value {
    object_item(
        NEW_LIST,
        format!("Registered document {index:06}.docx"),
        format!("https://contoso.sharepoint.com/sites/team-{}", index % 7),
    )
}

fn moved_item(index: usize) -> Value {
    object_item(
        MOVED_LIST,
        format!("Moved workbook {index:06}.xlsx"),
        format!(
            "https://contoso-my.sharepoint.com/personal/user{}",
            index % 11
        ),
    )
}

fn removed_item(index: usize) -> Value {
    json!(format!("Removed presentation {index:06}.pptx"))
}

/// The end of a `changes` body with `length` items in each list, from the
/// first list's name to the closing brace: `"newRegisteredContent":[...],
/// ...]}`. Built once per length and shared by every answer.
pub(super) fn changes_lists_tail(length: usize) -> Bytes {
    let mut out = Vec::with_capacity(length * 180);
    for (position, (list, make)) in lists().into_iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("\"{list}\":[").as_bytes());
        for index in 0..length {
            if index > 0 {
                out.push(b',');
            }
            // Writing JSON values into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &make(index));
        }
        out.push(b']');
    }
    out.push(b'}');
    Bytes::from(out)
}

/// A `changes` body streamed in pieces: `head` (a report without lists)
/// with its closing brace replaced by `tail` ([`changes_lists_tail`]).
pub(super) fn streamed_changes(head: &Value, tail: Bytes) -> Body {
    const PIECE: usize = 64 * 1024;
    let mut start = head.to_string().into_bytes();
    start.pop();
    start.push(b',');
    let pieces = (0..tail.len())
        .step_by(PIECE)
        .map(move |at| tail.slice(at..(at + PIECE).min(tail.len())));
    let body = std::iter::once(Bytes::from(start))
        .chain(pieces)
        .map(Ok::<_, std::convert::Infallible>);
    Body::from_stream(futures_util::stream::iter(body))
}

/// A profile's details: the §2b example with the profile's ids, name,
/// times, daily scan and containers.
pub(super) fn details_body(customer: &SimCustomer, profile: &SimProfile) -> Value {
    let mut body = DETAILS.clone();
    set(&mut body, "profileId", json!(profile.id));
    set(&mut body, "profileName", json!(profile.name));
    set(&mut body, "tenantId", json!(customer.tenant_id));
    set(&mut body, "tenantDomain", json!(customer.tenant_domain));
    set(&mut body, "scanMode", json!(profile.scan_mode));
    set(&mut body, "modifiedTime", time(Some(profile.modified_time)));
    set(&mut body, "createdTime", time(Some(profile.created_time)));
    // Personal data the exporter must drop, so the simulator sends some.
    let account = format!("scan.admin@{}.example", customer.tenant_domain);
    set(&mut body, "impersonationAccount", json!(account));
    let daily_scan = profile
        .daily_scan
        .map_or_else(|| "No".to_owned(), |(h, m)| format!("{h:02}:{m:02}"));
    set(&mut body, "enableDailyScan", json!(daily_scan));
    let containers = profile
        .containers
        .iter()
        .map(|(name, object_type)| {
            let mut item = DETAILS["containers"][0].clone();
            set(&mut item, "containersName", json!(name));
            set(&mut item, "objectType", json!(object_type));
            item
        })
        .collect();
    set(&mut body, "containers", Value::Array(containers));
    body
}

/// A customer as the customer list shows it (the §3 item).
pub(super) fn customer_item(customer: &SimCustomer) -> Value {
    let mut item = CUSTOMERS_PAGE["data"][0].clone();
    let mut tenant = item["tenants"][0].clone();
    set(&mut tenant, "id", json!(customer.tenant_id));
    let name = format!("{}.onmicrosoft.com", customer.tenant_domain);
    set(&mut tenant, "name", json!(name));
    set(&mut item, "id", json!(customer.id));
    set(&mut item, "organization", json!(customer.organization));
    // The real API sends the owner's e-mail address: personal data the
    // exporter must ignore, so the simulator sends one too.
    let owner = format!("owner@{}.example", customer.tenant_domain);
    set(&mut item, "ownerEmail", json!(owner));
    set(&mut item, "jobStatus", json!(customer.job_status));
    set(&mut item, "countryOrRegion", json!(customer.country));
    set(&mut item, "managementMode", json!(customer.management_mode));
    set(&mut item, "tenants", json!([tenant]));
    item
}

/// A customer item whose id is no UUID, as a buggy or hostile server might send.
pub(super) fn bogus_customer_item() -> Value {
    let mut item = CUSTOMERS_PAGE["data"][0].clone();
    set(&mut item, "id", json!("../../etc"));
    set(&mut item, "organization", json!("Bogus"));
    set(&mut item, "tenants", json!([]));
    item
}

/// A scan profile as the profile list shows it (the §3 item).
pub(super) fn profile_item(profile: &SimProfile) -> Value {
    let mut item = PROFILES_PAGE["data"][0].clone();
    set(&mut item, "profileName", json!(profile.name));
    set(&mut item, "profileId", json!(profile.id));
    set(&mut item, "scanMode", json!(profile.scan_mode));
    set(&mut item, "modifiedTime", time(Some(profile.modified_time)));
    item
}

/// A discovery page (the §3 envelope) holding `items`.
pub(super) fn page_body(items: Vec<Value>, page_index: u32, page_size: u32, total: u64) -> Value {
    let mut body = CUSTOMERS_PAGE.clone();
    set(&mut body, "data", Value::Array(items));
    let metadata = &mut body["metadata"];
    set(metadata, "pageIndex", json!(page_index));
    set(metadata, "pageSize", json!(page_size));
    set(metadata, "totalCount", json!(total));
    body
}

/// The `traceId` of the error body of request `request_id` (W3C
/// traceparent style, as ASP.NET services send), derived from it so tests
/// can expect it.
pub fn trace_id(request_id: u64) -> String {
    format!(
        "00-{:016x}{:016x}-{:016x}-01",
        mix(request_id),
        mix(!request_id),
        mix(request_id ^ 0x7ace)
    )
}

/// The §4 error body.
pub(super) fn error_body(status: u16, message: &str, request_id: &str, trace_id: &str) -> Value {
    let mut body = ERROR.clone();
    set(&mut body, "statusCode", json!(status));
    set(&mut body, "message", json!(message));
    set(&mut body, "errors", json!([]));
    set(&mut body, "requestId", json!(request_id));
    let now = time(Some(time::OffsetDateTime::now_utc()));
    set(&mut body, "timestamp", now);
    set(&mut body, "traceId", json!(trace_id));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_json() {
        for fixture in [
            REPORT_FIXTURE,
            CHANGES_FIXTURE,
            DETAILS_FIXTURE,
            CUSTOMERS_PAGE_FIXTURE,
            PROFILES_PAGE_FIXTURE,
            ERROR_FIXTURE,
        ] {
            assert!(serde_json::from_str::<Value>(fixture).is_ok_and(|v| v.is_object()));
        }
    }

    #[tokio::test]
    async fn a_streamed_changes_body_is_one_json_object() {
        let head = json!({"profileId": "p", "newRegisteredContentCount": 2});
        let streamed = streamed_changes(&head, changes_lists_tail(2));
        let bytes = axum::body::to_bytes(streamed, usize::MAX).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body[NEW_LIST].as_array().unwrap().len(), 2);
        assert_eq!(
            body[MOVED_LIST][1]["objectName"],
            "Moved workbook 000001.xlsx"
        );
        assert_eq!(body[REMOVED_LIST][0], "Removed presentation 000000.pptx");
        assert_eq!(body["profileId"], "p");
    }
}
