//! The config file as written: serde structs that mirror the YAML one to one.
//!
//! They only decode (unknown keys are rejected here, as typos); defaults that
//! depend on other keys and range checks live in the section validators, so
//! every rule about a key is in one place and errors can name the file.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use uuid::Uuid;

use super::yaml::{duration, regex, uuid, uuids};
use super::{Environment, LastStatusState, ProfileEndpoint};

/// The whole document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "a mapping with the keys avepoint, targets, discovery, profile_details, collectors and metrics"
)]
pub(super) struct RawConfig {
    pub(super) avepoint: Option<RawAvePoint>,
    #[serde(default)]
    pub(super) targets: Vec<RawTarget>,
    pub(super) discovery: Option<RawDiscovery>,
    pub(super) profile_details: Option<RawProfileDetails>,
    pub(super) collectors: Option<RawCollectors>,
    pub(super) metrics: Option<RawMetrics>,
}

/// The `avepoint:` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAvePoint {
    #[serde(default)]
    pub(super) environment: Environment,
    pub(super) base_url: Option<String>,
    pub(super) token_url: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) client_certificate_file: Option<PathBuf>,
    pub(super) client_private_key_file: Option<PathBuf>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) scope: Option<String>,
    #[serde(default)]
    pub(super) endpoint: ProfileEndpoint,
    #[serde(default, deserialize_with = "duration")]
    pub(super) request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) round_timeout: Option<Duration>,
    pub(super) concurrency: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) cache_ttl: Option<Duration>,
    pub(super) max_requests_per_second: Option<f64>,
    pub(super) max_response_bytes: Option<usize>,
}

/// One entry of `targets:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping with the keys customer_id and profile_ids")]
pub(super) struct RawTarget {
    #[serde(deserialize_with = "uuid")]
    pub(super) customer_id: Uuid,
    #[serde(default, deserialize_with = "uuids")]
    pub(super) profile_ids: Vec<Uuid>,
}

/// The `discovery:` section; its values are decoded even when it is
/// disabled, but range-checked only when `enabled` is true.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    #[serde(default)]
    pub(super) enabled: bool,
    #[serde(default, deserialize_with = "duration")]
    pub(super) refresh_interval: Option<Duration>,
    pub(super) page_size: Option<u32>,
    pub(super) max_customers: Option<usize>,
    pub(super) max_items_per_list: Option<usize>,
    #[serde(default)]
    pub(super) include: Vec<RawRule>,
    #[serde(default)]
    pub(super) exclude: Vec<RawRule>,
}

/// One entry of `discovery.include` or `discovery.exclude`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "a mapping with any of customer_id, organization, profile_name (regular expressions)"
)]
pub(super) struct RawRule {
    #[serde(default, deserialize_with = "regex")]
    pub(super) customer_id: Option<Regex>,
    #[serde(default, deserialize_with = "regex")]
    pub(super) organization: Option<Regex>,
    #[serde(default, deserialize_with = "regex")]
    pub(super) profile_name: Option<Regex>,
}

/// The `profile_details:` section.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfileDetails {
    pub(super) enabled: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) refresh_interval: Option<Duration>,
}

/// The `collectors:` section.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCollectors {
    pub(super) scan_profiles: Option<RawScanProfilesCollector>,
    pub(super) backup_jobs: Option<RawBackupCollector>,
    pub(super) backup_coverage: Option<RawBackupCollector>,
}

/// `collectors.scan_profiles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScanProfilesCollector {
    pub(super) enabled: Option<bool>,
    pub(super) refresh: Option<RawRefresh>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) poll_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) max_age: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) report_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) report_grace: Option<Duration>,
}

/// `collectors.scan_profiles.refresh`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawRefresh {
    EveryScrape,
    ReportSchedule,
}

/// `collectors.backup_jobs` and `collectors.backup_coverage`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackupCollector {
    #[serde(default)]
    pub(super) enabled: bool,
    #[serde(default, deserialize_with = "duration")]
    pub(super) refresh_interval: Option<Duration>,
}

/// The `metrics:` section.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) include_profiles: Option<bool>,
    #[serde(default)]
    pub(super) last_status_state: LastStatusState,
}
