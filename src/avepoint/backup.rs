//! Wire types of the backup endpoints: backup jobs
//! (`POST .../customers/{c}/avpt-products/jobs/batch`) and protection
//! coverage (`GET .../customers/{c}/cloud-backup-m365/overview`).
//!
//! AvePoint sends their counts as strings (`"2323"`), sizes as strings with
//! a unit (`"0 GB"`), and `"N/A"` where a value does not apply. Every field
//! is read on its own ([`Field`]): one that cannot be read is unknown and
//! counted (`avepoint_api_unreadable_fields_total`), never a failed page.
//! Personal data (the coverage item's `customer`, an e-mail address) is
//! kept only as a fingerprint that tells rows apart.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::endpoint::{EndpointFacts, Method, Paged, paged};
pub use super::job_codes::{JobKind, job_module_label, job_type_label};
use super::job_codes::{job_module_of_name, job_type_of_name, snake_case};
use super::lenient::{Bytes, Field, JobDuration, UnreadableFields, unreadable};
use crate::config::{BACKUP_COVERAGE_SCOPE, BACKUP_JOBS_SCOPE};

/// Longest label value made from a name AvePoint sends (a module or service
/// name): past it the name is cut, so a runaway value cannot blow up the
/// series it labels.
pub const MAX_NAME_LABEL: usize = 64;

/// The body of a backup job list request: every job type and module
/// (`{}`), or those of one `jobType`.
pub fn job_type_filter(job_type: Option<i64>) -> serde_json::Value {
    match job_type {
        None => serde_json::json!({}),
        Some(job_type) => serde_json::json!({ "jobType": job_type }),
    }
}

/// The documented backup job types, each asked for on its own when
/// AvePoint refuses the request for every type at once (`400` to `{}`).
pub const BACKUP_JOB_TYPES: [i64; 5] = [7, 11, 12, 15, 16];

/// One item of the backup job list. Every field is read on its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupJob {
    /// AvePoint's job id (`"N/A"` for a module that never ran).
    #[serde(default)]
    pub job_id: Field<String>,
    /// Raw `jobType` code; see [`job_type_label`].
    #[serde(default)]
    pub job_type: Field<i64>,
    /// Raw `jobModule` code; see [`job_module_label`].
    #[serde(default)]
    pub job_module: Field<i64>,
    /// Raw `status` code: the same codes as `lastScanStatus`.
    #[serde(default)]
    pub status: Field<i64>,
    /// `totalCount`: objects the job processed.
    #[serde(default)]
    pub total_count: Field<u64>,
    /// `failedCount`.
    #[serde(default)]
    pub failed_count: Field<u64>,
    /// `successfulCount`.
    #[serde(default)]
    pub successful_count: Field<u64>,
    /// `skippedCount`.
    #[serde(default)]
    pub skipped_count: Field<u64>,
    /// `warningCount`.
    #[serde(default)]
    pub warning_count: Field<u64>,
    /// `backupSize` in bytes.
    #[serde(default)]
    pub backup_size: Field<Bytes>,
    /// When the job started.
    #[serde(default)]
    pub start_time: Field<OffsetDateTime>,
    /// When the job ended; absent while it runs.
    #[serde(default)]
    pub end_time: Field<OffsetDateTime>,
    /// When AvePoint last changed the item: what "latest" means.
    #[serde(default)]
    pub last_modify_time: Field<OffsetDateTime>,
    /// `jobDuration`, e.g. `"17m39s"`.
    #[serde(default)]
    pub job_duration: Field<JobDuration>,
}

impl BackupJob {
    /// The object counts by result, in the order of
    /// `backup::OBJECT_RESULTS`: total, failed, successful, skipped, warning.
    pub fn objects(&self) -> [Option<u64>; 5] {
        [
            self.total_count,
            self.failed_count,
            self.successful_count,
            self.skipped_count,
            self.warning_count,
        ]
        .map(Field::value)
    }

