//! The wire type of a scan profile's settings,
//! `GET .../customers/{c}/scan-profiles/{p}` ([`ScanProfileDetails`]),
//! beside `model.rs`, whose report types it shares the timestamps with.
//!
//! Imports only `avepoint::model` (for its timestamp parser).

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::endpoint::{EndpointFacts, Get, Method, get};
use super::model::api_time;
use crate::config::SCAN_PROFILES_SCOPE;

/// A scan profile's settings, as the profile details endpoint returns them.
///
/// `impersonationAccount` (an account's e-mail address: personal data) is
/// not even decoded, so it can reach no log, label or `Debug` output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanProfileDetails {
    /// The profile id as AvePoint spells it.
    #[serde(default, deserialize_with = "super::model::text")]
    pub profile_id: String,
    /// Display name of the profile; may contain any Unicode.
    #[serde(default, deserialize_with = "super::model::text")]
    pub profile_name: String,
    /// Microsoft 365 tenant id.
    #[serde(default, deserialize_with = "super::model::text")]
    pub tenant_id: String,
    /// Short tenant name.
    #[serde(default, deserialize_with = "super::model::text")]
    pub tenant_domain: String,
    /// Raw scan mode code: 0 Express, 1 Advanced.
    #[serde(default, deserialize_with = "super::lenient::optional")]
    pub scan_mode: Option<i64>,
    /// When the profile was last changed.
    #[serde(with = "api_time::option", default)]
    pub modified_time: Option<OffsetDateTime>,
    /// When the profile was created.
    #[serde(with = "api_time::option", default)]
    pub created_time: Option<OffsetDateTime>,
    /// `enableDailyScan`: the daily scan's time of day in seconds after
    /// midnight (`"hh:mm"`; the time zone is not documented), or `None`
    /// when daily scan is off (`"No"`).
    #[serde(rename = "enableDailyScan", deserialize_with = "daily_scan_time")]
    pub daily_scan_time: Option<u32>,
    /// `scanInplaceArchivedMailboxes`, when sent.
    #[serde(default)]
    pub scan_inplace_archived_mailboxes: Option<bool>,
    /// `isIgnoreLockedSiteEnabled`, when sent.
    #[serde(default)]
    pub is_ignore_locked_site_enabled: Option<bool>,
    /// `isSendOutOfPolicyNotification`, when sent.
    #[serde(default)]
    pub is_send_out_of_policy_notification: Option<bool>,
    /// The containers the profile scans.
    #[serde(default, deserialize_with = "super::model::list")]
    pub containers: Vec<ProfileContainer>,
}

/// One container of a scan profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileContainer {
    /// `containersName` (sic: AvePoint's spelling, with the `s`).
    #[serde(
        rename = "containersName",
        default,
        deserialize_with = "super::model::text"
    )]
    pub name: String,
    /// Raw `objectType` code; see [`object_type_label`].
    pub object_type: i64,
}

/// Documented `containers[].objectType` codes and their snake_case names.
const OBJECT_TYPES: [(i64, &str); 29] = [
    (0, "site_collection"),
    (1, "mailbox"),
    (2, "onedrive"),
    (5, "microsoft_365_group"),
    (6, "project_online"),
    (7, "public_folder"),
    (9, "channel"),
    (10, "user"),
    (11, "none_unified_group"),
    (12, "power_platform_environment"),
    (13, "power_platform_connection"),
    (14, "power_apps"),
    (15, "power_automate"),
    (16, "power_bi_workspace"),
    (17, "active_directory_mailbox"),
    (18, "active_directory_user"),
    (19, "active_directory_group"),
    (20, "power_platform_solution"),
    (21, "power_copilot_studio"),
    (22, "power_page"),
    (23, "loop_container"),
    (24, "sharepoint_agent"),
    (25, "azure_ai_foundry_agent"),
    (100, "google_user"),
    (101, "google_shared_drive"),
    (102, "google_classroom"),
    (103, "google_mailbox"),
    (104, "google_group"),
    (105, "google_vault_matter"),
];

/// The snake_case name of a documented `objectType` code, `other` for any
/// other (AvePoint adds types; an unknown one is never an error).
pub fn object_type_label(code: i64) -> &'static str {
    OBJECT_TYPES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or("other", |(_, label)| label)
}

/// `enableDailyScan`: `"No"` is off, `"hh:mm"` a time of day; anything else
/// is an error that names the field (the derive would not).
fn daily_scan_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    // The value is not quoted in the error: it may be anything at all.
    let text = String::deserialize(deserializer)?;
    parse_daily_scan(&text).ok_or_else(|| {
        serde::de::Error::custom("enableDailyScan: expected No or a time of day hh:mm")
    })
}

/// `Some(None)` for off, `Some(Some(seconds))` for a time, `None` if invalid.
fn parse_daily_scan(text: &str) -> Option<Option<u32>> {
    if text.trim().eq_ignore_ascii_case("no") {
        return Some(None);
    }
    let (hours, minutes) = text.trim().split_once(':')?;
    let digits = |part: &str, max: u32| {
        let valid = (1..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
        valid
            .then(|| part.parse::<u32>().ok())
            .flatten()
            .filter(|value| *value <= max)
    };
    Some(Some(digits(hours, 23)? * 3600 + digits(minutes, 59)? * 60))
}

/// `GET .../customers/{c}/scan-profiles/{p}`: a profile's settings.
pub const PROFILE_DETAILS: Get<ScanProfileDetails, 2> = get(&EndpointFacts {
    label: "profile_details",
    method: Method::Get,
    path_template: Some(
        "/partner/external/v3/general/customers/{customer}/scan-profiles/{profile}",
    ),
    permission: Some(SCAN_PROFILES_SCOPE),
    description: "scan profile details",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_scan_is_off_or_a_time_of_day() {
        assert_eq!(parse_daily_scan("No"), Some(None));
        assert_eq!(parse_daily_scan("no"), Some(None));
        assert_eq!(parse_daily_scan("15:19"), Some(Some(15 * 3600 + 19 * 60)));
        assert_eq!(parse_daily_scan("0:05"), Some(Some(300)));
        assert_eq!(parse_daily_scan("23:59"), Some(Some(86_340)));
        for bad in [
            "24:00", "12:60", "12", "12:5:0", "", "Yes", "-1:00", "1:2:", "+1:00",
        ] {
            assert_eq!(parse_daily_scan(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn object_types_are_named_or_other() {
        assert_eq!(object_type_label(6), "project_online");
        assert_eq!(object_type_label(105), "google_vault_matter");
        assert_eq!(object_type_label(42), "other");
        assert_eq!(object_type_label(-1), "other");
    }
}
