//! The `collectors:` section: which kinds of data the exporter reads, in
//! the node_exporter sense. `scan_profiles` (the daily scan reports, on by
//! default), `backup_jobs` and `backup_coverage` (off by default), and the
//! permissions each one needs in the token's scope.

use std::time::Duration;

use super::ConfigError;
use super::ConfigFile;
use super::raw::{RawBackupCollector, RawCollectors};

/// Permission of the scan profile endpoints.
pub const SCAN_PROFILES_SCOPE: &str = "elements.scanprofiles.read.all";
/// Permission of the backup jobs endpoint.
pub const BACKUP_JOBS_SCOPE: &str = "elements.jobs.read.all";
/// Permission of the protection coverage endpoint.
pub const BACKUP_COVERAGE_SCOPE: &str = "elements.cbprotected.read.all";

/// Which collectors run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorSettings {
    /// Scan profile reports on every scrape (and their details).
    pub scan_profiles: bool,
    /// Backup jobs per customer, in the background.
    pub backup_jobs: Option<BackupCollectorSettings>,
    /// Protection coverage per customer, in the background.
    pub backup_coverage: Option<BackupCollectorSettings>,
}

/// A background collector's cadence and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCollectorSettings {
    /// Time between two reads of every customer's data.
    pub refresh_interval: Duration,
    /// Items read of one customer's list at most
    /// (`discovery.max_items_per_list`, which bounds every paged list).
    pub max_items_per_list: usize,
}

impl CollectorSettings {
    /// The permissions the enabled collectors need, in a stable order.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut scopes = Vec::new();
        if self.scan_profiles {
            scopes.push(SCAN_PROFILES_SCOPE);
        }
        if self.backup_jobs.is_some() {
            scopes.push(BACKUP_JOBS_SCOPE);
        }
        if self.backup_coverage.is_some() {
            scopes.push(BACKUP_COVERAGE_SCOPE);
        }
        scopes
    }

    /// Whether any collector runs per customer in the background.
    pub fn any_backup(&self) -> bool {
        self.backup_jobs.is_some() || self.backup_coverage.is_some()
    }
}

/// Backup jobs change with the backup cadence: a quarter of an hour
/// notices a failed job soon without asking AvePoint on every scrape.
const DEFAULT_JOBS_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Coverage moves slowly (objects added to or removed from protection).
const DEFAULT_COVERAGE_INTERVAL: Duration = Duration::from_secs(3600);

/// The section; at least one collector must be on.
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: Option<RawCollectors>,
) -> Result<CollectorSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let settings = CollectorSettings {
        scan_profiles: raw.scan_profiles.and_then(|s| s.enabled).unwrap_or(true),
        backup_jobs: background(
            file,
            "collectors.backup_jobs",
            raw.backup_jobs,
            DEFAULT_JOBS_INTERVAL,
        )?,
        backup_coverage: background(
            file,
            "collectors.backup_coverage",
            raw.backup_coverage,
            DEFAULT_COVERAGE_INTERVAL,
        )?,
    };
    if settings.scopes().is_empty() {
        return Err(file.invalid(
            "collectors",
            "every collector is disabled: enable at least one".into(),
        ));
    }
    Ok(settings)
}

fn background(
    file: &ConfigFile<'_>,
    key: &str,
    raw: Option<RawBackupCollector>,
    default_interval: Duration,
) -> Result<Option<BackupCollectorSettings>, ConfigError> {
    let Some(raw) = raw.filter(|raw| raw.enabled) else {
        return Ok(None);
    };
    let refresh_interval = raw.refresh_interval.unwrap_or(default_interval);
    if refresh_interval < Duration::from_secs(60) {
        return Err(file.invalid(
            &format!("{key}.refresh_interval"),
            "must be at least 1m: every refresh asks AvePoint for every customer's pages".into(),
        ));
    }
    Ok(Some(BackupCollectorSettings {
        refresh_interval,
        max_items_per_list: super::discovery::DEFAULT_MAX_ITEMS_PER_LIST,
    }))
}