    /// The `job_type` label (`unknown` when the code could not be read).
    pub fn job_type_label(&self) -> String {
        self.job_type
            .value()
            .map_or_else(|| "unknown".to_owned(), job_type_label)
    }

    /// The `job_module` label (`unknown` when the code could not be read).
    pub fn job_module_label(&self) -> String {
        self.job_module
            .value()
            .map_or_else(|| "unknown".to_owned(), job_module_label)
    }

    /// What the job does (a job whose codes cannot be read counts as a
    /// backup: its failure is not to be missed).
    pub fn kind(&self) -> JobKind {
        JobKind::of(
            self.job_type.value().unwrap_or(-1),
            self.job_module.value().unwrap_or(-1),
        )
    }
}

impl UnreadableFields for BackupJob {
    fn unreadable_fields(&self) -> Vec<&'static str> {
        unreadable([
            ("jobId", self.job_id.is_unreadable()),
            ("jobType", self.job_type.is_unreadable()),
            ("jobModule", self.job_module.is_unreadable()),
            ("status", self.status.is_unreadable()),
            ("totalCount", self.total_count.is_unreadable()),
            ("failedCount", self.failed_count.is_unreadable()),
            ("successfulCount", self.successful_count.is_unreadable()),
            ("skippedCount", self.skipped_count.is_unreadable()),
            ("warningCount", self.warning_count.is_unreadable()),
            ("backupSize", self.backup_size.is_unreadable()),
            ("startTime", self.start_time.is_unreadable()),
            ("endTime", self.end_time.is_unreadable()),
            ("lastModifyTime", self.last_modify_time.is_unreadable()),
            ("jobDuration", self.job_duration.is_unreadable()),
        ])
    }
}

/// One item of the protection coverage overview. Every field is read on
/// its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageItem {
    /// A fingerprint of `customer` (an e-mail address: personal data, never
    /// kept): two rows of one module for different addresses are two rows.
    #[serde(default, rename = "customer", deserialize_with = "fingerprint")]
    pub customer_fingerprint: u64,
    /// `serviceType`: documented as a name, a code accepted too.
    #[serde(default)]
    pub service_type: Field<String>,
    /// `serviceModule`: documented as a name, a code accepted too.
    #[serde(default)]
    pub service_module: Field<String>,
    /// Objects found in the tenant.
    #[serde(default)]
    pub total_scanned_objects: Field<u64>,
    /// Objects under protection.
    #[serde(default)]
    pub total_protected_objects: Field<u64>,
    /// `dataSizeStoredInAvePoint` in bytes.
    #[serde(default, rename = "dataSizeStoredInAvePoint")]
    pub stored_in_avepoint: Field<Bytes>,
    /// `dataSizeStoredInBYOS` (bring your own storage) in bytes; `"N/A"`
    /// when the customer has none.
    #[serde(default, rename = "dataSizeStoredInBYOS")]
    pub stored_in_byos: Field<Bytes>,
}

impl CoverageItem {
    /// The `service_type` label: the job type label of the documented
    /// service name or code, else the name in snake_case (bounded).
    pub fn service_type_label(&self) -> String {
        name_label(&self.service_type, job_type_of_name, job_type_label)
    }

    /// The `service_module` label: the job module label of the documented
    /// module name or code (so coverage and job series join), else the name
    /// in snake_case (bounded).
    pub fn service_module_label(&self) -> String {
        name_label(&self.service_module, job_module_of_name, job_module_label)
    }
}

impl UnreadableFields for CoverageItem {
    fn unreadable_fields(&self) -> Vec<&'static str> {
        unreadable([
            ("serviceType", self.service_type.is_unreadable()),
            ("serviceModule", self.service_module.is_unreadable()),
            (
                "totalScannedObjects",
                self.total_scanned_objects.is_unreadable(),
            ),
            (
                "totalProtectedObjects",
                self.total_protected_objects.is_unreadable(),
            ),
            (
                "dataSizeStoredInAvePoint",
                self.stored_in_avepoint.is_unreadable(),
            ),
            ("dataSizeStoredInBYOS", self.stored_in_byos.is_unreadable()),
        ])
    }
}

