//! The per-profile families, written straight from a [`Snapshot`] in
//! chunks, so the encoder never builds the whole exposition at once (what
//! a response then holds of it is `shared.rs`'s business).
//!
//! Hand-written rather than through prometheus-client's encoder: at 10,000
//! profiles these are 240,000 series (150,000 of them the status state set),
//! and the generic per-label encoding took three times the 15 ms budget and
//! one 38 MB string per scrape (BENCHMARKS.md). Here each profile's id
//! labels are escaped once per line with a fast path for the common case,
//! and output goes out in chunks of about
//! [`CHUNK_BYTES`](super::streamed::CHUNK_BYTES). This file declares the
//! families; `streamed.rs` walks them and `lines.rs` writes the lines.
//! The same tests check these lines as everything else: exact values, promtool and the
//! reference parsers of both formats.

use std::sync::Arc;

use super::Format;
use super::lines::{line_float, line_int, open_series, push_escaped};
use super::streamed::{Streamed, StreamedFamily};
use crate::avepoint::ScanStatus;
use crate::avepoint::model::{ScanProfileReport, scan_mode_label};
use crate::collect::{ProfileResult, Snapshot};
use crate::config::{LastStatusState, ProfileTarget};

/// The per-profile families, in exposition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProfileFamily {
    Up,
    FetchDuration,
    Info,
    NewRegistered,
    Moved,
    Removed,
    LastStatus,
    State,
    LastUpdate,
    Modified,
    CacheAge,
    LastRead,
    NextRead,
}

impl StreamedFamily for ProfileFamily {
    type Source = Arc<Snapshot>;
    type Row = Arc<ProfileResult>;
    type Context = LastStatusState;

