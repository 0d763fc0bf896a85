//! The simulated backup endpoints: a customer's backup jobs (a history of
//! three days per module, numbers as strings, sizes with units) and its
//! protection coverage, with failing, running and stale modules, and
//! per-customer faults.
//!
//! AvePoint documents these endpoints by their field lists; the fixtures
//! (`fixtures/backup_jobs_page.json`, `fixtures/coverage_page.json`) are
//! written from those lists with the documented spellings (`"2323"`,
//! `"0 GB"`, `"17m39s"`), and every answer starts from them, field by field.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::api::{
    Answer, PageQuery, admit, api_error, background_delay, page, throttled, with_request_id,
};
use super::data::SimCustomer;
use super::state::SimState;
use super::{Fault, flood};
use crate::avepoint::model::api_time;
use crate::sync::lock;

/// Permission of the backup jobs endpoint.
pub const JOBS_READ: &str = "elements.jobs.read.all";
/// Permission of the protection coverage endpoint.
pub const COVERAGE_READ: &str = "elements.cbprotected.read.all";

const JOBS_FIXTURE: &str = include_str!("fixtures/backup_jobs_page.json");
const COVERAGE_FIXTURE: &str = include_str!("fixtures/coverage_page.json");

fn first_item(fixture: &'static str) -> Value {
    let page: Value = serde_json::from_str(fixture)
        .unwrap_or_else(|error| panic!("a backup fixture is not JSON: {error}"));
    page["data"][0].clone()
}

static JOB: LazyLock<Value> = LazyLock::new(|| first_item(JOBS_FIXTURE));
static COVERAGE: LazyLock<Value> = LazyLock::new(|| first_item(COVERAGE_FIXTURE));

/// The modules every simulated customer backs up (Microsoft 365 job type
/// 7): SharePoint Online, Exchange Online, OneDrive, Microsoft Teams.
pub const MODULES: [i64; 4] = [302, 303, 305, 308];
/// Job type of every simulated job: Microsoft 365.
pub const JOB_TYPE: i64 = 7;

/// How the latest job of module `module` (an index into [`MODULES`]) of
/// customer `customer` (its index) ended; the two older jobs of the
/// history finished, except for a failing module, whose previous job
/// failed too (so its last success is two days old: stale).
pub fn latest_status(customer: usize, module: usize) -> i64 {
    match (customer + module) % 7 {
        3 => 3, // failed
        5 => 4, // finished with exception
        6 => 1, // running
        _ => 2, // finished
    }
}

/// One job of the history: `days_ago` 0 is the latest, started two hours
/// before `now`.
fn job(customer: usize, module: usize, days_ago: u64, now: OffsetDateTime) -> Value {
    let status = match days_ago {
        0 => latest_status(customer, module),
        1 if latest_status(customer, module) == 3 => 3,
        _ => 2,
    };
    let total = 100 + 37 * customer as u64 + 11 * module as u64;
    let failed = if matches!(status, 3 | 4) {
        total / 20
    } else {
        0
    };
    let skipped = (total / 50) * u64::from(status == 4);
    let successful = total - failed - skipped;
    let start = now - Duration::from_secs(7200 + 86_400 * days_ago);
    let duration = Duration::from_secs(600 + 61 * (module as u64 + customer as u64 % 5));
    let end = (status != 1).then(|| start + duration);
    let mut item = JOB.clone();
    let set = |item: &mut Value, field: &str, value: Value| {
        debug_assert!(
            item.get(field).is_some(),
            "`{field}` is no documented field"
        );
        item[field] = value;
    };
    set(
        &mut item,
        "jobId",
        json!(format!("sim-job-{customer}-{module}-{days_ago}")),
    );
    set(
        &mut item,
        "name",
        json!(format!("Module {} backup", MODULES[module])),
    );
    set(&mut item, "jobType", json!(JOB_TYPE));
    set(&mut item, "jobModule", json!(MODULES[module]));
    set(&mut item, "status", json!(status));
    set(&mut item, "totalCount", json!(total.to_string()));
    set(&mut item, "failedCount", json!(failed.to_string()));
    set(&mut item, "successfulCount", json!(successful.to_string()));
    set(&mut item, "skippedCount", json!(skipped.to_string()));
    set(&mut item, "warningCount", json!("0"));
    set(
        &mut item,
        "backupSize",
        json!(format!("{}.{} GB", module + 1, customer % 10)),
    );
    set(&mut item, "startTime", json!(api_time::format(start)));
    set(
        &mut item,
        "endTime",
        end.map_or(Value::Null, |end| json!(api_time::format(end))),
    );
    let modified = end.unwrap_or(start);
    set(
        &mut item,
        "lastModifyTime",
        json!(api_time::format(modified)),
    );
    let minutes = duration.as_secs() / 60;
    set(
        &mut item,
        "jobDuration",
        json!(format!("{minutes}m{}s", duration.as_secs() % 60)),
    );
    item
}

