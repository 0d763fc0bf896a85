//! Wire types of the backup endpoints: backup jobs
//! (`POST .../customers/{c}/avpt-products/jobs/batch`) and protection
//! coverage (`GET .../customers/{c}/cloud-backup-m365/overview`).
//!
//! AvePoint sends their counts as strings (`"2323"`) and sizes as strings
//! with a unit (`"0 GB"`); both are decoded here into numbers, and a value
//! that is neither a number nor a documented spelling fails the page (the
//! customer is `up 0` for that collector, as any bad body makes it).
//! Personal data (the coverage item's `customer`, an e-mail address) is
//! never decoded.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::client::{ApiClient, set_page};
use super::error::ApiError;
use super::instrumentation::ApiEndpoint;
use super::model::{Page, api_time};

impl ApiClient {
    /// One page of `POST .../customers/{id}/avpt-products/jobs/batch` (all
    /// job types and modules), retried like the discovery pages.
    pub async fn backup_jobs_page(
        &self,
        customer_id: &str,
        page_index: u32,
        page_size: u32,
    ) -> Result<Page<BackupJob>, ApiError> {
        let mut url = self.url(&format!(
            "/partner/external/v3/general/customers/{customer_id}/avpt-products/jobs/batch"
        ));
        set_page(&mut url, page_index, page_size);
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        self.call_with_retry(
            ApiEndpoint::BackupJobsBatch,
            &url,
            Some(&serde_json::json!({})),
            "a page of backup jobs",
            deadline,
        )
        .await
    }

    /// One page of `GET .../customers/{id}/cloud-backup-m365/overview`.
    pub async fn coverage_page(
        &self,
        customer_id: &str,
        page_index: u32,
        page_size: u32,
    ) -> Result<Page<CoverageItem>, ApiError> {
        let mut url = self.url(&format!(
            "/partner/external/v3/general/customers/{customer_id}/cloud-backup-m365/overview"
        ));
        set_page(&mut url, page_index, page_size);
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        self.call_with_retry(
            ApiEndpoint::BackupCoverage,
            &url,
            None,
            "a page of protection coverage",
            deadline,
        )
        .await
    }
}

/// One item of the backup job list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupJob {
    /// AvePoint's job id.
    #[serde(default)]
    pub job_id: String,
    /// Raw `jobType` code; see [`job_type_label`].
    #[serde(deserialize_with = "code")]
    pub job_type: i64,
    /// Raw `jobModule` code; see [`job_module_label`].
    #[serde(deserialize_with = "code")]
    pub job_module: i64,
    /// Raw `status` code: the same codes as `lastScanStatus`.
    #[serde(deserialize_with = "code")]
    pub status: i64,
    /// Objects the job processed, by result.
    #[serde(flatten)]
    pub objects: JobObjects,
    /// `backupSize` in bytes.
    #[serde(default, deserialize_with = "size")]
    pub backup_size: Option<f64>,
    /// When the job started.
    #[serde(default, with = "api_time::option")]
    pub start_time: Option<OffsetDateTime>,
    /// When the job ended; absent while it runs.
    #[serde(default, with = "api_time::option")]
    pub end_time: Option<OffsetDateTime>,
    /// When AvePoint last changed the item: what "latest" means.
    #[serde(default, with = "api_time::option")]
    pub last_modify_time: Option<OffsetDateTime>,
    /// `jobDuration`, e.g. `"17m39s"`.
    #[serde(default, deserialize_with = "job_duration")]
    pub job_duration: Option<Duration>,
}

/// A job's object counts (sent as strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobObjects {
    /// `totalCount`.
    #[serde(deserialize_with = "count")]
    pub total_count: u64,
    /// `failedCount`.
    #[serde(deserialize_with = "count")]
    pub failed_count: u64,
    /// `successfulCount`.
    #[serde(deserialize_with = "count")]
    pub successful_count: u64,
    /// `skippedCount`.
    #[serde(deserialize_with = "count")]
    pub skipped_count: u64,
    /// `warningCount`.
    #[serde(deserialize_with = "count")]
    pub warning_count: u64,
}

/// One item of the protection coverage overview.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageItem {
    /// `serviceType`: a code, or a name where AvePoint sends one.
    pub service_type: CodeOrName,
    /// `serviceModule`: a code (the `jobModule` codes), or a name.
    pub service_module: CodeOrName,
    /// Objects found in the tenant.
    #[serde(deserialize_with = "count")]
    pub total_scanned_objects: u64,
    /// Objects under protection.
    #[serde(deserialize_with = "count")]
    pub total_protected_objects: u64,
    /// `dataSizeStoredInAvePoint` in bytes.
    #[serde(
        default,
        deserialize_with = "size",
        rename = "dataSizeStoredInAvePoint"
    )]
    pub stored_in_avepoint: Option<f64>,
    /// `dataSizeStoredInBYOS` (bring your own storage) in bytes.
    #[serde(default, deserialize_with = "size", rename = "dataSizeStoredInBYOS")]
    pub stored_in_byos: Option<f64>,
}

/// A field AvePoint documents as an enum without saying whether it sends
/// the code or the name: both are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOrName {
    /// A number, or a string of digits.
    Code(i64),
    /// Any other string, kept as snake_case.
    Name(String),
}

