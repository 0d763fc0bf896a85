//! The per-profile families, written straight from a [`Snapshot`] in
//! chunks, so a scrape never holds the whole exposition in memory.
//!
//! Hand-written rather than through prometheus-client's encoder: at 10,000
//! profiles these are 240,000 series (150,000 of them the status state set),
//! and the generic per-label encoding took three times the 15 ms budget and
//! one 38 MB string per scrape (BENCHMARKS.md). Here each profile's id
//! labels are escaped once per line with a fast path for the common case
//! (`lines.rs`), and output goes out in chunks of about `CHUNK_BYTES`. The same tests
//! check these lines as everything else: exact values, promtool and the
//! reference parsers of both formats.

use std::sync::Arc;

use super::Format;
use super::lines::{CHUNK_BYTES, line_float, line_int, open_series, push_escaped};
use crate::avepoint::ScanStatus;
use crate::avepoint::model::{ScanProfileReport, scan_mode_label};
use crate::collect::{ProfileResult, Snapshot};
use crate::config::LastStatusState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
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

const FAMILIES: [Family; 13] = [
    Family::Up,
    Family::FetchDuration,
    Family::Info,
    Family::NewRegistered,
    Family::Moved,
    Family::Removed,
    Family::LastStatus,
    Family::State,
    Family::LastUpdate,
    Family::Modified,
    Family::CacheAge,
    Family::LastRead,
    Family::NextRead,
];

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Up => "avepoint_scan_profile_up",
            Family::FetchDuration => "avepoint_scan_profile_fetch_duration_seconds",
            Family::Info => "avepoint_scan_profile_info",
            Family::NewRegistered => "avepoint_scan_new_registered_content",
            Family::Moved => "avepoint_scan_moved_to_another_container",
            Family::Removed => "avepoint_scan_removed_from_m365_or_out_of_policy",
            Family::LastStatus => "avepoint_scan_last_status",
            Family::State => "avepoint_scan_last_status_state",
            Family::LastUpdate => "avepoint_scan_last_update_timestamp_seconds",
            Family::Modified => "avepoint_scan_profile_modified_timestamp_seconds",
            Family::CacheAge => "avepoint_scan_profile_cache_age_seconds",
            Family::LastRead => "avepoint_scan_profile_last_read_timestamp_seconds",
            Family::NextRead => "avepoint_scan_profile_next_read_timestamp_seconds",
        }
    }

    fn help(self, states: LastStatusState) -> &'static str {
        match self {
            Family::State if states == LastStatusState::Current => {
                "1 for the documented state of the profile's last scan; only that state's series is exported (metrics.last_status_state: current), none for an undocumented status code."
            }
            Family::Up => {
                "1 when this scan profile's report was fetched in this scrape (or, with avepoint.cache_ttl set, served from a fetch younger than the TTL), 0 when the fetch failed (its other series are then absent)."
            }
            Family::FetchDuration => {
                "Time taken to fetch this scan profile's report in this scrape."
            }
            Family::Info => {
                "Scan profile metadata; constant 1. scan_mode is express, advanced or unknown."
            }
            Family::NewRegistered => {
                "Objects newly registered in the profile's latest daily report (newRegisteredContentCount)."
            }
            Family::Moved => {
                "Objects moved to another container in the profile's latest daily report (movedToAnotherContainer)."
            }
            Family::Removed => {
                "Objects removed from Microsoft 365 or out of policy in the profile's latest daily report (removedFromMicrosoft365OrOutofPolicy)."
            }
            Family::LastStatus => LAST_STATUS_HELP,
            Family::State => {
                "1 for the documented state of the profile's last scan, 0 for the others; all 0 for an undocumented status code."
            }
            Family::LastUpdate => {
                "When the profile's latest daily report was generated (lastUpdateTime), as a Unix timestamp."
            }
            Family::Modified => {
                "When the scan profile was last modified (modifiedTime), as a Unix timestamp."
            }
            Family::CacheAge => {
                "Age of the report served for this profile: 0 when fetched in this scrape, more when served from the cache (avepoint.cache_ttl) or from the last scheduled read (refresh: report_schedule). Only present in those modes."
            }
            Family::LastRead => {
                "When this profile's report was last read successfully (refresh: report_schedule), as a Unix timestamp."
            }
            Family::NextRead => {
                "When this profile's next read is planned (refresh: report_schedule), as a Unix timestamp."
            }
        }
    }

    fn unit(self) -> Option<&'static str> {
        match self {
            Family::FetchDuration
            | Family::LastUpdate
            | Family::Modified
            | Family::CacheAge
            | Family::LastRead
            | Family::NextRead => Some("seconds"),
            _ => None,
        }
    }

    /// Whether this profile has series in this family: failed profiles
    /// only have `up` and the fetch duration, reports without a timestamp
    /// lack that timestamp's series, and `states` decides the state set's.
    fn has_rows(self, result: &ProfileResult, states: LastStatusState) -> bool {
        match (self, &result.outcome) {
            (Family::Up | Family::FetchDuration, _) => true,
            (Family::CacheAge, _) => result.cache_age.is_some(),
            (Family::LastRead, _) => result.read.is_some_and(|read| read.last_success.is_some()),
            (Family::NextRead, _) => result.read.is_some(),
            (_, Err(_)) => false,
            (Family::State, Ok(report)) => match states {
                LastStatusState::All => true,
                LastStatusState::Current => {
                    ScanStatus::from_code(report.last_scan_status).is_some()
                }
                LastStatusState::None => false,
            },
            (Family::LastUpdate, Ok(report)) => report.last_update_time.is_some(),
            (Family::Modified, Ok(report)) => report.modified_time.is_some(),
            (_, Ok(_)) => true,
        }
    }

    fn write_rows(self, out: &mut String, result: &ProfileResult, states: LastStatusState) {
        let name = self.name();
        let report = result.outcome.as_ref().ok();
        match (self, report) {
            (Family::Up, _) => line_int(out, name, &result.target, i64::from(report.is_some())),
            (Family::FetchDuration, _) => line_float(
                out,
                name,
                &result.target,
                result.fetch_duration.as_secs_f64(),
            ),
            (Family::CacheAge, _) => {
                if let Some(age) = result.cache_age {
                    line_float(out, name, &result.target, age.as_secs_f64());
                }
            }
            (Family::LastRead, _) => {
                if let Some(at) = result.read.and_then(|read| read.last_success) {
                    line_float(out, name, &result.target, system_seconds(at));
                }
            }
            (Family::NextRead, _) => {
                if let Some(read) = result.read {
                    line_float(out, name, &result.target, system_seconds(read.next_read));
                }
            }
            (_, None) => {}
            (Family::Info, Some(report)) => info_line(out, result, report),
            (Family::NewRegistered, Some(report)) => line_int(
                out,
                name,
                &result.target,
                report.new_registered_content_count,
            ),
            (Family::Moved, Some(report)) => {
                line_int(out, name, &result.target, report.moved_to_another_container)
            }
            (Family::Removed, Some(report)) => line_int(
                out,
                name,
                &result.target,
                report.removed_from_m365_or_out_of_policy,
            ),
            (Family::LastStatus, Some(report)) => {
                line_int(out, name, &result.target, report.last_scan_status)
            }
            (Family::State, Some(report)) => state_lines(out, result, report, states),
            (Family::LastUpdate, Some(report)) => {
                if let Some(at) = report.last_update_time {
                    line_float(out, name, &result.target, unix_seconds(at));
                }
            }
            (Family::Modified, Some(report)) => {
                if let Some(at) = report.modified_time {
                    line_float(out, name, &result.target, unix_seconds(at));
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
#[derive(Debug)]
pub struct ProfileFamilies {
    snapshot: Arc<Snapshot>,
    format: Format,
    states: LastStatusState,
    family: usize,
    next_profile: usize,
}

impl ProfileFamilies {
    /// Chunks of the per-profile families of `snapshot` in `format`, with
    /// the whole status state set (`metrics.last_status_state: all`).
    pub fn new(snapshot: Arc<Snapshot>, format: Format) -> Self {
        Self {
            snapshot,
            format,
            states: LastStatusState::All,
            family: 0,
            next_profile: 0,
        }
    }

    /// The same, with `states` deciding which series of
    /// `avepoint_scan_last_status_state` each profile gets.
    pub fn with_last_status_state(mut self, states: LastStatusState) -> Self {
        self.states = states;
        self
    }

    fn write_header(&self, out: &mut String, family: Family) {
        let name = family.name();
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        out.push_str(family.help(self.states));
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push_str(" gauge\n");
        if let (Format::OpenMetrics, Some(unit)) = (self.format, family.unit()) {
            out.push_str("# UNIT ");
            out.push_str(name);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
    }
}

impl Iterator for ProfileFamilies {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let profiles = &self.snapshot.profiles;
        let mut out = String::with_capacity(CHUNK_BYTES + 4096);
        while let Some(&family) = FAMILIES.get(self.family) {
            if self.next_profile == 0 {
                if !profiles
                    .iter()
                    .any(|result| family.has_rows(result, self.states))
                {
                    self.family += 1;
                    continue;
                }
                self.write_header(&mut out, family);
            }
            while let Some(result) = profiles.get(self.next_profile) {
                family.write_rows(&mut out, result, self.states);
                self.next_profile += 1;
                if out.len() >= CHUNK_BYTES {
                    return Some(out);
                }
            }
            self.family += 1;
            self.next_profile = 0;
        }
        (!out.is_empty()).then_some(out)
    }
}

fn info_line(out: &mut String, result: &ProfileResult, report: &ScanProfileReport) {
    open_series(out, Family::Info.name(), &result.target);
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
    result: &ProfileResult,
    report: &ScanProfileReport,
    states: LastStatusState,
) {
    let current = ScanStatus::from_code(report.last_scan_status);
    if states == LastStatusState::None {
        return;
    }
    // Fifteen lines share everything up to the state's value: escape once.
    let mut prefix = String::with_capacity(160);
    open_series(&mut prefix, Family::State.name(), &result.target);
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
mod tests {
    use super::*;

    use crate::collect::FetchError;
    use crate::config::ProfileTarget;
    use std::time::Duration;

    fn result(profile: &str, outcome: Result<ScanProfileReport, FetchError>) -> ProfileResult {
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

    fn report() -> ScanProfileReport {
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
                Family::Up.help(LastStatusState::All)
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