/// The label of a name-or-code field: a code's label, a documented name's
/// label, else the name itself in snake_case, cut to [`MAX_NAME_LABEL`].
fn name_label(
    field: &Field<String>,
    code_of_name: fn(&str) -> Option<i64>,
    label_of_code: fn(i64) -> String,
) -> String {
    let Field::Value(text) = field else {
        return "unknown".to_owned();
    };
    if let Some(code) = text.parse::<i64>().ok().or_else(|| code_of_name(text)) {
        return label_of_code(code);
    }
    let mut label = snake_case(text);
    if label.is_empty() {
        return "unknown".to_owned();
    }
    if let Some((cut, _)) = label.char_indices().nth(MAX_NAME_LABEL) {
        label.truncate(cut);
    }
    label
}

/// A fingerprint of a string field, so rows can be told apart without
/// keeping the value.
pub(super) fn fingerprint<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = Field::<String>::deserialize(deserializer)?
        .value()
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    Ok(hasher.finish())
}

/// `POST .../customers/{c}/avpt-products/jobs/batch`: a customer's backup
/// jobs (body `{}`, or `{"jobType": n}` through
/// [`ApiClient::filtered_page`](super::ApiClient::filtered_page)).
pub const BACKUP_JOBS: Paged<BackupJob, 1> = paged(&EndpointFacts {
    label: "backup_jobs_batch",
    method: Method::Post,
    path_template: Some(
        "/partner/external/v3/general/customers/{customer}/avpt-products/jobs/batch",
    ),
    permission: Some(BACKUP_JOBS_SCOPE),
    description: "a page of backup jobs",
});

/// `GET .../customers/{c}/cloud-backup-m365/overview`: a customer's
/// protection coverage.
pub const BACKUP_COVERAGE: Paged<CoverageItem, 1> = paged(&EndpointFacts {
    label: "backup_coverage",
    method: Method::Get,
    path_template: Some(
        "/partner/external/v3/general/customers/{customer}/cloud-backup-m365/overview",
    ),
    permission: Some(BACKUP_COVERAGE_SCOPE),
    description: "a page of protection coverage",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_count_makes_that_field_unknown_not_the_job() {
        let json = r#"{"jobType": 7, "jobModule": 303, "status": 2,
            "totalCount": "12x", "failedCount": "0", "successfulCount": "12",
            "skippedCount": "0", "warningCount": "0", "backupSize": "-1 GB"}"#;
        let job = serde_json::from_str::<BackupJob>(json).expect("the job decodes");
        assert_eq!(job.objects(), [None, Some(0), Some(12), Some(0), Some(0)]);
        assert_eq!(job.backup_size, Field::Unreadable);
        assert_eq!(job.unreadable_fields(), ["totalCount", "backupSize"]);
    }

    #[test]
    fn coverage_names_become_the_job_labels_and_odd_names_are_bounded() {
        let item: CoverageItem = serde_json::from_str(
            r#"{"serviceType": "Cloud Backup for Microsoft 365",
                "serviceModule": "Microsoft 365 Group"}"#,
        )
        .expect("decodes");
        assert_eq!(item.service_type_label(), "microsoft_365");
        assert_eq!(item.service_module_label(), "microsoft_365_groups");
        let long = "Module ".repeat(500);
        let item: CoverageItem = serde_json::from_str(&format!(
            r#"{{"serviceModule": "{long}", "serviceType": 7}}"#
        ))
        .expect("decodes");
        assert_eq!(item.service_module_label().len(), MAX_NAME_LABEL);
        assert_eq!(item.service_type_label(), "microsoft_365");
        let item: CoverageItem = serde_json::from_str("{}").expect("decodes");
        assert_eq!(item.service_module_label(), "unknown");
    }
}
