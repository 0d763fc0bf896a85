//! The `collectors:` section: which kinds of data the exporter reads, in
//! the node_exporter sense. `scan_profiles` (the daily scan reports, on by
//! default), `backup_jobs`, `backup_coverage`, `protected_users` and
//! `subscriptions` (off by default), and the permissions each one needs in
//! the token's scope: the keys as written (`RawCollectors`), their checks
//! and the validated [`CollectorSettings`].

use std::time::Duration;

use serde::Deserialize;

use super::file::{ConfigError, ConfigFile};
use super::yaml::duration;

/// Permission of the scan profile endpoints.
pub const SCAN_PROFILES_SCOPE: &str = "elements.scanprofiles.read.all";
/// Permission of the backup jobs endpoint.
pub const BACKUP_JOBS_SCOPE: &str = "elements.jobs.read.all";
/// Permission of the protection coverage endpoint, and of the tenant users
/// endpoint (`protected_users`).
pub const BACKUP_COVERAGE_SCOPE: &str = "elements.cbprotected.read.all";
/// Permission of the service subscriptions endpoint.
pub const LICENSE_SCOPE: &str = "elements.license.read.all";

/// The kinds of collector, as `collectors:` names them. Code that treats
/// each kind its own way matches on this (never on a name), so a new kind
/// does not compile until every such place has decided about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorKind {
    /// `collectors.scan_profiles`: the daily scan reports.
    ScanProfiles,
    /// `collectors.backup_jobs`: each customer's backup jobs.
    BackupJobs,
    /// `collectors.backup_coverage`: each customer's protection coverage.
    BackupCoverage,
    /// `collectors.protected_users`: each tenant's users, counted by
    /// whether their mailbox and OneDrive are protected.
    ProtectedUsers,
    /// `collectors.subscriptions`: every customer's service subscriptions.
    Subscriptions,
}

impl CollectorKind {
    /// Every kind, in the order of the permissions in the default scope.
    pub const ALL: [CollectorKind; 5] = [
        CollectorKind::ScanProfiles,
        CollectorKind::BackupJobs,
        CollectorKind::BackupCoverage,
        CollectorKind::ProtectedUsers,
        CollectorKind::Subscriptions,
    ];

    /// The kind's key below `collectors:`.
    pub fn name(self) -> &'static str {
        match self {
            CollectorKind::ScanProfiles => "scan_profiles",
            CollectorKind::BackupJobs => "backup_jobs",
            CollectorKind::BackupCoverage => "backup_coverage",
            CollectorKind::ProtectedUsers => "protected_users",
            CollectorKind::Subscriptions => "subscriptions",
        }
    }

    /// The permission the kind's endpoints need in the token's scope.
    pub fn scope(self) -> &'static str {
        match self {
            CollectorKind::ScanProfiles => SCAN_PROFILES_SCOPE,
            CollectorKind::BackupJobs => BACKUP_JOBS_SCOPE,
            CollectorKind::BackupCoverage | CollectorKind::ProtectedUsers => BACKUP_COVERAGE_SCOPE,
            CollectorKind::Subscriptions => LICENSE_SCOPE,
        }
    }

    /// Whether an explicit `avepoint.scope` must hold [`Self::scope`] when
    /// the collector is enabled. Not for scan profiles: scopes written
    /// before collectors existed may spell theirs differently and work.
    pub fn scope_checked(self) -> bool {
        match self {
            CollectorKind::ScanProfiles => false,
            CollectorKind::BackupJobs
            | CollectorKind::BackupCoverage
            | CollectorKind::ProtectedUsers
            | CollectorKind::Subscriptions => true,
        }
    }
}