impl<'de> Deserialize<'de> for CodeOrName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(number) => number
                .as_i64()
                .map(CodeOrName::Code)
                .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a code"))),
            NumberOrText::Text(text) => Ok(match text.trim().parse::<i64>() {
                Ok(code) => CodeOrName::Code(code),
                Err(_) => CodeOrName::Name(snake_case(&text)),
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(serde_json::Number),
    Text(String),
}

/// A code sent as a number or as a string of digits.
fn code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match CodeOrName::deserialize(deserializer)? {
        CodeOrName::Code(code) => Ok(code),
        CodeOrName::Name(name) => Err(serde::de::Error::custom(format!(
            "expected a numeric code, got {name:?}"
        ))),
    }
}

/// A count sent as a string (`"2323"`) or a number; never negative.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let parsed = match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(number) => number.as_u64(),
        NumberOrText::Text(text) => text.trim().parse::<u64>().ok(),
    };
    parsed.ok_or_else(|| serde::de::Error::custom("expected a count such as \"2323\""))
}

/// A size such as `"0 GB"`, `"1.5 TB"` or `"512 KB"`, in bytes; `null` or
/// an empty string is unknown.
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(number)) => Ok(number.as_f64()),
        Some(NumberOrText::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(NumberOrText::Text(text)) => parse_size(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid size {text:?}"))),
    }
}

/// `jobDuration` such as `"17m39s"` or `"1h2m"`; `null` or empty is unknown.
fn job_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => humantime::parse_duration(text.trim())
            .map(Some)
            .map_err(|error| {
                serde::de::Error::custom(format!("invalid duration {text:?}: {error}"))
            }),
    }
}

/// Bytes of a size string. Units are binary (1 KB = 1024 B), as AvePoint's
/// portal and Windows count them; `KiB`-style spellings mean the same.
pub fn parse_size(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let power = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" | "BYTE" | "BYTES" => 0,
        "KB" | "KIB" => 1,
        "MB" | "MIB" => 2,
        "GB" | "GIB" => 3,
        "TB" | "TIB" => 4,
        "PB" | "PIB" => 5,
        _ => return None,
    };
    (number.is_finite()).then(|| number * 1024f64.powi(power))
}

/// `Exchange Online` -> `exchange_online`.
fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The `job_type` label of a documented `jobType` code, `other_<code>` else.
pub fn job_type_label(code: i64) -> String {
    let name = match code {
        0 => "microsoft_365_scan",
        7 => "microsoft_365",
        10 => "google_workspace_scan",
        11 => "google_workspace",
        12 => "iaas_paas",
        15 => "salesforce",
        16 => "dynamics_365",
        _ => return format!("other_{code}"),
    };
    name.to_owned()
}

/// The `job_module` (and `service_module`) label of a documented code.
/// AvePoint documents 355-371 only as "Azure/AWS/Google cloud modules" and
/// 501-508 as "Google Workspace modules", so those keep their code.
pub fn job_module_label(code: i64) -> String {
    let name = match code {
        0 => "none",
        8 => "archiver",
        10 => "retention",
        302 => "sharepoint_online",
        303 => "exchange_online",
        304 => "microsoft_365_groups",
        305 => "onedrive",
        306 => "project_online",
        307 => "exchange_online_public_folder",
        308 => "microsoft_teams",
        309 => "teams_chat",
        310 => "power_bi",
        311 => "power_automate",
        312 => "power_apps",
        355..=371 => return format!("cloud_{code}"),
        401 => "dynamics_365",
        402 => "viva_engage",
        501..=508 => return format!("google_workspace_{code}"),
        550 | 551 => return format!("dynamics_backup_{code}"),
        _ => return format!("other_{code}"),
    };
    name.to_owned()
}

impl CodeOrName {
    /// The label: the documented name of a code (via `label_of`), or the
    /// name AvePoint sent.
    pub fn label(&self, label_of: fn(i64) -> String) -> String {
        match self {
            CodeOrName::Code(code) => label_of(*code),
            CodeOrName::Name(name) => name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_and_strict() {
        assert_eq!(parse_size("0 GB"), Some(0.0));
        assert_eq!(parse_size("1.5 TB"), Some(1.5 * 1024f64.powi(4)));
        assert_eq!(parse_size("512KB"), Some(512.0 * 1024.0));
        assert_eq!(parse_size("12 B"), Some(12.0));
        assert_eq!(parse_size("7 MiB"), Some(7.0 * 1024.0 * 1024.0));
        assert_eq!(parse_size("12"), Some(12.0));
        for bad in ["", "GB", "1,5 GB", "1 XB", "-1 GB", "1e3 GB", "NaN GB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn labels_follow_the_documented_codes() {
        assert_eq!(job_type_label(7), "microsoft_365");
        assert_eq!(job_type_label(99), "other_99");
        assert_eq!(job_module_label(303), "exchange_online");
        assert_eq!(job_module_label(360), "cloud_360");
        assert_eq!(job_module_label(505), "google_workspace_505");
        assert_eq!(job_module_label(551), "dynamics_backup_551");
        assert_eq!(job_module_label(-3), "other_-3");
        assert_eq!(snake_case(" Exchange Online (EXO) "), "exchange_online_exo");
    }

    #[test]
    fn a_malformed_count_fails_the_item() {
        let json = r#"{"jobType": 7, "jobModule": 303, "status": 2,
            "totalCount": "12x", "failedCount": "0", "successfulCount": "12",
            "skippedCount": "0", "warningCount": "0"}"#;
        let error = serde_json::from_str::<BackupJob>(json).unwrap_err();
        assert!(error.to_string().contains("expected a count"), "{error}");
    }
}
