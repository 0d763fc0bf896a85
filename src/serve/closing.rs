//! The closing policy of a connection, as pure functions of its phase and
//! the clock: when it is closed and why ([`deadline`]), and which one goes
//! at the cap ([`victim`]). Apart from the books of `connections.rs` so it
//! can be read, and tested, without a runtime.

use std::time::Duration;

use tokio::time::Instant;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No request in progress since `since` (its accept, or its last
    /// response when `served`).
    Waiting {
        /// Since when.
        since: Instant,
        /// Whether it has had a response (then the idle timeout applies).
        served: bool,
    },
    /// This many requests in progress (HTTP/2 runs several at once), each
    /// until its response's body is written.
    Busy(usize),
    /// Told to close; gone as soon as its task notices.
    Closing(Reason),
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// It waited past its deadline for a request.
    TimedOut,
    /// The cap was reached and it had waited longest.
    Shed,
    /// The server is shutting down and it had no request in progress.
    ShuttingDown,
    /// A response was not written within the write timeout: its client
    /// does not read.
    WriteTimedOut,
}

impl Reason {
    /// For the log.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Reason::TimedOut => "no complete request in time",
            Reason::Shed => "shed at the connection limit",
            Reason::ShuttingDown => "shutting down",
            Reason::WriteTimedOut => "response not written in time",
        }
    }
}

/// How long a connection must have waited before it may be shed at the
/// cap: a scraper's headers arrive milliseconds after its accept (a TLS
/// handshake over a slow link takes a few hundred), and a keep-alive
/// client may be sending its next request the moment its last response is
/// written; shedding either would reset a real scrape. The price: at the
/// cap, connections are accepted at most a cap's worth per grace.
pub const SHED_GRACE: Duration = Duration::from_secs(1);

/// The connection to shed at `now`: the one that has waited longest for a
/// complete request (the lowest id among equals, the older one), if it has
/// waited at least [`SHED_GRACE`]. Busy and closing connections are never
/// chosen.
pub(super) fn victim(phases: impl IntoIterator<Item = (u64, Phase)>, now: Instant) -> Option<u64> {
    phases
        .into_iter()
        .filter_map(|(id, phase)| match phase {
            Phase::Waiting { since, .. } if since + SHED_GRACE <= now => Some((since, id)),
            _ => None,
        })
        .min()
        .map(|(_, id)| id)
}

/// The timeouts a connection is closed by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// From the accept to a complete request.
    pub header_read: Duration,
    /// From a response written to the next request.
    pub idle: Duration,
    /// From a response handed over to its last byte written.
    pub write: Duration,
}

/// When a connection in `phase` is closed, and why; `None` while its
/// requests are still being answered (or it is closing anyway).
/// `oldest_write` is when the oldest of its responses still being written
/// was handed over.
pub(super) fn deadline(
    phase: Phase,
    oldest_write: Option<Instant>,
    timeouts: Timeouts,
) -> Option<(Instant, Reason)> {
    match phase {
        Phase::Waiting {
            since,
            served: false,
        } => Some((since + timeouts.header_read, Reason::TimedOut)),
        Phase::Waiting {
            since,
            served: true,
        } => Some((since + timeouts.idle, Reason::TimedOut)),
        Phase::Busy(_) => oldest_write.map(|at| (at + timeouts.write, Reason::WriteTimedOut)),
        Phase::Closing(_) => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const HEADER: Duration = Duration::from_secs(10);
    pub(crate) const IDLE: Duration = Duration::from_secs(60);
    pub(crate) const WRITE: Duration = Duration::from_secs(30);
    pub(crate) const TIMEOUTS: Timeouts = Timeouts {
        header_read: HEADER,
        idle: IDLE,
        write: WRITE,
    };

    fn waiting(seconds_ago: u64, now: Instant) -> Phase {
        Phase::Waiting {
            since: now - Duration::from_secs(seconds_ago),
            served: false,
        }
    }

    #[test]
    fn the_victim_is_the_connection_waiting_longest_never_a_busy_one() {
        let now = Instant::now() + Duration::from_secs(100);
        let phases = [
            (1, waiting(3, now)),
            (2, Phase::Busy(1)),
            (3, waiting(9, now)),
            (4, Phase::Closing(Reason::Shed)),
            (5, waiting(9, now)),
        ];
        // 3 and 5 waited as long; the older connection goes first.
        assert_eq!(victim(phases, now), Some(3));
        // A keep-alive connection idle since its response counts from then.
        let idle = Phase::Waiting {
            since: now - Duration::from_secs(30),
            served: true,
        };
        assert_eq!(victim([(1, waiting(9, now)), (2, idle)], now), Some(2));
        // Busy for an hour (a slow scrape, or its body being written) is
        // still never shed.
        assert_eq!(
            victim([(1, Phase::Busy(3)), (2, Phase::Busy(1))], now),
            None
        );
        assert_eq!(victim([], now), None);
    }

    #[test]
    fn a_connection_accepted_or_served_a_moment_ago_is_not_shed() {
        let now = Instant::now() + Duration::from_secs(100);
        let just = |served| Phase::Waiting {
            since: now - Duration::from_millis(999),
            served,
        };
        assert_eq!(victim([(1, just(false)), (2, just(true))], now), None);
        // From SHED_GRACE on, it may go.
        assert_eq!(victim([(1, waiting(1, now))], now), Some(1));
    }

    #[test]
    fn deadlines_run_from_the_accept_the_last_response_or_the_write() {
        let now = Instant::now();
        let fresh = Phase::Waiting {
            since: now,
            served: false,
        };
        let served = Phase::Waiting {
            since: now,
            served: true,
        };
        let timed_out = Reason::TimedOut;
        assert_eq!(
            deadline(fresh, None, TIMEOUTS),
            Some((now + HEADER, timed_out))
        );
        assert_eq!(
            deadline(served, None, TIMEOUTS),
            Some((now + IDLE, timed_out))
        );
        // Still answering: no deadline; writing: the write timeout.
        assert_eq!(deadline(Phase::Busy(1), None, TIMEOUTS), None);
        assert_eq!(
            deadline(Phase::Busy(2), Some(now), TIMEOUTS),
            Some((now + WRITE, Reason::WriteTimedOut))
        );
        assert_eq!(deadline(Phase::Closing(Reason::Shed), None, TIMEOUTS), None);
    }
}
