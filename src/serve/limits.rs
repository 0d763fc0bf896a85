//! How many connections a listener keeps open, from the process's
//! open-files limit, and how the accept loop backs off and logs when the
//! kernel refuses it a descriptor anyway.
//!
//! Pure functions and plain state, so the numbers are unit-tested.

use std::time::{Duration, Instant};

/// Descriptors always kept out of the connection cap, however low the limit:
/// the listeners, the runtime's epoll and event fds, stdio and the log, the
/// config, web config and certificate files (re-read on change), `/proc`
/// reads for the process metrics, and the demo's in-process simulator.
/// (A demo process after a scrape holds about 30.)
pub(super) const MIN_RESERVED_FILES: u64 = 64;

/// Share of the limit kept out of the cap for the connections to AvePoint
/// (`avepoint.concurrency` of them at once, plus the token and discovery
/// requests) when the limit is large: one part in this many.
pub(super) const RESERVED_SHARE: u64 = 4;

/// The most connections a derived cap allows, however high the limit (a
/// container's is often 1,048,576): a held connection costs about 12 KiB
/// (TLS, idle after the handshake) to 25 KiB (plain, kept alive after a
/// response), so 1024 of them about 25 MiB, within the Kubernetes
/// manifest's 64 MiB.
/// Prometheus needs one connection per scrape in progress, and an idle one
/// is shed when a new one needs its place.
pub(super) const MAX_DERIVED_CONNECTIONS: usize = 1024;

/// The fewest connections a derived cap allows, even when the limit leaves
/// less (such a process will also fail elsewhere; serving a few scrapes
/// still beats serving none).
pub(super) const MIN_DERIVED_CONNECTIONS: usize = 8;

/// The limit assumed when `/proc/self/limits` cannot be read: Linux's
/// usual soft default.
const ASSUMED_OPEN_FILES_LIMIT: u64 = 1024;

/// The process's soft open-files limit (`RLIMIT_NOFILE`), `u64::MAX` when
/// unlimited, `None` when it cannot be read.
pub(super) fn open_files_limit() -> Option<u64> {
    use procfs::process::{LimitValue, Process};
    let limits = Process::myself()
        .and_then(|process| process.limits())
        .ok()?;
    Some(match limits.max_open_files.soft_limit {
        LimitValue::Value(value) => value,
        LimitValue::Unlimited => u64::MAX,
    })
}

/// Descriptors kept out of the cap under `limit`: a quarter of it, at
/// least [`MIN_RESERVED_FILES`].
pub(super) fn reserved_files(limit: u64) -> u64 {
    (limit / RESERVED_SHARE).max(MIN_RESERVED_FILES)
}

/// The connection cap for an open-files limit (`None`: unknown, assume
/// 1024): the limit minus [`reserved_files`], clamped to
/// [`MIN_DERIVED_CONNECTIONS`]..=[`MAX_DERIVED_CONNECTIONS`]. 128 gives 64,
/// 1024 gives 768, 4096 and above give 1024.
pub(super) fn derived_max_connections(open_files_limit: Option<u64>) -> usize {
    let limit = open_files_limit.unwrap_or(ASSUMED_OPEN_FILES_LIMIT);
    let room = limit.saturating_sub(reserved_files(limit));
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(MIN_DERIVED_CONNECTIONS, MAX_DERIVED_CONNECTIONS)
}

/// The cap in force: `configured` (`--web.max-connections`) unless it is
/// 0, which means [`derived_max_connections`].
pub(super) fn max_connections(configured: usize, open_files_limit: Option<u64>) -> usize {
    if configured == 0 {
        derived_max_connections(open_files_limit)
    } else {
        configured
    }
}

/// Whether an explicit cap leaves fewer descriptors than the reserve needs,
/// so that accepting could fail with "Too many open files" (worth a warning
/// at start; the cap is still honoured, the operator may know better).
pub(super) fn exceeds_open_files_limit(configured: usize, open_files_limit: Option<u64>) -> bool {
    let Some(limit) = open_files_limit else {
        return false;
    };
    configured as u64 > limit.saturating_sub(reserved_files(limit))
}

/// First pause after a failed accept.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between accepts while they keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one log line about failing accepts per this interval.
pub(super) const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Failed accepts (EMFILE, ENFILE, ENOBUFS, ENOMEM): the listener stays
/// readable, so retrying at once would spin a core and log a line per try.
/// Pauses double from 10 ms to 1 s while failures continue; one line per
/// [`ACCEPT_ERROR_LOG_INTERVAL`] carries the count since the last one, and
/// the first success after such a line says so once. (At the descriptor
/// limit, accepts often fail and succeed in turn, one shed connection
/// each time: that is still at most two lines per interval.)
#[derive(Debug)]
pub(super) struct AcceptErrors {
    backoff: Duration,
    last_logged: Option<Instant>,
    /// Failures since the last line.
    unlogged: u64,
    /// A failure line was logged and no success line since.
    reported: bool,
}

