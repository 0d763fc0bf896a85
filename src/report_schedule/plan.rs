//! When to read one profile's report next (`collectors.scan_profiles.refresh:
//! report_schedule`): pure functions of what the last reads saw, the
//! settings and the clock, so every rule is tested without a network.
//!
//! The rules (README, "API economy"):
//!
//! - a scan that is not over (None, Running, Pending, Not started) is read
//!   again every `poll_interval`, for at most `report_grace` (a profile
//!   stuck in such a state is not polled forever);
//! - a finished report (any other documented code, and undocumented ones)
//!   makes the next one expected `report_interval` after its
//!   `lastUpdateTime`; from `poll_interval` before that (spread per profile
//!   over half a `poll_interval`) the profile is read every
//!   `poll_interval` until `lastUpdateTime` moves or `report_grace` has
//!   passed, then only on `max_age` until a read shows a new report;
//! - a profile whose daily scan is off (its details say so) is read only
//!   on `max_age`;
//! - every profile is read at least once per `max_age` (spread per profile
//!   over a tenth of it);
//! - a failed read is retried after a delay that doubles from
//!   [`FIRST_RETRY`], capped at `poll_interval`.

use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime};

use crate::avepoint::ScanStatus;
use crate::config::{ProfileTarget, ReportSchedule};

/// The first retry after a failed read; each further failure doubles it,
/// up to `poll_interval`.
pub const FIRST_RETRY: Duration = Duration::from_secs(60);

/// What the plan knows of a profile's last good read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastReport {
    /// The report's `lastUpdateTime`, if it had one.
    pub last_update: Option<SystemTime>,
    /// Its `lastScanStatus`.
    pub status: i64,
    /// Since when the reads have seen the scan not over (`None` when over).
    pub unfinished_since: Option<SystemTime>,
}

/// Why a read is planned when it is (the `reason` in debug logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Never read yet.
    First,
    /// The scan was not over at the last read.
    Unfinished,
    /// Polling around the expected report.
    Expected,
    /// Nothing expected before then: the `max_age` read.
    MaxAge,
    /// The last read failed.
    Retry,
}

/// Whether a scan in this state may still produce a new report soon.
pub fn unfinished(status: i64) -> bool {
    matches!(
        ScanStatus::from_code(status),
        Some(ScanStatus::None | ScanStatus::Running | ScanStatus::Pending | ScanStatus::NotStarted)
    )
}

/// A number in [0, 1) fixed per profile, so that reads of many profiles
/// planned for the same moment are spread, and each profile keeps its
/// place from one day to the next.
pub fn spread(target: &ProfileTarget) -> f64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The next read after a good one at `now` that saw `report`;
/// `daily_scan_off` when the profile's details say it does not scan daily.
pub fn after_success(
    now: SystemTime,
    report: &LastReport,
    daily_scan_off: bool,
    spread: f64,
    settings: &ReportSchedule,
) -> (SystemTime, Reason) {
    let max_age = now + settings.max_age.mul_f64(1.0 - spread / 10.0);
    if let Some(since) = report.unfinished_since
        && now < since + settings.report_grace
    {
        return (now + settings.poll_interval, Reason::Unfinished);
    }
    let expected = match report.last_update {
        Some(last_update) if !daily_scan_off => last_update + settings.report_interval,
        _ => return (max_age, Reason::MaxAge),
    };
    if now >= expected + settings.report_grace {
        // Late beyond the grace: the daily rhythm is broken; `max_age`
        // until a read shows a new report.
        return (max_age, Reason::MaxAge);
    }
    let window = expected
        .checked_sub(settings.poll_interval.mul_f64(1.0 - spread / 2.0))
        .unwrap_or(expected);
    if now < window {
        return if window < max_age {
            (window, Reason::Expected)
        } else {
            (max_age, Reason::MaxAge)
        };
    }
    (now + settings.poll_interval, Reason::Expected)
}

/// The next read after the `failures`-th failed read in a row at `now`.
pub fn after_failure(now: SystemTime, failures: u32, settings: &ReportSchedule) -> SystemTime {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    now + doubled.min(settings.poll_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn settings() -> ReportSchedule {
        ReportSchedule {
            poll_interval: 5 * MINUTE,
            max_age: 6 * HOUR,
            report_interval: 24 * HOUR,
            report_grace: 2 * HOUR,
        }
    }

    fn at(hours: f64) -> SystemTime {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        if hours >= 0.0 {
            base + HOUR.mul_f64(hours)
        } else {
            base - HOUR.mul_f64(-hours)
        }
    }

    fn finished(last_update_hours: f64) -> LastReport {
        LastReport {
            last_update: Some(at(last_update_hours)),
            status: 2,
            unfinished_since: None,
        }
    }

    #[test]
    fn a_fresh_report_waits_for_max_age_then_polls_shortly_before_the_next_one() {
        let s = settings();
        // Read right after the report: next is the max_age read.
        assert_eq!(
            after_success(at(0.1), &finished(0.0), false, 0.0, &s),
            (at(6.1), Reason::MaxAge)
        );
        // 20 h later the window (24 h - 5 min) comes before max_age.
        assert_eq!(
            after_success(at(20.0), &finished(0.0), false, 0.0, &s),
            (at(24.0) - 5 * MINUTE, Reason::Expected)
        );
        // Spread moves the window start by up to half a poll_interval.
        assert_eq!(
            after_success(at(20.0), &finished(0.0), false, 0.5, &s).0,
            at(24.0) - MINUTE.mul_f64(3.75)
        );
        // Inside the window: every poll_interval, up to the grace.
        assert_eq!(
            after_success(at(24.5), &finished(0.0), false, 0.0, &s),
            (at(24.5) + 5 * MINUTE, Reason::Expected)
        );
        // Past the grace: max_age only.
        assert_eq!(
            after_success(at(26.0), &finished(0.0), false, 0.0, &s),
            (at(32.0), Reason::MaxAge)
        );
    }

    #[test]
    fn an_unfinished_scan_is_polled_within_the_grace_and_a_daily_scan_off_only_on_max_age() {
        let s = settings();
        let running = LastReport {
            last_update: Some(at(-24.0)),
            status: 1,
            unfinished_since: Some(at(0.0)),
        };
        assert_eq!(
            after_success(at(1.0), &running, false, 0.0, &s),
            (at(1.0) + 5 * MINUTE, Reason::Unfinished)
        );
        // Stuck for longer than the grace (and its report long overdue).
        assert_eq!(
            after_success(at(3.0), &running, false, 0.0, &s),
            (at(9.0), Reason::MaxAge)
        );
        assert_eq!(
            after_success(at(20.0), &finished(0.0), true, 0.0, &s),
            (at(26.0), Reason::MaxAge)
        );
        assert!(unfinished(0) && unfinished(1) && unfinished(6) && unfinished(13));
        assert!(!unfinished(2) && !unfinished(3) && !unfinished(12) && !unfinished(99));
    }

    #[test]
    fn failed_reads_back_off_from_a_minute_up_to_poll_interval() {
        let s = settings();
        let delays: Vec<Duration> = (1..=5)
            .map(|n| {
                after_failure(at(0.0), n, &s)
                    .duration_since(at(0.0))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            delays,
            [MINUTE, 2 * MINUTE, 4 * MINUTE, 5 * MINUTE, 5 * MINUTE]
        );
    }

    #[test]
    fn spread_is_stable_and_in_range() {
        let target = ProfileTarget {
            customer_id: "c".into(),
            profile_id: "p".into(),
        };
        assert_eq!(spread(&target), spread(&target.clone()));
        assert!((0.0..1.0).contains(&spread(&target)));
    }
}