/// Which collectors run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorSettings {
    /// Scan profile reports (and their details).
    pub scan_profiles: bool,
    /// `refresh: report_schedule`: the reports are read in the background
    /// on each profile's plan and served from memory; `None`
    /// (`every_scrape`, the default): read on every scrape.
    pub report_schedule: Option<ReportSchedule>,
    /// Backup jobs per customer, in the background.
    pub backup_jobs: Option<BackupCollectorSettings>,
    /// Protection coverage per customer, in the background.
    pub backup_coverage: Option<BackupCollectorSettings>,
    /// Protected and unprotected users per tenant, in the background.
    pub protected_users: Option<BackupCollectorSettings>,
    /// Every customer's subscriptions, in the background.
    pub subscriptions: Option<BackupCollectorSettings>,
}

/// The plan of `collectors.scan_profiles.refresh: report_schedule`
/// (`report_schedule::plan` applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSchedule {
    /// How often a profile is read while its scan is not over, and around
    /// the moment its next report is expected.
    pub poll_interval: Duration,
    /// Every profile is read at least this often.
    pub max_age: Duration,
    /// The daily rhythm: the next report is expected this long after the
    /// last one's `lastUpdateTime`.
    pub report_interval: Duration,
    /// How long past the expected moment (or in an unfinished state) the
    /// profile is polled before only `max_age` reads are left.
    pub report_grace: Duration,
}

/// Defaults of [`ReportSchedule`].
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_REPORT_GRACE: Duration = Duration::from_secs(2 * 3600);

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
    /// The permissions the enabled collectors need, in a stable order,
    /// each once (coverage and protected users share theirs).
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut scopes: Vec<&'static str> = Vec::new();
        for kind in CollectorKind::ALL
            .into_iter()
            .filter(|kind| self.enabled(*kind))
        {
            if !scopes.contains(&kind.scope()) {
                scopes.push(kind.scope());
            }
        }
        scopes
    }

    /// Whether the collector of this kind runs.
    pub fn enabled(&self, kind: CollectorKind) -> bool {
        match kind {
            CollectorKind::ScanProfiles => self.scan_profiles,
            CollectorKind::BackupJobs
            | CollectorKind::BackupCoverage
            | CollectorKind::ProtectedUsers
            | CollectorKind::Subscriptions => self.background(kind).is_some(),
        }
    }

    /// The settings of the background collector of this kind, when it
    /// runs; `None` for scan profiles, which are read on every scrape (or
    /// on their own plan, [`Self::report_schedule`]).
    pub fn background(&self, kind: CollectorKind) -> Option<&BackupCollectorSettings> {
        match kind {
            CollectorKind::ScanProfiles => None,
            CollectorKind::BackupJobs => self.backup_jobs.as_ref(),
            CollectorKind::BackupCoverage => self.backup_coverage.as_ref(),
            CollectorKind::ProtectedUsers => self.protected_users.as_ref(),
            CollectorKind::Subscriptions => self.subscriptions.as_ref(),
        }
    }

    /// Bound every per-customer list by `discovery.max_items_per_list`.
    /// Every field is named, so a new collector does not compile until
    /// someone decides whether the bound applies to it.
    pub(super) fn bound_lists(&mut self, max_items_per_list: usize) {
        let CollectorSettings {
            scan_profiles: _, // its lists are discovery's, bounded there
            report_schedule: _,
            backup_jobs,
            backup_coverage,
            protected_users,
            subscriptions,
        } = self;
        let lists = [backup_jobs, backup_coverage, protected_users, subscriptions];
        for backup in lists.into_iter().flatten() {
            backup.max_items_per_list = max_items_per_list;
        }
    }
}

/// The `collectors:` section.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCollectors {
    scan_profiles: Option<RawScanProfilesCollector>,
    backup_jobs: Option<RawBackupCollector>,
    backup_coverage: Option<RawBackupCollector>,
    protected_users: Option<RawBackupCollector>,
    subscriptions: Option<RawBackupCollector>,
}

