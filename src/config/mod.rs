//! The YAML config file, environment overrides and validation into [`Settings`].
//!
//! Parsing is strict (unknown keys are typos, and typos are errors) and every
//! error names the file and the key, so a broken deployment says what to fix.
//!
//! This module holds [`Settings`], the document as written (`RawConfig`) and
//! [`Settings::from_yaml`], which runs the checks in the order their errors
//! are reported. The submodules hold the YAML decoding (`yaml`),
//! [`ConfigError`] and the file being checked (`file`), and one file per
//! section with its types and its checks (`avepoint/`, `discovery`,
//! `collectors`, `profile_details`, `targets`, `metrics`; `raw` holds the
//! raw forms of `discovery`, `profile_details` and `targets`). No file here
//! imports this one.
//!
//! Config is the start of the data flow, so it imports nothing of the crate,
//! with one accepted exception against that flow:
//! `crate::avepoint::certificate::{CertificateError, ClientCertificate}`, because
//! the certificate is checked at load, where a bad one is a config error
//! naming the key, not a failure at the first token request.

mod avepoint;
mod collectors;
mod discovery;
mod file;
mod metrics;
mod profile_details;
mod raw;
mod targets;
mod yaml;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use avepoint::{
    AvePointSettings, CLIENT_ID_ENV, CLIENT_SECRET_ENV, CUSTOMERS_SCOPE, Credential,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_ROUND_TIMEOUT, Environment, Limits, MAX_CONCURRENCY,
    MAX_ROUND_TIMEOUT, ProfileEndpoint,
};
pub use collectors::{
    BACKUP_COVERAGE_SCOPE, BACKUP_JOBS_SCOPE, BackupCollectorSettings, CollectorKind,
    CollectorSettings, LICENSE_SCOPE, ReportSchedule, SCAN_PROFILES_SCOPE,
};
pub use discovery::{DiscoveryRule, DiscoverySettings, ListLimits};
pub use file::ConfigError;
pub use metrics::LastStatusState;
pub use profile_details::ProfileDetailsSettings;
pub use targets::{ProfileTarget, canonical_uuid};
pub(crate) use yaml::parse_yaml;

use file::ConfigFile;

/// The whole document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "a mapping with the keys avepoint, targets, discovery, profile_details, collectors and metrics"
)]
struct RawConfig {
    avepoint: Option<avepoint::RawAvePoint>,
    #[serde(default)]
    targets: Vec<raw::RawTarget>,
    discovery: Option<raw::RawDiscovery>,
    profile_details: Option<raw::RawProfileDetails>,
    collectors: Option<collectors::RawCollectors>,
    metrics: Option<metrics::RawMetrics>,
}

impl ProfileEndpoint {
    /// The config spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ProfileEndpoint::Auto => "auto",
            ProfileEndpoint::ScanProfilesV2 => "scan-profiles-v2",
            ProfileEndpoint::Changes => "changes",
        }
    }

    /// The other endpoint, suggested when this one answers 404.
    pub fn other(self) -> Self {
        match self {
            ProfileEndpoint::Auto | ProfileEndpoint::ScanProfilesV2 => ProfileEndpoint::Changes,
            ProfileEndpoint::Changes => ProfileEndpoint::ScanProfilesV2,
        }
    }
}

/// Validated settings: everything the exporter needs, checked once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from, for messages.
    pub source: PathBuf,
    /// SHA-256 of the config text: with [`AvePointSettings::same_client`]
    /// (which covers the files the text names), what tells a reload that
    /// nothing changed.
    pub source_digest: [u8; 32],
    /// Connection to AvePoint.
    pub avepoint: AvePointSettings,
    /// The scan profiles listed in the file (discovery may add more).
    pub targets: Vec<ProfileTarget>,
    /// Every customer `targets` names, in file order (for the per-customer
    /// collectors; discovery may add more).
    pub customers: Vec<String>,
    /// Finding customers and profiles through the API, when enabled.
    pub discovery: Option<DiscoverySettings>,
    /// Which collectors run.
    pub collectors: CollectorSettings,
    /// Fetching each profile's details in the background, unless disabled.
    pub profile_details: Option<ProfileDetailsSettings>,
    /// Whether `/metrics` fetches and serves every target's profile
    /// metrics (`metrics.include_profiles`, default true). Off when
    /// Prometheus scrapes customers through `/sd` + `/probe`, so the API is
    /// not called twice for the same profiles.
    pub metrics_include_profiles: bool,
    /// Which series of `avepoint_scan_last_status_state` are exported
    /// (`metrics.last_status_state`, default `all`), on `/metrics` and
    /// `/probe` alike.
    pub metrics_last_status_state: LastStatusState,
}

impl Settings {
    /// Whether `other` (a reload of the same file) is the very same config:
    /// the same text, and the same contents of the files it names.
    pub fn unchanged_from(&self, other: &Settings) -> bool {
        self.source == other.source
            && self.source_digest == other.source_digest
            && self.avepoint.same_client(&other.avepoint)
    }
}

/// Look up environment variables for [`Settings::load`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Settings {
    /// Read, parse and validate a config file. `env` looks up environment
    /// variables (pass [`process_env`]); tests pass a map.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path, env)
    }

    /// Parse and validate config text; `path` is only used in messages and
    /// to resolve relative `client_secret_file`, `client_certificate_file`
    /// and `client_private_key_file` paths.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = ConfigFile { path };
        let raw: RawConfig =
            parse_yaml(text).map_err(|(key, message)| file.invalid(&key, message))?;
        let section = raw.avepoint.ok_or_else(|| {
            file.invalid(
                "avepoint",
                "missing: add an avepoint: section with at least client_id".into(),
            )
        })?;
        // The order of these calls is the order of the checks: the first
        // error in it is the one reported, and the tests pin that.
        let unscoped = avepoint::validate(&file, section, &env)?;
        let list_limits = discovery::list_limits(&file, raw.discovery.as_ref())?;
        let mut collectors = collectors::validate(&file, raw.collectors)?;
        collectors.bound_lists(list_limits.max_items_per_list);
        let mut discovery = discovery::validate(&file, raw.discovery)?;
        if collectors.protected_users.is_some() && discovery.is_none() {
            return Err(file.invalid(
                "collectors.protected_users",
                "needs discovery: the tenants whose users it counts come from discovery's customer list; enable discovery".into(),
            ));
        }
        if let Some(discovery) = &mut discovery {
            discovery.list_profiles = collectors.scan_profiles;
            discovery.limits = list_limits;
        }
        let profile_details = match collectors.scan_profiles {
            true => profile_details::validate(&file, raw.profile_details, discovery.as_ref())?,
            false => None,
        };
        let avepoint = unscoped(&file, discovery.is_some(), &collectors)?;
        let targets = targets::validate(&file, &raw.targets, discovery.is_some(), &collectors)?;
        let metrics = raw.metrics.unwrap_or_default();
        Ok(Settings {
            source: path.to_owned(),
            source_digest: Sha256::digest(text).into(),
            avepoint,
            targets: targets.profiles,
            customers: targets.customers,
            discovery,
            profile_details,
            collectors,
            metrics_include_profiles: metrics.include_profiles.unwrap_or(true),
            metrics_last_status_state: metrics.last_status_state,
        })
    }
}
