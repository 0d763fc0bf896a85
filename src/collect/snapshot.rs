//! What a scrape encodes: one [`ProfileResult`] per target in a
//! [`Snapshot`], plain data, from a round or (with `refresh:
//! report_schedule`) from the scheduled reader's memory.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::avepoint::{ApiError, FailureKind, ScanProfileReport};
use crate::config::ProfileTarget;
use crate::report_schedule::{ReadDelays, ReadFailure, ReportsState};

/// Result of one collection round: one entry per target, in target order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// One result per target, shared: every caller of a round, late or
    /// not, holds pointers to the same results, never copies.
    pub profiles: Vec<Arc<ProfileResult>>,
    /// Wall time of the whole round.
    pub collect_duration: Duration,
    /// With `refresh: report_schedule`: the planner's figures (the results
    /// then come from memory, not from a round).
    pub schedule: Option<ScheduleFigures>,
}

/// What a scrape in `report_schedule` mode exports about the plan as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFigures {
    /// `max_age`: every profile is read at least this often.
    pub max_age: Duration,
    /// Delays from a report's `lastUpdateTime` to the read that saw it.
    pub read_delays: ReadDelays,
}

/// When a profile was read and will be (`report_schedule` mode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadTimes {
    /// The last successful read, if any.
    pub last_success: Option<SystemTime>,
    /// The next planned read.
    pub next_read: SystemTime,
}

/// One target's outcome in a round.
#[derive(Debug, Clone)]
pub struct ProfileResult {
    /// Which profile.
    pub target: ProfileTarget,
    /// How long its fetch took (up to the deadline).
    pub fetch_duration: Duration,
    /// The report, or why there is none.
    pub outcome: Result<ScanProfileReport, FetchError>,
    /// With `cache_ttl` on: how old the served report is (zero when
    /// fetched in this round); with `report_schedule`, the time since it
    /// was read; `None` otherwise.
    pub cache_age: Option<Duration>,
    /// With `report_schedule`: when it was read and will be.
    pub read: Option<ReadTimes>,
}

/// Why a profile has no report in this round (plain data, cheap to clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// What kind of failure; its label is an HTTP status code, `timeout`,
    /// `error`, `auth`, `backoff`, `invalid_body` or `deadline`.
    pub kind: FailureKind,
    /// AvePoint's request id, when a response carried one.
    pub request_id: Option<String>,
    /// The full error text, safe to show.
    pub message: String,
}

impl From<&ApiError> for FetchError {
    fn from(error: &ApiError) -> Self {
        FetchError {
            kind: error.kind(),
            request_id: error.request_id().map(str::to_owned),
            message: error.to_string(),
        }
    }
}

impl From<&ReadFailure> for FetchError {
    fn from(failure: &ReadFailure) -> Self {
        FetchError {
            kind: failure.kind,
            request_id: failure.request_id.clone(),
            message: failure.message.clone(),
        }
    }
}

/// Why a profile of a `report_schedule` scrape has no report yet.
const NOT_READ_YET: &str = "not read yet: with collectors.scan_profiles.refresh: report_schedule it is read in the background, and its first read has not ended";

impl Snapshot {
    /// `targets` as the scheduled reader last read them: no request, no
    /// wait (`refresh: report_schedule`).
    pub(super) fn from_memory(
        reports: &ReportsState,
        targets: &[ProfileTarget],
        max_age: Duration,
        started: Instant,
    ) -> Snapshot {
        let now = SystemTime::now();
        let profiles = targets
            .iter()
            .map(|target| {
                Arc::new(match reports.profiles.get(target) {
                    Some(reads) => ProfileResult {
                        target: target.clone(),
                        fetch_duration: reads.fetch_duration,
                        outcome: reads.outcome.clone().map_err(|failure| (&failure).into()),
                        cache_age: Some(now.duration_since(reads.read_at).unwrap_or_default()),
                        read: Some(ReadTimes {
                            last_success: reads.last_success,
                            next_read: reads.next_read,
                        }),
                    },
                    None => not_fetched(target.clone(), NOT_READ_YET),
                })
            })
            .collect();
        Snapshot {
            profiles,
            collect_duration: started.elapsed(),
            schedule: Some(ScheduleFigures {
                max_age,
                read_delays: reports.read_delays.clone(),
            }),
        }
    }

    /// How many profiles failed.
    pub fn failures(&self) -> usize {
        self.profiles.iter().filter(|p| p.outcome.is_err()).count()
    }
}

/// A target not fetched, for `why`.
pub(super) fn not_fetched(target: ProfileTarget, why: &str) -> ProfileResult {
    ProfileResult {
        target,
        fetch_duration: Duration::ZERO,
        outcome: Err(FetchError {
            kind: FailureKind::Deadline,
            request_id: None,
            message: why.into(),
        }),
        cache_age: None,
        read: None,
    }
}