    const ALL: &'static [Self] = &[
        Self::Up,
        Self::FetchDuration,
        Self::Info,
        Self::NewRegistered,
        Self::Moved,
        Self::Removed,
        Self::LastStatus,
        Self::State,
        Self::LastUpdate,
        Self::Modified,
        Self::CacheAge,
        Self::LastRead,
        Self::NextRead,
    ];

    fn rows(snapshot: &Arc<Snapshot>) -> &[Arc<ProfileResult>] {
        &snapshot.profiles
    }

    fn target(result: &Arc<ProfileResult>) -> &ProfileTarget {
        &result.target
    }

    fn name(self) -> &'static str {
        match self {
            ProfileFamily::Up => "avepoint_scan_profile_up",
            ProfileFamily::FetchDuration => "avepoint_scan_profile_fetch_duration_seconds",
            ProfileFamily::Info => "avepoint_scan_profile_info",
            ProfileFamily::NewRegistered => "avepoint_scan_new_registered_content",
            ProfileFamily::Moved => "avepoint_scan_moved_to_another_container",
            ProfileFamily::Removed => "avepoint_scan_removed_from_m365_or_out_of_policy",
            ProfileFamily::LastStatus => "avepoint_scan_last_status",
            ProfileFamily::State => "avepoint_scan_last_status_state",
            ProfileFamily::LastUpdate => "avepoint_scan_last_update_timestamp_seconds",
            ProfileFamily::Modified => "avepoint_scan_profile_modified_timestamp_seconds",
            ProfileFamily::CacheAge => "avepoint_scan_profile_cache_age_seconds",
            ProfileFamily::LastRead => "avepoint_scan_profile_last_read_timestamp_seconds",
            ProfileFamily::NextRead => "avepoint_scan_profile_next_read_timestamp_seconds",
        }
    }

    fn help(self, states: LastStatusState) -> &'static str {
        match self {
            ProfileFamily::State if states == LastStatusState::Current => {
                "1 for the documented state of the profile's last scan; only that state's series is exported (metrics.last_status_state: current), none for an undocumented status code."
            }
            ProfileFamily::Up => {
                "1 when this scan profile's report was fetched in this scrape (or, with avepoint.cache_ttl set, served from a fetch younger than the TTL), 0 when the fetch failed (its other series are then absent)."
            }
            ProfileFamily::FetchDuration => {
                "Time taken to fetch this scan profile's report in this scrape."
            }
            ProfileFamily::Info => {
                "Scan profile metadata; constant 1. scan_mode is express, advanced or unknown."
            }
            ProfileFamily::NewRegistered => {
                "Objects newly registered in the profile's latest daily report (newRegisteredContentCount)."
            }
            ProfileFamily::Moved => {
                "Objects moved to another container in the profile's latest daily report (movedToAnotherContainer)."
            }
            ProfileFamily::Removed => {
                "Objects removed from Microsoft 365 or out of policy in the profile's latest daily report (removedFromMicrosoft365OrOutofPolicy)."
            }
            ProfileFamily::LastStatus => LAST_STATUS_HELP,
            ProfileFamily::State => {
                "1 for the documented state of the profile's last scan, 0 for the others; all 0 for an undocumented status code."
            }
            ProfileFamily::LastUpdate => {
                "When the profile's latest daily report was generated (lastUpdateTime), as a Unix timestamp."
            }
            ProfileFamily::Modified => {
                "When the scan profile was last modified (modifiedTime), as a Unix timestamp."
            }
            ProfileFamily::CacheAge => {
                "Age of the report served for this profile: 0 when fetched in this scrape, more when served from the cache (avepoint.cache_ttl) or from the last scheduled read (refresh: report_schedule). Only present in those modes."
            }
            ProfileFamily::LastRead => {
                "When this profile's report was last read successfully (refresh: report_schedule), as a Unix timestamp."
            }
            ProfileFamily::NextRead => {
                "When this profile's next read is planned (refresh: report_schedule), as a Unix timestamp."
            }
        }
    }

    fn unit(self) -> Option<&'static str> {
        match self {
            ProfileFamily::FetchDuration
            | ProfileFamily::LastUpdate
            | ProfileFamily::Modified
            | ProfileFamily::CacheAge
            | ProfileFamily::LastRead
            | ProfileFamily::NextRead => Some("seconds"),
            _ => None,
        }
    }

    /// Whether this profile has series in this family: failed profiles
    /// only have `up` and the fetch duration, reports without a timestamp
    /// lack that timestamp's series, and `states` decides the state set's.
    fn has_rows(self, result: &Arc<ProfileResult>, states: LastStatusState) -> bool {
        match (self, &result.outcome) {
            (ProfileFamily::Up | ProfileFamily::FetchDuration, _) => true,
            (ProfileFamily::CacheAge, _) => result.cache_age.is_some(),
            (ProfileFamily::LastRead, _) => {
                result.read.is_some_and(|read| read.last_success.is_some())
            }
            (ProfileFamily::NextRead, _) => result.read.is_some(),
            (_, Err(_)) => false,
            (ProfileFamily::State, Ok(report)) => match states {
                LastStatusState::All => true,
                LastStatusState::Current => {
                    ScanStatus::from_code(report.last_scan_status).is_some()
                }
                LastStatusState::None => false,
            },
            (ProfileFamily::LastUpdate, Ok(report)) => report.last_update_time.is_some(),
            (ProfileFamily::Modified, Ok(report)) => report.modified_time.is_some(),
            (_, Ok(_)) => true,
        }
    }

    fn write_rows(
        self,
        out: &mut String,
        labels: &str,
        result: &Arc<ProfileResult>,
        states: LastStatusState,
    ) {
        let name = self.name();
        let report = result.outcome.as_ref().ok();
        match (self, report) {
            (ProfileFamily::Up, _) => line_int(out, name, labels, i64::from(report.is_some())),
            (ProfileFamily::FetchDuration, _) => {
                line_float(out, name, labels, None, result.fetch_duration.as_secs_f64())
            }
            (ProfileFamily::CacheAge, _) => {
                if let Some(age) = result.cache_age {
                    line_float(out, name, labels, None, age.as_secs_f64());
                }
            }
            (ProfileFamily::LastRead, _) => {
                if let Some(at) = result.read.and_then(|read| read.last_success) {
                    line_float(out, name, labels, None, system_seconds(at));
                }
            }
            (ProfileFamily::NextRead, _) => {
                if let Some(read) = result.read {
                    line_float(out, name, labels, None, system_seconds(read.next_read));
                }
            }
            (_, None) => {}
            (ProfileFamily::Info, Some(report)) => info_line(out, labels, report),
            (ProfileFamily::NewRegistered, Some(report)) => {
                line_int(out, name, labels, report.new_registered_content_count)
            }
            (ProfileFamily::Moved, Some(report)) => {
                line_int(out, name, labels, report.moved_to_another_container)
            }
            (ProfileFamily::Removed, Some(report)) => {
                line_int(out, name, labels, report.removed_from_m365_or_out_of_policy)
            }
            (ProfileFamily::LastStatus, Some(report)) => {
                line_int(out, name, labels, report.last_scan_status)
            }
            (ProfileFamily::State, Some(report)) => state_lines(out, labels, report, states),
            (ProfileFamily::LastUpdate, Some(report)) => {
                if let Some(at) = report.last_update_time {
                    line_float(out, name, labels, None, unix_seconds(at));
                }
            }
            (ProfileFamily::Modified, Some(report)) => {
                if let Some(at) = report.modified_time {
                    line_float(out, name, labels, None, unix_seconds(at));
                }
            }
        }
    }
}