/// Every job of customer `customer`: three days of history per module,
/// newest first; the customer at index [`NEVER_RAN_CUSTOMER`] also lists
/// [`NEVER_RAN_MODULE`], which never ran.
pub fn jobs(customer: usize, now: OffsetDateTime) -> Vec<Value> {
    let mut jobs: Vec<Value> = (0..3)
        .flat_map(|days_ago| (0..MODULES.len()).map(move |m| job(customer, m, days_ago, now)))
        .collect();
    if customer == NEVER_RAN_CUSTOMER {
        jobs.push(never_ran());
    }
    jobs
}

/// Index of the customer with a module that never ran.
pub const NEVER_RAN_CUSTOMER: usize = 1;
/// The module that never ran (Microsoft 365 Groups).
pub const NEVER_RAN_MODULE: i64 = 304;

/// A module that never ran, as AvePoint lists one: status None, `"N/A"`
/// for its id, name, size, times and duration, zero counts.
fn never_ran() -> Value {
    let mut item = JOB.clone();
    for field in [
        "jobId",
        "name",
        "backupSize",
        "startTime",
        "endTime",
        "jobDuration",
        "lastModifyTime",
    ] {
        item[field] = json!("N/A");
    }
    for field in [
        "totalCount",
        "failedCount",
        "successfulCount",
        "skippedCount",
        "warningCount",
    ] {
        item[field] = json!("0");
    }
    item["jobType"] = json!(JOB_TYPE);
    item["jobModule"] = json!(NEVER_RAN_MODULE);
    item["status"] = json!(0);
    item
}

/// The documented names of [`MODULES`], as the coverage overview sends them.
pub const MODULE_NAMES: [&str; 4] = [
    "SharePoint Online",
    "Exchange Online",
    "OneDrive",
    "Microsoft Teams",
];
/// The documented name of [`JOB_TYPE`]'s service in the coverage overview.
pub const SERVICE_NAME: &str = "Cloud Backup for Microsoft 365";

/// Scanned and protected objects of a module: every fifth module (by
/// customer and module) has three objects unprotected.
pub fn coverage_counts(customer: usize, module: usize) -> (u64, u64) {
    let scanned = 200 + 13 * customer as u64 + 7 * module as u64;
    let unprotected = if (customer + module) % 5 == 2 { 3 } else { 0 };
    (scanned, scanned - unprotected)
}

/// The coverage rows of customer `customer`, one per module.
pub fn coverage(customer: &SimCustomer, index: usize) -> Vec<Value> {
    (0..MODULES.len())
        .map(|module| {
            let (scanned, protected) = coverage_counts(index, module);
            let mut item = COVERAGE.clone();
            item["customerId"] = json!(customer.id);
            item["customer"] = json!(format!("admin@{}.example", customer.tenant_domain));
            item["serviceType"] = json!(SERVICE_NAME);
            item["serviceModule"] = json!(MODULE_NAMES[module]);
            item["totalScannedObjects"] = json!(scanned.to_string());
            item["totalProtectedObjects"] = json!(protected.to_string());
            item["dataSizeStoredInAvePoint"] = json!(format!("{}.5 GB", module + index % 3));
            // No simulated customer brings its own storage: "N/A", as in
            // AvePoint's documented sample.
            item["dataSizeStoredInBYOS"] = json!("N/A");
            item
        })
        .collect()
}

/// The customer with this id and its index.
fn customer<'a>(state: &'a SimState, customer_id: &str) -> Option<(usize, &'a SimCustomer)> {
    state
        .customers
        .iter()
        .enumerate()
        .find(|(_, c)| c.id == customer_id)
}

fn not_found(state: &SimState, request_id: u64) -> axum::response::Response {
    api_error(
        state,
        StatusCode::NOT_FOUND,
        request_id,
        "customer not found",
    )
}

/// Bend `items` as `fault` says: a count that is no number, a size that
/// is no size, a required field missing, or the first item's string fields
/// `"N/A"` and `null` ([`Fault::NotApplicable`]). An HTTP error is answered
/// before, by [`injected_status`].
fn spoil(fault: Option<Fault>, items: &mut [Value], spoiled: (&str, &str)) {
    match fault {
        Some(Fault::NotApplicable) => {
            if let Some(first) = items.first_mut().and_then(Value::as_object_mut) {
                for value in first.values_mut() {
                    if value.is_string() {
                        *value = json!("N/A");
                    }
                }
                for nulled in ["customer", "name", "serviceModule"] {
                    if first.contains_key(nulled) {
                        first.insert(nulled.to_owned(), Value::Null);
                    }
                }
            }
        }
        Some(Fault::WrongTypes) => {
            if let Some(first) = items.first_mut() {
                first[spoiled.0] = json!(spoiled.1);
            }
        }
        Some(Fault::MissingField) => {
            if let Some(first) = items.first_mut().and_then(Value::as_object_mut) {
                first.remove("serviceModule");
                first.remove("status");
            }
        }
        _ => {}
    }
}