/// `collectors.scan_profiles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScanProfilesCollector {
    enabled: Option<bool>,
    refresh: Option<RawRefresh>,
    #[serde(default, deserialize_with = "duration")]
    poll_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    max_age: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    report_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    report_grace: Option<Duration>,
}

/// `collectors.scan_profiles.refresh`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawRefresh {
    EveryScrape,
    ReportSchedule,
}

/// `collectors.backup_jobs`, `backup_coverage`, `protected_users` and
/// `subscriptions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackupCollector {
    #[serde(default)]
    enabled: bool,
    #[serde(default, deserialize_with = "duration")]
    refresh_interval: Option<Duration>,
}

/// Backup jobs change with the backup cadence: a quarter of an hour
/// notices a failed job soon without asking AvePoint on every scrape.
const DEFAULT_JOBS_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Coverage moves slowly (objects added to or removed from protection).
const DEFAULT_COVERAGE_INTERVAL: Duration = Duration::from_secs(3600);
/// Users change protection as they are onboarded, within a day: every six
/// hours costs one paged list per tenant four times a day.
const DEFAULT_USERS_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Subscriptions change with contracts; one list for every customer.
const DEFAULT_SUBSCRIPTIONS_INTERVAL: Duration = Duration::from_secs(3600);

/// The section; at least one collector must be on.
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: Option<RawCollectors>,
) -> Result<CollectorSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let report_schedule = report_schedule(file, raw.scan_profiles.as_ref())?;
    let settings = CollectorSettings {
        scan_profiles: raw.scan_profiles.and_then(|s| s.enabled).unwrap_or(true),
        report_schedule,
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
        protected_users: background(
            file,
            "collectors.protected_users",
            raw.protected_users,
            DEFAULT_USERS_INTERVAL,
        )?,
        subscriptions: background(
            file,
            "collectors.subscriptions",
            raw.subscriptions,
            DEFAULT_SUBSCRIPTIONS_INTERVAL,
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

/// `collectors.scan_profiles.refresh` and the keys of its
/// `report_schedule` mode, which make no sense (and are refused) in
/// `every_scrape` mode.
fn report_schedule(
    file: &ConfigFile<'_>,
    raw: Option<&RawScanProfilesCollector>,
) -> Result<Option<ReportSchedule>, ConfigError> {
    const KEY: &str = "collectors.scan_profiles";
    let Some(raw) = raw else { return Ok(None) };
    let keys = [
        ("poll_interval", raw.poll_interval),
        ("max_age", raw.max_age),
        ("report_interval", raw.report_interval),
        ("report_grace", raw.report_grace),
    ];
    if raw.refresh != Some(RawRefresh::ReportSchedule) {
        if let Some((name, _)) = keys.iter().find(|(_, value)| value.is_some()) {
            return Err(file.invalid(
                &format!("{KEY}.{name}"),
                "only applies with refresh: report_schedule (every_scrape reads every report on every scrape; see avepoint.cache_ttl)".into(),
            ));
        }
        return Ok(None);
    }
    for (name, value) in keys {
        if value.is_some_and(|value| value < Duration::from_secs(1)) {
            return Err(file.invalid(&format!("{KEY}.{name}"), "must be at least 1s".into()));
        }
    }
    let schedule = ReportSchedule {
        poll_interval: raw.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
        max_age: raw.max_age.unwrap_or(DEFAULT_MAX_AGE),
        report_interval: raw.report_interval.unwrap_or(DEFAULT_REPORT_INTERVAL),
        report_grace: raw.report_grace.unwrap_or(DEFAULT_REPORT_GRACE),
    };
    if schedule.poll_interval > schedule.max_age {
        return Err(file.invalid(
            &format!("{KEY}.poll_interval"),
            format!(
                "{} is longer than max_age ({}): every profile is read at least once per max_age anyway",
                humantime::format_duration(schedule.poll_interval),
                humantime::format_duration(schedule.max_age)
            ),
        ));
    }
    Ok(Some(schedule))
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
