//! The `profile_details:` section: whether and how often each profile's
//! details (daily-scan schedule, settings, containers) are fetched.

use std::time::Duration;

use super::discovery::DiscoverySettings;
use super::file::{ConfigError, ConfigFile};
use super::raw::RawProfileDetails;

/// How often profile details are fetched in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileDetailsSettings {
    /// Time between two full refreshes.
    pub refresh_interval: Duration,
}

/// Without a `refresh_interval` and without discovery: details change
/// when someone edits a profile, which an hour's delay shows soon enough.
const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);
/// The shortest interval: every refresh asks once per profile.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The section: on unless `enabled: false`; the refresh interval defaults
/// to discovery's, so both lists are read on one cadence.
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: Option<RawProfileDetails>,
    discovery: Option<&DiscoverySettings>,
) -> Result<Option<ProfileDetailsSettings>, ConfigError> {
    let raw = raw.unwrap_or_default();
    if !raw.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let Some(refresh_interval) = raw.refresh_interval else {
        // Discovery may refresh every few seconds (tests, demos); details
        // cost a request per profile, so never more than once a minute.
        let interval = discovery.map_or(DEFAULT_REFRESH_INTERVAL, |d| d.refresh_interval);
        return Ok(Some(ProfileDetailsSettings {
            refresh_interval: interval.max(MIN_REFRESH_INTERVAL),
        }));
    };
    if refresh_interval < MIN_REFRESH_INTERVAL {
        return Err(file.invalid(
            "profile_details.refresh_interval",
            "must be at least 1m: every refresh asks AvePoint once per profile".into(),
        ));
    }
    Ok(Some(ProfileDetailsSettings { refresh_interval }))
}