/// What to do about one failed accept.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AcceptFailure {
    /// How long to pause before the next accept.
    pub pause: Duration,
    /// `Some(n)`: log a line now, for the `n` failures since the last line
    /// (this one included).
    pub log: Option<u64>,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        Self {
            backoff: FIRST_BACKOFF,
            last_logged: None,
            unlogged: 0,
            reported: false,
        }
    }
}

impl AcceptErrors {
    /// An accept failed at `now`.
    pub(super) fn failed(&mut self, now: Instant) -> AcceptFailure {
        self.unlogged += 1;
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let due = self
            .last_logged
            .is_none_or(|last| now.duration_since(last) >= ACCEPT_ERROR_LOG_INTERVAL);
        let log = due.then(|| {
            self.last_logged = Some(now);
            self.reported = true;
            std::mem::take(&mut self.unlogged)
        });
        AcceptFailure { pause, log }
    }

    /// An accept succeeded: the pause starts small again. `Some(n)` when a
    /// failure line was logged since the last success line: log that
    /// accepting works again, `n` failures after that line.
    pub(super) fn succeeded(&mut self) -> Option<u64> {
        self.backoff = FIRST_BACKOFF;
        std::mem::take(&mut self.reported).then_some(self.unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_limit_minus_a_reserve_within_bounds() {
        // The reproduction: 128 leaves 64 for connections.
        assert_eq!(derived_max_connections(Some(128)), 64);
        // Linux's usual soft limit: a quarter stays for AvePoint and files.
        assert_eq!(derived_max_connections(Some(1024)), 768);
        assert_eq!(derived_max_connections(None), 768);
        // The systemd unit's 8192 and a container's 1,048,576: the ceiling.
        assert_eq!(derived_max_connections(Some(8192)), 1024);
        assert_eq!(derived_max_connections(Some(1 << 20)), 1024);
        assert_eq!(derived_max_connections(Some(u64::MAX)), 1024);
        // Tiny limits still serve a few.
        assert_eq!(derived_max_connections(Some(100)), 36);
        assert_eq!(derived_max_connections(Some(64)), 8);
        assert_eq!(derived_max_connections(Some(0)), 8);
    }

    #[test]
    fn an_explicit_cap_wins_and_0_means_derived() {
        assert_eq!(max_connections(0, Some(128)), 64);
        assert_eq!(max_connections(5, Some(128)), 5);
        assert_eq!(max_connections(5000, Some(128)), 5000);
        assert!(exceeds_open_files_limit(65, Some(128)));
        assert!(!exceeds_open_files_limit(64, Some(128)));
        assert!(!exceeds_open_files_limit(100_000, None));
    }

    #[test]
    fn failing_accepts_back_off_and_log_once_per_interval_with_a_count() {
        let mut errors = AcceptErrors::default();
        let start = Instant::now();
        let first = errors.failed(start);
        assert_eq!(
            first,
            AcceptFailure {
                pause: Duration::from_millis(10),
                log: Some(1)
            }
        );
        let mut pauses = Vec::new();
        for step in 1..=9 {
            let failure = errors.failed(start + Duration::from_secs(step));
            assert_eq!(failure.log, None, "step {step}");
            pauses.push(failure.pause.as_millis());
        }
        assert_eq!(pauses, [20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        // Ten seconds after the last line: one line for the nine since, and this one.
        let later = errors.failed(start + ACCEPT_ERROR_LOG_INTERVAL);
        assert_eq!(later.log, Some(10));
        // One line when accepting works again; the pause starts small again.
        assert_eq!(errors.succeeded(), Some(0));
        assert_eq!(errors.succeeded(), None);
        let again = errors.failed(start + ACCEPT_ERROR_LOG_INTERVAL + Duration::from_secs(1));
        assert_eq!(again.pause, Duration::from_millis(10));
        assert_eq!(
            again.log, None,
            "still within the interval of the last line"
        );
    }

    #[test]
    fn failing_and_succeeding_in_turn_logs_two_lines_per_interval() {
        let mut errors = AcceptErrors::default();
        let start = Instant::now();
        let mut lines = 0;
        for step in 0..1000 {
            let now = start + Duration::from_millis(10 * step);
            lines += u64::from(errors.failed(now).log.is_some());
            lines += u64::from(errors.succeeded().is_some());
        }
        // Ten seconds of it: a failure line and a recovery line.
        assert_eq!(lines, 2);
        let now = start + ACCEPT_ERROR_LOG_INTERVAL;
        assert_eq!(errors.failed(now).log, Some(1000), "the count of all since");
        assert_eq!(errors.succeeded(), Some(0));
    }

    #[test]
    fn the_limit_is_read_from_proc() {
        // Whatever it is here, it is a number.
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
    }
}
