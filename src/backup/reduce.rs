//! Reducing what the backup endpoints list to one row per (customer,
//! type, module): the latest job, the last success remembered across
//! reads, and coverage summed per module.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::avepoint::ScanStatus;
use crate::avepoint::backup::{BackupJob, CoverageItem};
use crate::avepoint::lenient::Bytes;

/// The latest job of one (job type, job module) of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestJob {
    /// `job_type` label.
    pub job_type: String,
    /// `job_module` label.
    pub job_module: String,
    /// `job_kind` label: backup, scan, archiver, retention or settings.
    pub job_kind: &'static str,
    /// Raw status code (the `lastScanStatus` codes), when readable.
    pub status: Option<i64>,
    /// Start, as a Unix timestamp.
    pub start: Option<f64>,
    /// End, as a Unix timestamp; absent while the job runs.
    pub end: Option<f64>,
    /// `jobDuration` in seconds.
    pub duration: Option<f64>,
    /// Object counts by result: total, failed, successful, skipped,
    /// warning (each absent when AvePoint sent none or an unreadable one).
    pub objects: [Option<u64>; 5],
    /// `backupSize` in bytes.
    pub size_bytes: Option<f64>,
    /// End of the latest job of this type and module that finished, with or
    /// without exception, this process has seen (in any list it read).
    pub last_success: Option<f64>,
}

/// The `result` label values of [`LatestJob::objects`], in order.
pub const OBJECT_RESULTS: [&str; 5] = ["total", "failed", "successful", "skipped", "warning"];

/// One coverage row of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// `service_type` label.
    pub service_type: String,
    /// `service_module` label.
    pub service_module: String,
    /// `totalScannedObjects` (summed over the rows that had one).
    pub scanned_objects: Option<u64>,
    /// `totalProtectedObjects` (summed over the rows that had one).
    pub protected_objects: Option<u64>,
    /// Bytes stored in AvePoint's storage.
    pub stored_avepoint: Option<f64>,
    /// Bytes stored in the customer's own storage (BYOS).
    pub stored_byos: Option<f64>,
}

/// Last successful job end per customer and (job type, job module), kept
/// across refreshes: a list holding only the latest job per module forgets
/// the last success as soon as a job fails. Pruned on every read to what
/// the customer's list still holds, and to the customers still read
/// ([`Successes::retain_customers`]): a list of fresh modules, or
/// customers coming and going, must not grow it for the life of the process.
#[derive(Debug, Default)]
pub struct Successes(HashMap<String, HashMap<(String, String), f64>>);

impl Successes {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget every customer not in `keep`.
    pub fn retain_customers<Q: Hash + Eq + ?Sized>(&mut self, keep: &std::collections::HashSet<&Q>)
    where
        String: std::borrow::Borrow<Q>,
    {
        self.0
            .retain(|customer, _| keep.contains(std::borrow::Borrow::borrow(customer)));
    }

