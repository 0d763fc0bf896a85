//! The profile details families (schedule, settings, containers) of the
//! profiles in a snapshot, and the refresher's own health.
//!
//! Declared like `profiles.rs`'s and streamed by the same encoder
//! (`streamed.rs`): they are per profile too, and follow the snapshot's profiles, so `/probe` shows the
//! probed customer's details and `/metrics` those of every target it
//! serves. A profile whose details were never fetched has none of them,
//! and neither has one whose report fetch failed in this scrape (`up 0`
//! means no other series, as the README promises).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::Format;
use super::gauges::{NO_LABELS, encode_counter, encode_gauges, encode_last_success};
use super::lines::line_float;
use super::streamed::{Streamed, StreamedFamily};
use crate::collect::{ProfileResult, Snapshot};
use crate::config::ProfileTarget;
use crate::profile_details::{ProfileDetailsState, ProfileSettings};

/// The profile details families, in exposition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DetailFamily {
    DailyScanEnabled,
    DailyScanTime,
    Created,
    Containers,
    OutOfPolicyNotification,
    InplaceArchivedMailboxes,
    IgnoreLockedSites,
}

/// A profile with known details: its result in the snapshot (for its
/// target: a handle, not a copy of its ids) and its settings.
type DetailRow = (Arc<ProfileResult>, Arc<ProfileSettings>);

impl StreamedFamily for DetailFamily {
    type Source = Vec<DetailRow>;
    type Row = DetailRow;
    type Context = ();

    const ALL: &'static [Self] = &[
        Self::DailyScanEnabled,
        Self::DailyScanTime,
        Self::Created,
        Self::Containers,
        Self::OutOfPolicyNotification,
        Self::InplaceArchivedMailboxes,
        Self::IgnoreLockedSites,
    ];

    fn rows(rows: &Vec<DetailRow>) -> &[DetailRow] {
        rows
    }

    fn target((result, _): &DetailRow) -> &ProfileTarget {
        &result.target
    }

    fn name(self) -> &'static str {
        match self {
            DetailFamily::DailyScanEnabled => "avepoint_scan_profile_daily_scan_enabled",
            DetailFamily::DailyScanTime => "avepoint_scan_profile_daily_scan_time_seconds",
            DetailFamily::Created => "avepoint_scan_profile_created_timestamp_seconds",
            DetailFamily::Containers => "avepoint_scan_profile_containers",
            DetailFamily::OutOfPolicyNotification => {
                "avepoint_scan_profile_out_of_policy_notification_enabled"
            }
            DetailFamily::InplaceArchivedMailboxes => {
                "avepoint_scan_profile_inplace_archived_mailboxes_enabled"
            }
            DetailFamily::IgnoreLockedSites => "avepoint_scan_profile_ignore_locked_sites_enabled",
        }
    }

    fn help(self, (): ()) -> &'static str {
        match self {
            DetailFamily::DailyScanEnabled => {
                "1 when the profile's daily scan is on (enableDailyScan is a time), 0 when it is off (\"No\")."
            }
            DetailFamily::DailyScanTime => {
                "Time of day of the profile's daily scan (enableDailyScan), in seconds after midnight, in AvePoint's time zone (not documented). Absent when daily scan is off."
            }
            DetailFamily::Created => {
                "When the scan profile was created (createdTime), as a Unix timestamp."
            }
            DetailFamily::Containers => {
                "Containers in the scan profile's scope per object type (containers[].objectType); undocumented types count as other."
            }
            DetailFamily::OutOfPolicyNotification => {
                "1 when the profile sends out-of-policy notifications (isSendOutOfPolicyNotification)."
            }
            DetailFamily::InplaceArchivedMailboxes => {
                "1 when the profile scans in-place archived mailboxes (scanInplaceArchivedMailboxes)."
            }
            DetailFamily::IgnoreLockedSites => {
                "1 when the profile ignores locked sites (isIgnoreLockedSiteEnabled)."
            }
        }
    }

    fn unit(self) -> Option<&'static str> {
        matches!(self, DetailFamily::DailyScanTime | DetailFamily::Created).then_some("seconds")
    }

    fn has_rows(self, (_, settings): &DetailRow, (): ()) -> bool {
        match self {
            DetailFamily::DailyScanTime => settings.daily_scan_time.is_some(),
            DetailFamily::Created => settings.created_timestamp.is_some(),
            DetailFamily::Containers => !settings.containers.is_empty(),
            DetailFamily::OutOfPolicyNotification => {
                settings.send_out_of_policy_notification.is_some()
            }
            DetailFamily::InplaceArchivedMailboxes => {
                settings.scan_inplace_archived_mailboxes.is_some()
            }
            DetailFamily::IgnoreLockedSites => settings.ignore_locked_sites.is_some(),
            DetailFamily::DailyScanEnabled => true,
        }
    }

    fn write_rows(self, out: &mut String, labels: &str, (_, settings): &DetailRow, (): ()) {
        let name = self.name();
        let flag = |value: bool| if value { 1.0 } else { 0.0 };
        match self {
            DetailFamily::DailyScanEnabled => line_float(
                out,
                name,
                labels,
                None,
                flag(settings.daily_scan_time.is_some()),
            ),
            DetailFamily::DailyScanTime => {
                if let Some(seconds) = settings.daily_scan_time {
                    line_float(out, name, labels, None, f64::from(seconds));
                }
            }
            DetailFamily::Created => {
                if let Some(at) = settings.created_timestamp {
                    line_float(out, name, labels, None, at);
                }
            }
            DetailFamily::Containers => {
                for (object_type, count) in &settings.containers {
                    let label = Some(("object_type", *object_type));
                    line_float(out, name, labels, label, *count as f64);
                }
            }
            DetailFamily::OutOfPolicyNotification => {
                flag_line(out, name, labels, settings.send_out_of_policy_notification)
            }
            DetailFamily::InplaceArchivedMailboxes => {
                flag_line(out, name, labels, settings.scan_inplace_archived_mailboxes)
            }
            DetailFamily::IgnoreLockedSites => {
                flag_line(out, name, labels, settings.ignore_locked_sites)
            }
        }
    }
}

