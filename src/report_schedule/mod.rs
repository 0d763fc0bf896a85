//! `collectors.scan_profiles.refresh: report_schedule`: each profile's
//! daily report read in the background when something can have changed
//! ([`plan`]), and served from memory, so a scrape never waits for
//! AvePoint and AvePoint sees a handful of calls per profile per day
//! instead of one per scrape.
//!
//! The reader is one [`BackgroundReader`] of the [`crate::refresher`]: its
//! permit share, panic isolation and back-off are those of every other
//! background reader. Every tick it reads the profiles whose planned read
//! has come (new profiles at once: at start, and as soon as discovery or a
//! reload adds them), starting reads for at most [`RUN_BUDGET`] so a start
//! with thousands of profiles publishes as it goes.
//!
//! A failed read follows the backup collectors' rule: the profile is down
//! (`avepoint_scan_profile_up 0`, none of its other series) until a read
//! works, retried on [`plan::after_failure`]'s growing delay.
//!
//! Imports `config`, `avepoint`, `discovery` (the targets),
//! `profile_details` (whether a profile scans daily) and `refresher`;
//! never `collect` or above.

pub mod plan;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::avepoint::{FailureKind, ScanProfileReport};
use crate::config::{ProfileTarget, ReportSchedule};
use crate::discovery::TargetSource;
use crate::profile_details::ProfileDetailsState;
use crate::refresher::{BackgroundReader, Cause, Permits, Refresher, Schedule, Task};
use plan::{LastReport, Reason};

/// How long one run keeps starting reads before it publishes what it has.
pub const RUN_BUDGET: Duration = Duration::from_secs(1);

/// Upper bounds (seconds) of `avepoint_scan_report_read_delay_seconds`:
/// from a poll that caught the report at once to a `max_age` read.
pub const READ_DELAY_BUCKETS: [f64; 12] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
];

/// Why a read failed (plain data, safe to show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// AvePoint's request id, when a response carried one.
    pub request_id: Option<String>,
    /// The full error text.
    pub message: String,
}

/// One profile as the reader knows it.
#[derive(Debug, Clone)]
pub struct ProfileReads {
    /// The last read's report, or why it failed.
    pub outcome: Result<ScanProfileReport, ReadFailure>,
    /// How long the last read took.
    pub fetch_duration: Duration,
    /// When the last read ended.
    pub read_at: SystemTime,
    /// When the last successful read ended.
    pub last_success: Option<SystemTime>,
    /// When the next read is planned, and why then.
    pub next_read: SystemTime,
    /// Why the next read is planned when it is.
    pub reason: Reason,
    /// Failed reads in a row.
    pub failures: u32,
    /// What the plan remembers of the last good report.
    pub last: Option<LastReport>,
}

/// The delay from a report's `lastUpdateTime` to the read that first saw
/// it, as histogram data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadDelays {
    /// Per bucket of [`READ_DELAY_BUCKETS`] (not cumulative), then the
    /// delays above the last bound.
    pub buckets: [u64; READ_DELAY_BUCKETS.len() + 1],
    /// Sum of the observed delays, seconds.
    pub sum: f64,
}

impl ReadDelays {
    fn observe(&mut self, seconds: f64) {
        let bucket = READ_DELAY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(READ_DELAY_BUCKETS.len());
        self.buckets[bucket] += 1;
        self.sum += seconds;
    }

    /// Reports observed.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// What the reader publishes after each run.
#[derive(Debug, Clone, Default)]
pub struct ReportsState {
    /// Every current target read at least once.
    pub profiles: HashMap<ProfileTarget, Arc<ProfileReads>>,
    /// New reports seen, by how long after their `lastUpdateTime`.
    pub read_delays: ReadDelays,
}

/// A running reader; stops when dropped (a reload replaces it).
#[derive(Debug)]
pub struct ScheduledReports {
    /// Always the latest state.
    pub state: watch::Receiver<Arc<ReportsState>>,
    /// The plan's settings (for the encoders: `max_age`).
    pub settings: ReportSchedule,
    _task: Task,
}

struct Reader<F> {
    fetch: F,
    targets: TargetSource,
    details: Option<watch::Receiver<Arc<ProfileDetailsState>>>,
    settings: ReportSchedule,
}

impl<F, Fut> BackgroundReader for Reader<F>
where
    F: Fn(ProfileTarget) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ScanProfileReport, ReadFailure>> + Send + 'static,
{
    type State = ReportsState;

    fn name(&self) -> &'static str {
        "scan_reports"
    }

    /// Often enough that a planned read is at most a tenth of a
    /// `poll_interval` late.
    fn schedule(&self) -> Schedule {
        let tick = (self.settings.poll_interval / 10)
            .clamp(Duration::from_millis(100), Duration::from_secs(10));
        Schedule::every(tick)
    }

    async fn input_changed(&mut self) {
        if !self.targets.changed().await {
            self.targets = TargetSource::Static(self.targets.current());
        }
    }