    /// How many (customer, type, module) are remembered.
    pub fn len(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows one customer has at most in one collector: past it, the rest are
/// folded into one row labelled `other`. A customer backs up a few dozen
/// (type, module) pairs; a list giving every job a new `jobModule` would
/// otherwise make a series family per job (2.5 million series, a 401 MB
/// `/metrics`, from one customer).
pub const MAX_ROWS_PER_CUSTOMER: usize = 64;

/// The label of a folded row.
const OTHER: &str = "other";

fn unix(at: time::OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

/// Whether a job status means the job finished (with or without exception).
fn finished(status: Option<i64>) -> bool {
    matches!(
        status.and_then(ScanStatus::from_code),
        Some(ScanStatus::Finished | ScanStatus::FinishedWithException)
    )
}

/// The latest job per (type, module) by `lastModifyTime` (then end, then
/// start), whether the list is a history or holds one job per module; and
/// the last success of each, remembered in `successes`.
pub fn latest_jobs(
    customer: &str,
    jobs: &[BackupJob],
    successes: &mut Successes,
) -> Vec<LatestJob> {
    let order = |job: &BackupJob| {
        (
            job.last_modify_time.value(),
            job.end_time.value(),
            job.start_time.value(),
        )
    };
    let mut latest: BTreeMap<(String, String), &BackupJob> = BTreeMap::new();
    let remembered = successes.0.entry(customer.to_owned()).or_default();
    for job in jobs {
        let key = (job.job_type_label(), job.job_module_label());
        if finished(job.status.value())
            && let Some(end) = job.end_time.value()
        {
            let success = remembered.entry(key.clone()).or_insert(f64::MIN);
            *success = success.max(unix(end));
        }
        let slot = latest.entry(key).or_insert(job);
        if order(job) > order(slot) {
            *slot = job;
        }
    }
    remembered.retain(|key, _| latest.contains_key(key));
    latest
        .into_iter()
        .map(|((job_type, job_module), job)| {
            let last_success = remembered
                .get(&(job_type.clone(), job_module.clone()))
                .copied();
            LatestJob {
                job_kind: job.kind().label(),
                status: job.status.value(),
                start: job.start_time.value().map(unix),
                end: job.end_time.value().map(unix),
                duration: job.job_duration.value().map(|d| d.0.as_secs_f64()),
                objects: job.objects(),
                size_bytes: job.backup_size.value().map(|size| size.0),
                last_success,
                job_type,
                job_module,
            }
        })
        .collect()
}

/// Coverage rows, one per (service type, module); a module listed twice
/// adds up.
pub fn coverage_rows(items: &[CoverageItem]) -> Vec<Coverage> {
    let mut rows: BTreeMap<(String, String), Coverage> = BTreeMap::new();
    for item in items {
        let service_type = item.service_type_label();
        let service_module = item.service_module_label();
        let row = rows
            .entry((service_type.clone(), service_module.clone()))
            .or_insert_with(|| Coverage {
                service_type,
                service_module,
                scanned_objects: None,
                protected_objects: None,
                stored_avepoint: None,
                stored_byos: None,
            });
        row.scanned_objects = add(
            row.scanned_objects,
            item.total_scanned_objects.value(),
            u64::saturating_add,
        );
        row.protected_objects = add(
            row.protected_objects,
            item.total_protected_objects.value(),
            u64::saturating_add,
        );
        let bytes = |size: Bytes| size.0;
        let sum = |a: f64, b: f64| a + b;
        row.stored_avepoint = add(
            row.stored_avepoint,
            item.stored_in_avepoint.value().map(bytes),
            sum,
        );
        row.stored_byos = add(row.stored_byos, item.stored_in_byos.value().map(bytes), sum);
    }
    rows.into_values().collect()
}

/// At most [`MAX_ROWS_PER_CUSTOMER`] job rows, the rest folded into one
/// row labelled `other` (type and module); and whether any was folded.
/// Documented modules are kept first (an undocumented code is what a
/// runaway list is made of), then in label order. The `other` row adds up
/// the counts and sizes of the rows it holds, has the latest last success
/// among them, and the status and times of the latest of them.
pub fn fold_jobs(mut rows: Vec<LatestJob>) -> (Vec<LatestJob>, bool) {
    if rows.len() <= MAX_ROWS_PER_CUSTOMER {
        return (rows, false);
    }
    let undocumented =
        |row: &LatestJob| row.job_type.starts_with("other") || row.job_module.starts_with("other");
    rows.sort_by_key(undocumented);
    let rest = rows.split_off(MAX_ROWS_PER_CUSTOMER - 1);
    let folded = rest.into_iter().reduce(|a, b| {
        let when = |row: &LatestJob| row.end.or(row.start).unwrap_or(f64::MIN);
        let (older, newer) = if when(&b) > when(&a) { (a, b) } else { (b, a) };
        let mut objects = newer.objects;
        for (sum, count) in objects.iter_mut().zip(older.objects) {
            *sum = add(*sum, count, u64::saturating_add);
        }
        LatestJob {
            objects,
            size_bytes: add(newer.size_bytes, older.size_bytes, |a, b| a + b),
            last_success: add(newer.last_success, older.last_success, f64::max),
            ..newer
        }
    });
    rows.extend(folded.map(|row| LatestJob {
        job_type: OTHER.to_owned(),
        job_module: OTHER.to_owned(),
        ..row
    }));
    (rows, true)
}

/// At most [`MAX_ROWS_PER_CUSTOMER`] coverage rows, the rest added up into
/// one row labelled `other` (type and module); and whether any was folded.
pub fn fold_coverage(mut rows: Vec<Coverage>) -> (Vec<Coverage>, bool) {
    if rows.len() <= MAX_ROWS_PER_CUSTOMER {
        return (rows, false);
    }
    // A module AvePoint itself calls "Other" goes into the folded row, or
    // the exposition would hold the same series twice.
    let is_other = |row: &Coverage| row.service_type == OTHER && row.service_module == OTHER;
    rows.sort_by_key(is_other);
    let rest = rows.split_off(MAX_ROWS_PER_CUSTOMER - 1);
    let folded = rest.into_iter().reduce(|a, b| Coverage {
        scanned_objects: add(a.scanned_objects, b.scanned_objects, u64::saturating_add),
        protected_objects: add(
            a.protected_objects,
            b.protected_objects,
            u64::saturating_add,
        ),
        stored_avepoint: add(a.stored_avepoint, b.stored_avepoint, |a, b| a + b),
        stored_byos: add(a.stored_byos, b.stored_byos, |a, b| a + b),
        ..a
    });
    rows.extend(folded.map(|row| Coverage {
        service_type: OTHER.to_owned(),
        service_module: OTHER.to_owned(),
        ..row
    }));
    (rows, true)
}

/// What makes two coverage rows the same row (for paging): every field,
/// so that two rows of one module (the documented sample has two rows for
/// one customer) are both kept and summed, while a page sent twice is not.
pub(super) fn coverage_key(item: &CoverageItem) -> String {
    format!("{item:?}")
}

/// What makes two job list items the same item (for paging).
pub(super) fn job_key(job: &BackupJob) -> String {
    format!(
        "{:?}/{:?}/{:?}/{:?}",
        job.job_id, job.job_type, job.job_module, job.last_modify_time
    )
}

/// The sum of the values that are known; unknown only when none is.
fn add<T>(a: Option<T>, b: Option<T>, plus: impl Fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(plus(a, b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(module: i64, status: i64, modified: &str, end: Option<&str>) -> BackupJob {
        let end = end.map_or("null".to_owned(), |end| format!("\"{end}\""));
        serde_json::from_str(&format!(
            r#"{{"jobId": "{module}-{modified}", "jobType": 7, "jobModule": {module},
                "status": {status}, "totalCount": "10", "failedCount": "1",
                "successfulCount": "8", "skippedCount": "1", "warningCount": "0",
                "backupSize": "2 GB", "startTime": "2026-11-01T00:00:00Z",
                "endTime": {end}, "lastModifyTime": "{modified}", "jobDuration": "17m39s"}}"#
        ))
        .expect("a valid job")
    }

    fn at(text: &str) -> f64 {
        unix(crate::avepoint::model::api_time::parse(text).unwrap())
    }

    #[test]
    fn the_latest_job_per_module_wins_and_the_last_success_is_remembered() {
        let history = [
            job(303, 2, "2026-11-01T01:00:00Z", Some("2026-11-01T01:00:00Z")),
            job(303, 3, "2026-11-02T01:00:00Z", Some("2026-11-02T01:00:00Z")),
            job(305, 4, "2026-11-02T02:00:00Z", Some("2026-11-02T02:00:00Z")),
            job(305, 1, "2026-11-03T02:00:00Z", None),
        ];
        let mut successes = Successes::new();
        let jobs = latest_jobs("c", &history, &mut successes);
        assert_eq!(jobs.len(), 2);
        let exchange = &jobs[0];
        assert_eq!(
            (exchange.job_type.as_str(), exchange.job_module.as_str()),
            ("microsoft_365", "exchange_online")
        );
        assert_eq!(exchange.status, Some(3));
        assert_eq!(exchange.last_success, Some(at("2026-11-01T01:00:00Z")));
        assert_eq!(exchange.objects, [10, 1, 8, 1, 0].map(Some));
        assert_eq!(exchange.size_bytes, Some(2.0 * 1024f64.powi(3)));
        assert_eq!(exchange.duration, Some(17.0 * 60.0 + 39.0));
        let onedrive = &jobs[1];
        assert_eq!(onedrive.job_module, "onedrive");
        assert_eq!((onedrive.status, onedrive.end), (Some(1), None));
        assert_eq!(onedrive.last_success, Some(at("2026-11-02T02:00:00Z")));

        // A list of the latest job per module only: the failure hides the
        // success, which is remembered from the earlier read.
        let latest_only = [job(
            303,
            3,
            "2026-11-04T01:00:00Z",
            Some("2026-11-04T01:00:00Z"),
        )];
        let jobs = latest_jobs("c", &latest_only, &mut successes);
        assert_eq!(jobs[0].last_success, Some(at("2026-11-01T01:00:00Z")));
        // ... per customer.
        let jobs = latest_jobs("other", &latest_only, &mut successes);
        assert_eq!(jobs[0].last_success, None);
    }

    #[test]
    fn the_last_success_map_keeps_only_what_the_lists_still_hold() {
        let mut successes = Successes::new();
        let first = [
            job(303, 2, "2026-11-01T01:00:00Z", Some("2026-11-01T01:00:00Z")),
            job(305, 2, "2026-11-01T02:00:00Z", Some("2026-11-01T02:00:00Z")),
        ];
        latest_jobs("a", &first, &mut successes);
        latest_jobs("b", &first, &mut successes);
        assert_eq!(successes.len(), 4);
        // Module 305 left a's list: its last success goes with it.
        let jobs = latest_jobs("a", &first[..1], &mut successes);
        assert_eq!(jobs.len(), 1);
        assert_eq!(successes.len(), 3);
        // Customer b is no longer read at all.
        successes.retain_customers(&["a"].into_iter().collect());
        assert_eq!(successes.len(), 1);
    }

    #[test]
    fn rows_past_the_bound_fold_into_one_other_row_that_adds_up() {
        let history: Vec<BackupJob> = (0..MAX_ROWS_PER_CUSTOMER as i64 + 10)
            .map(|n| {
                let end = format!("2026-11-01T01:{:02}:00Z", n % 60);
                job(1_000_000 + n, 2, &end, Some(&end))
            })
            .chain([job(
                303,
                3,
                "2026-11-01T01:00:00Z",
                Some("2026-11-01T01:00:00Z"),
            )])
            .collect();
        let rows = latest_jobs("c", &history, &mut Successes::new());
        assert_eq!(rows.len(), MAX_ROWS_PER_CUSTOMER + 11);
        let (rows, folded) = fold_jobs(rows);
        assert!(folded);
        assert_eq!(rows.len(), MAX_ROWS_PER_CUSTOMER);
        // The documented module is kept whatever its label order.
        assert_eq!(rows[0].job_module, "exchange_online");
        let other = rows.last().unwrap();
        assert_eq!(
            (other.job_type.as_str(), other.job_module.as_str()),
            ("other", "other")
        );
        // 12 undocumented rows folded, each with 10 objects in total.
        assert_eq!(other.objects[0], Some(120));
        assert_eq!(other.size_bytes, Some(12.0 * 2.0 * 1024f64.powi(3)));
        let (few, folded) = fold_jobs(rows[..3].to_vec());
        assert!(!folded);
        assert_eq!(few.len(), 3);
    }

    #[test]
    fn coverage_adds_up_per_module() {
        let items: Vec<CoverageItem> = serde_json::from_str(
            r#"[
              {"customerId": "c", "customer": "admin@contoso.example", "serviceType": 7,
               "serviceModule": 303, "totalScannedObjects": "120", "totalProtectedObjects": "118",
               "dataSizeStoredInAvePoint": "1.5 GB", "dataSizeStoredInBYOS": "0 GB"},
              {"customerId": "c", "serviceType": "7", "serviceModule": "303",
               "totalScannedObjects": 5, "totalProtectedObjects": 5,
               "dataSizeStoredInAvePoint": "512 MB", "dataSizeStoredInBYOS": null},
              {"customerId": "c", "serviceType": 7, "serviceModule": "Viva Engage",
               "totalScannedObjects": "1", "totalProtectedObjects": "0"}
            ]"#,
        )
        .unwrap();
        let rows = coverage_rows(&items);
        assert_eq!(
            rows,
            [
                Coverage {
                    service_type: "microsoft_365".into(),
                    service_module: "exchange_online".into(),
                    scanned_objects: Some(125),
                    protected_objects: Some(123),
                    stored_avepoint: Some(2.0 * 1024f64.powi(3)),
                    stored_byos: Some(0.0),
                },
                Coverage {
                    service_type: "microsoft_365".into(),
                    service_module: "viva_engage".into(),
                    scanned_objects: Some(1),
                    protected_objects: Some(0),
                    stored_avepoint: None,
                    stored_byos: None,
                },
            ]
        );
    }
}