/// A 0/1 line for a setting AvePoint sent; nothing for one it left out.
fn flag_line(out: &mut String, name: &str, labels: &str, value: Option<bool>) {
    if let Some(value) = value {
        line_float(out, name, labels, None, if value { 1.0 } else { 0.0 });
    }
}

/// The details families of a snapshot's profiles, as text chunks.
pub(super) type DetailFamilies = Streamed<DetailFamily>;

impl DetailFamilies {
    /// Chunks of the details of `snapshot`'s profiles that `details` knows.
    pub(super) fn new(
        snapshot: &Snapshot,
        details: Option<&ProfileDetailsState>,
        format: Format,
    ) -> Self {
        let rows = details
            .map(|details| {
                snapshot
                    .profiles
                    .iter()
                    // Like every other per-profile series, none while
                    // the profile's report fetch fails (`up 0`).
                    .filter(|result| result.outcome.is_ok())
                    .filter_map(|result| {
                        let settings = details.profiles.get(&result.target)?;
                        Some((Arc::clone(result), Arc::clone(settings)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Streamed::start(rows, format, ())
    }
}

/// The refresher's health: when it last read every profile, how many
/// fetches failed, how many profiles it knows.
#[derive(Debug)]
pub(super) struct DetailsCollector(pub(super) Arc<ProfileDetailsState>);

impl Collector for DetailsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        encode_last_success(
            &mut encoder,
            "avepoint_profile_details_last_success_timestamp",
            "End of the last profile details refresh in which every fetch succeeded, as a Unix timestamp.",
            state.last_success,
        )?;
        encode_counter(
            &mut encoder,
            "avepoint_profile_details_errors",
            "Profile details requests that failed (the profile kept its last known details).",
            state.errors_total,
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_profile_details_profiles",
            "Scan profiles whose details are known.",
            None,
            [(NO_LABELS, state.profiles.len() as i64)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn target(profile: &str) -> ProfileTarget {
        ProfileTarget::new("c", profile)
    }

    /// Profiles fetched (`up 1`), and the one named `failed` not.
    fn snapshot(profiles: &[&str]) -> Snapshot {
        let report: crate::avepoint::ScanProfileReport = serde_json::from_str(
            r#"{"lastScanStatus": 2, "newRegisteredContentCount": 0,
                "movedToAnotherContainer": 0, "removedFromMicrosoft365OrOutofPolicy": 0}"#,
        )
        .expect("a minimal report");
        Snapshot {
            profiles: profiles
                .iter()
                .map(|p| ProfileResult {
                    target: target(p),
                    fetch_duration: Duration::ZERO,
                    outcome: match *p {
                        "failed" => Err(crate::collect::FetchError {
                            kind: crate::avepoint::FailureKind::Deadline,
                            request_id: None,
                            message: String::new(),
                        }),
                        _ => Ok(report.clone()),
                    },
                    cache_age: None,
                    read: None,
                })
                .map(Arc::new)
                .collect(),
            collect_duration: Duration::ZERO,
            schedule: None,
        }
    }

    #[test]
    fn writes_the_known_details_of_the_snapshot_profiles_only() {
        let mut state = ProfileDetailsState::default();
        state.profiles.insert(
            target("a"),
            Arc::new(ProfileSettings {
                daily_scan_time: Some(15 * 3600 + 19 * 60),
                created_timestamp: Some(1_757_560_754.0),
                send_out_of_policy_notification: Some(true),
                scan_inplace_archived_mailboxes: Some(false),
                ignore_locked_sites: Some(false),
                containers: vec![("onedrive", 1), ("other", 3)],
            }),
        );
        state.profiles.insert(
            target("off"),
            Arc::new(ProfileSettings {
                daily_scan_time: None,
                created_timestamp: None,
                send_out_of_policy_notification: Some(false),
                scan_inplace_archived_mailboxes: Some(true),
                ignore_locked_sites: Some(true),
                containers: vec![],
            }),
        );
        state.profiles.insert(
            target("not-in-snapshot"),
            Arc::clone(&state.profiles[&target("a")]),
        );
        let text: String = DetailFamilies::new(
            &snapshot(&["a", "off", "unknown", "failed"]),
            Some(&state),
            Format::OpenMetrics,
        )
        .collect();
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                r#"avepoint_scan_profile_daily_scan_enabled{customer_id="c",profile_id="a"} 1"#,
                r#"avepoint_scan_profile_daily_scan_enabled{customer_id="c",profile_id="off"} 0"#,
                r#"avepoint_scan_profile_daily_scan_time_seconds{customer_id="c",profile_id="a"} 55140"#,
                r#"avepoint_scan_profile_created_timestamp_seconds{customer_id="c",profile_id="a"} 1757560754"#,
                r#"avepoint_scan_profile_containers{customer_id="c",profile_id="a",object_type="onedrive"} 1"#,
                r#"avepoint_scan_profile_containers{customer_id="c",profile_id="a",object_type="other"} 3"#,
                r#"avepoint_scan_profile_out_of_policy_notification_enabled{customer_id="c",profile_id="a"} 1"#,
                r#"avepoint_scan_profile_out_of_policy_notification_enabled{customer_id="c",profile_id="off"} 0"#,
                r#"avepoint_scan_profile_inplace_archived_mailboxes_enabled{customer_id="c",profile_id="a"} 0"#,
                r#"avepoint_scan_profile_inplace_archived_mailboxes_enabled{customer_id="c",profile_id="off"} 1"#,
                r#"avepoint_scan_profile_ignore_locked_sites_enabled{customer_id="c",profile_id="a"} 0"#,
                r#"avepoint_scan_profile_ignore_locked_sites_enabled{customer_id="c",profile_id="off"} 1"#,
            ]
        );
        assert!(text.contains(
            "# TYPE avepoint_scan_profile_daily_scan_time_seconds gauge\n# UNIT avepoint_scan_profile_daily_scan_time_seconds seconds\n"
        ));
    }

    #[test]
    fn nothing_without_details() {
        let text: String =
            DetailFamilies::new(&snapshot(&["a"]), None, Format::PrometheusText).collect();
        assert_eq!(text, "");
    }
}