/// Help text of `avepoint_scan_last_status`: the documented codes.
pub(super) const LAST_STATUS_HELP: &str = "Raw lastScanStatus code of the profile's last scan: 0=None, 1=Running, 2=Finished, 3=Failed, 4=Finished with exception, 5=Skipped, 6=Pending, 7=Failed to start, 8=Canceled, 9=Rejected, 10=Stopped, 11=Not scanned, 12=Disabled, 13=Not started, 14=Wait for configuration. Other values are undocumented and exported as they come.";

fn system_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn unix_seconds(at: time::OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

/// The per-profile families of a snapshot, as an iterator of text chunks.
pub(super) type ProfileFamilies = Streamed<ProfileFamily>;

impl ProfileFamilies {
    /// Chunks of the per-profile families of `snapshot` in `format`, with
    /// the whole status state set (`metrics.last_status_state: all`).
    pub(super) fn new(snapshot: Arc<Snapshot>, format: Format) -> Self {
        Streamed::start(snapshot, format, LastStatusState::All)
    }

    /// The same, with `states` deciding which series of
    /// `avepoint_scan_last_status_state` each profile gets.
    pub(super) fn with_last_status_state(self, states: LastStatusState) -> Self {
        self.with_context(states)
    }
}

fn info_line(out: &mut String, labels: &str, report: &ScanProfileReport) {
    open_series(out, ProfileFamily::Info.name(), labels);
    out.push_str(",profile_name=\"");
    push_escaped(out, &report.profile_name);
    out.push_str("\",tenant_id=\"");
    push_escaped(out, &report.tenant_id);
    out.push_str("\",tenant_domain=\"");
    push_escaped(out, &report.tenant_domain);
    out.push_str("\",scan_mode=\"");
    out.push_str(scan_mode_label(report.scan_mode));
    out.push_str("\"} 1\n");
}

fn state_lines(
    out: &mut String,
    labels: &str,
    report: &ScanProfileReport,
    states: LastStatusState,
) {
    let current = ScanStatus::from_code(report.last_scan_status);
    if states == LastStatusState::None {
        return;
    }
    // Fifteen lines share everything up to the state's value.
    let mut prefix = String::with_capacity(160);
    open_series(&mut prefix, ProfileFamily::State.name(), labels);
    prefix.push_str(",state=\"");
    for status in ScanStatus::ALL {
        if states == LastStatusState::Current && current != Some(status) {
            continue;
        }
        out.push_str(&prefix);
        out.push_str(status.label());
        out.push_str(if current == Some(status) {
            "\"} 1\n"
        } else {
            "\"} 0\n"
        });
    }
}

#[cfg(test)]
pub(in crate::metrics) mod tests {
    use super::*;
    use crate::metrics::streamed::CHUNK_BYTES;

    use crate::collect::FetchError;
    use crate::config::ProfileTarget;
    use std::time::Duration;

    pub(in crate::metrics) fn result(
        profile: &str,
        outcome: Result<ScanProfileReport, FetchError>,
    ) -> ProfileResult {
        ProfileResult {
            target: ProfileTarget {
                customer_id: "c".into(),
                profile_id: profile.into(),
            },
            fetch_duration: Duration::from_millis(250),
            outcome,
            cache_age: None,
            read: None,
        }
    }

    pub(in crate::metrics) fn report() -> ScanProfileReport {
        ScanProfileReport {
            profile_name: "A \"q\" \\ b\nc".into(),
            profile_id: "p".into(),
            tenant_domain: "t".into(),
            tenant_id: "ti".into(),
            scan_mode: Some(0),
            modified_time: None,
            last_update_time: Some(time::OffsetDateTime::UNIX_EPOCH + Duration::from_millis(1500)),
            last_scan_status: 3,
            new_registered_content_count: 7,
            moved_to_another_container: 0,
            removed_from_m365_or_out_of_policy: -1,
            new_registered_content_listed: None,
            moved_to_another_container_listed: None,
            removed_from_m365_or_out_of_policy_listed: None,
        }
    }

    fn encode(profiles: Vec<ProfileResult>, format: Format) -> String {
        let snapshot = Arc::new(Snapshot {
            profiles: profiles.into_iter().map(Arc::new).collect(),
            collect_duration: Duration::ZERO,
            schedule: None,
        });
        ProfileFamilies::new(snapshot, format).collect()
    }

    #[test]
    fn writes_every_family_with_escaped_labels() {
        let failed = Err(FetchError {
            kind: crate::avepoint::FailureKind::Http(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
            request_id: None,
            message: "boom".into(),
        });
        let text = encode(
            vec![result("p", Ok(report())), result("q", failed)],
            Format::PrometheusText,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "# HELP avepoint_scan_profile_up {}",
                ProfileFamily::Up.help(LastStatusState::All)
            )
        );
        assert_eq!(lines[1], "# TYPE avepoint_scan_profile_up gauge");
        assert_eq!(
            lines[2],
            "avepoint_scan_profile_up{customer_id=\"c\",profile_id=\"p\"} 1"
        );
        assert_eq!(
            lines[3],
            "avepoint_scan_profile_up{customer_id=\"c\",profile_id=\"q\"} 0"
        );
        assert!(text.contains("avepoint_scan_profile_fetch_duration_seconds{customer_id=\"c\",profile_id=\"q\"} 0.25\n"));
        assert!(text.contains(
            "avepoint_scan_profile_info{customer_id=\"c\",profile_id=\"p\",profile_name=\"A \\\"q\\\" \\\\ b\\nc\",tenant_id=\"ti\",tenant_domain=\"t\",scan_mode=\"express\"} 1\n"
        ));
        assert!(text.contains("avepoint_scan_removed_from_m365_or_out_of_policy{customer_id=\"c\",profile_id=\"p\"} -1\n"));
        assert!(text.contains("avepoint_scan_last_status_state{customer_id=\"c\",profile_id=\"p\",state=\"failed\"} 1\n"));
        assert_eq!(text.matches("avepoint_scan_last_status_state{").count(), 15);
        assert!(text.contains(
            "avepoint_scan_last_update_timestamp_seconds{customer_id=\"c\",profile_id=\"p\"} 1.5\n"
        ));
        // No modifiedTime anywhere: the family is left out entirely.
        assert!(!text.contains("modified_timestamp"));
        assert!(!text.contains("profile_id=\"q\"} 7"));
        assert!(!text.contains("# UNIT"));
    }

    #[test]
    fn openmetrics_has_unit_lines() {
        let text = encode(vec![result("p", Ok(report()))], Format::OpenMetrics);
        assert!(text.contains(
            "# TYPE avepoint_scan_last_update_timestamp_seconds gauge\n# UNIT avepoint_scan_last_update_timestamp_seconds seconds\n"
        ));
    }

    #[test]
    fn large_snapshots_come_in_chunks_that_add_up() {
        let profiles: Vec<ProfileResult> = (0..2000)
            .map(|i| result(&format!("p{i}"), Ok(report())))
            .collect();
        let snapshot = Arc::new(Snapshot {
            profiles: profiles.into_iter().map(Arc::new).collect(),
            collect_duration: Duration::ZERO,
            schedule: None,
        });
        let chunks: Vec<String> =
            ProfileFamilies::new(Arc::clone(&snapshot), Format::PrometheusText).collect();
        assert!(chunks.len() > 5);
        assert!(chunks.iter().all(|chunk| chunk.len() < CHUNK_BYTES + 4096));
        let text: String = chunks.concat();
        assert_eq!(
            text.matches("avepoint_scan_last_status_state{").count(),
            2000 * 15
        );
        assert!(text.ends_with('\n'));
    }
}