/// The answer of a [`Fault::Status`], or the literal body of a
/// [`Fault::Body`].
fn injected_status(
    state: &SimState,
    fault: &Option<Fault>,
    request_id: u64,
) -> Option<axum::response::Response> {
    if let Some(Fault::Body(body)) = fault {
        let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
        return Some((json, body.clone()).into_response());
    }
    if let Some(Fault::Throttle(retry_after)) = fault {
        let retry_after = retry_after
            .as_deref()
            .and_then(|value| axum::http::HeaderValue::from_str(value).ok());
        return Some(throttled(state, request_id, retry_after));
    }
    let Some(Fault::Status(code)) = fault else {
        return None;
    };
    let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Some(api_error(state, status, request_id, "injected fault"))
}

/// `POST .../customers/{id}/avpt-products/jobs/batch`.
pub(super) async fn jobs_batch(
    State(state): State<Arc<SimState>>,
    Path(customer_id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Answer {
    background_delay(&state).await;
    let request_id = admit(&state, &headers, JOBS_READ).await?;
    let (index, _) = customer(&state, &customer_id).ok_or_else(|| not_found(&state, request_id))?;
    let fault = lock(&state.backup_faults).get(&customer_id).cloned();
    if let Some(error) = injected_status(&state, &fault, request_id) {
        return Err(error);
    }
    let job_type = body
        .as_ref()
        .and_then(|Json(body)| body.get("jobType").cloned());
    if matches!(fault, Some(Fault::OneJobTypeOnly)) && job_type.is_none() {
        return Err(api_error(
            &state,
            StatusCode::BAD_REQUEST,
            request_id,
            "jobType is required",
        ));
    }
    if matches!(fault, Some(Fault::FreshModules)) {
        let template = job(0, 0, 0, OffsetDateTime::now_utc());
        let body = flood::fresh_modules(&state, template, query.position());
        return Ok(with_request_id(
            &state,
            Json(body).into_response(),
            request_id,
        ));
    }
    let mut items = jobs(index, OffsetDateTime::now_utc());
    if let Some(job_type) = job_type {
        items.retain(|item| item["jobType"] == job_type);
    }
    spoil(fault, &mut items, ("totalCount", "12x"));
    Ok(page(&state, items, &query, request_id))
}

/// `GET .../customers/{id}/cloud-backup-m365/overview`.
pub(super) async fn coverage_overview(
    State(state): State<Arc<SimState>>,
    Path(customer_id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Answer {
    background_delay(&state).await;
    let request_id = admit(&state, &headers, COVERAGE_READ).await?;
    let (index, found) =
        customer(&state, &customer_id).ok_or_else(|| not_found(&state, request_id))?;
    let fault = lock(&state.coverage_faults).get(&customer_id).cloned();
    if let Some(error) = injected_status(&state, &fault, request_id) {
        return Err(error);
    }
    let mut items = coverage(found, index);
    spoil(
        fault.clone(),
        &mut items,
        ("dataSizeStoredInAvePoint", "1,5 GB"),
    );
    if matches!(fault, Some(Fault::BareList)) {
        // As before December 2025: the whole list, no paging, no wrapper.
        return Ok(Json(Value::Array(items)).into_response());
    }
    Ok(page(&state, items, &query, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixtures_parse_and_the_history_has_the_documented_spellings() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        let history = jobs(3, now);
        assert_eq!(history.len(), 12);
        // Customer 3, module 0: (3 + 0) % 7 == 3, failed today and yesterday.
        assert_eq!(history[0]["status"], json!(3));
        assert_eq!(history[4]["status"], json!(3));
        assert_eq!(history[8]["status"], json!(2));
        assert_eq!(history[0]["totalCount"], json!("211"));
        assert_eq!(history[0]["backupSize"], json!("1.3 GB"));
        assert!(history[0]["jobDuration"].as_str().unwrap().ends_with('s'));
        // Module 3 of customer 3: (3 + 3) % 7 == 6, running: no end yet.
        assert_eq!(history[3]["status"], json!(1));
        assert_eq!(history[3]["endTime"], Value::Null);
        assert_eq!(coverage_counts(0, 2), (214, 211));
    }
}