    async fn run(
        &mut self,
        _cause: Cause,
        previous: Arc<ReportsState>,
        permits: Permits,
    ) -> Option<ReportsState> {
        let targets = self.targets.current();
        let now = SystemTime::now();
        let due: Vec<ProfileTarget> = targets
            .iter()
            .filter(|target| {
                previous
                    .profiles
                    .get(*target)
                    .is_none_or(|reads| reads.next_read <= now)
            })
            .cloned()
            .collect();
        let gone = previous
            .profiles
            .keys()
            .any(|target| !targets.contains(target));
        if due.is_empty() && !gone {
            return None;
        }
        let results = self.read(due, &permits).await;
        let mut next = ReportsState {
            profiles: targets
                .iter()
                .filter_map(|t| Some((t.clone(), Arc::clone(previous.profiles.get(t)?))))
                .collect(),
            read_delays: previous.read_delays.clone(),
        };
        let details = self.details.as_ref().map(|d| Arc::clone(&d.borrow()));
        for (target, outcome, fetch_duration) in results {
            let daily_scan_off = details.as_ref().is_some_and(|details| {
                details
                    .profiles
                    .get(&target)
                    .is_some_and(|settings| settings.daily_scan_time.is_none())
            });
            let earlier = next.profiles.get(&target).map(Arc::clone);
            let reads = self.record(
                &target,
                earlier.as_deref(),
                outcome,
                fetch_duration,
                daily_scan_off,
                &mut next.read_delays,
            );
            next.profiles.insert(target, Arc::new(reads));
        }
        Some(next)
    }
}

impl<F, Fut> Reader<F>
where
    F: Fn(ProfileTarget) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ScanProfileReport, ReadFailure>> + Send + 'static,
{
    /// Read `due` within the permit share, starting reads for at most
    /// [`RUN_BUDGET`]; the rest stay due for the next run.
    async fn read(
        &self,
        due: Vec<ProfileTarget>,
        permits: &Permits,
    ) -> Vec<(
        ProfileTarget,
        Result<ScanProfileReport, ReadFailure>,
        Duration,
    )> {
        let started = Instant::now();
        stream::iter(due)
            .take_while(|_| std::future::ready(started.elapsed() < RUN_BUDGET))
            .map(|target| async move {
                let read_started = Instant::now();
                let outcome = permits.hold((self.fetch)(target.clone())).await;
                (target, outcome, read_started.elapsed())
            })
            .buffer_unordered(permits.available().max(1))
            .collect()
            .await
    }

    /// A profile after one read at `now`: its outcome, and its next read.
    fn record(
        &self,
        target: &ProfileTarget,
        earlier: Option<&ProfileReads>,
        outcome: Result<ScanProfileReport, ReadFailure>,
        fetch_duration: Duration,
        daily_scan_off: bool,
        delays: &mut ReadDelays,
    ) -> ProfileReads {
        let now = SystemTime::now();
        let last = earlier.and_then(|reads| reads.last);
        let report = match &outcome {
            Ok(report) => report,
            Err(_) => {
                let failures = earlier.map_or(0, |reads| reads.failures) + 1;
                return ProfileReads {
                    outcome,
                    fetch_duration,
                    read_at: now,
                    last_success: earlier.and_then(|reads| reads.last_success),
                    next_read: plan::after_failure(now, failures, &self.settings),
                    reason: Reason::Retry,
                    failures,
                    last,
                };
            }
        };
        let last_update = report.last_update_time.map(SystemTime::from);
        // A report seen before (not at this reader's first read of the
        // profile) whose lastUpdateTime moved: how long it waited for us.
        if let (Some(previous), Some(at)) = (last, last_update)
            && previous.last_update.is_some_and(|before| at > before)
        {
            delays.observe(now.duration_since(at).unwrap_or_default().as_secs_f64());
        }
        // Unfinished since the first read that saw this scan not over (a
        // new lastUpdateTime starts the count anew).
        let unfinished_since = plan::unfinished(report.last_scan_status).then(|| match last {
            Some(last) if last.last_update == last_update => last.unfinished_since.unwrap_or(now),
            _ => now,
        });
        let seen = LastReport {
            last_update,
            status: report.last_scan_status,
            unfinished_since,
        };
        let (next_read, reason) = plan::after_success(
            now,
            &seen,
            daily_scan_off,
            plan::spread(target),
            &self.settings,
        );
        ProfileReads {
            outcome,
            fetch_duration,
            read_at: now,
            last_success: Some(now),
            next_read,
            reason,
            failures: 0,
            last: Some(seen),
        }
    }
}

/// Start reading the reports of `targets` on their plans on `refresher`.
/// `fetch` reads one profile's report (holding one of the refresher's
/// permits); `details` tells which profiles do not scan daily.
/// `previous` (a reload's predecessor) keeps every plan of a profile that
/// is still a target: a reload does not read everything again.
pub fn spawn<F, Fut>(
    refresher: &Refresher,
    fetch: F,
    targets: TargetSource,
    details: Option<watch::Receiver<Arc<ProfileDetailsState>>>,
    settings: ReportSchedule,
    previous: Option<&ReportsState>,
) -> ScheduledReports
where
    F: Fn(ProfileTarget) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ScanProfileReport, ReadFailure>> + Send + 'static,
{
    let reader = Reader {
        fetch,
        targets,
        details,
        settings,
    };
    let (state, task) = refresher.spawn(reader, previous.cloned().unwrap_or_default());
    ScheduledReports {
        state,
        settings,
        _task: task,
    }
}
