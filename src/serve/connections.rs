//! Every open connection of a listener, whether it has a request in
//! progress, and the policy for which one to close: the cap, the
//! waiting deadlines and shedding.
//!
//! A connection is *waiting* from its accept, and again from each response,
//! until its next request's headers are complete; it is *busy* while a
//! request is in progress. Only waiting connections are ever closed by the
//! server (a request in progress always finishes):
//!
//! - a waiting connection is closed at its deadline: the header-read
//!   timeout after its accept (TLS handshake and protocol detection
//!   included), the idle timeout after its last response;
//! - at the cap, the connection that has waited longest is shed to make
//!   room for the next one. A slowloris holder has waited since its
//!   accept; a scraper's connection waits only the milliseconds its headers
//!   take to arrive and is then busy, so the holders go first;
//! - when every connection is busy, no more are accepted until one is not:
//!   newcomers queue in the kernel's listen backlog instead of being
//!   refused.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sync::lock;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No request in progress since `since` (its accept, or its last
    /// response when `served`).
    Waiting {
        /// Since when.
        since: Instant,
        /// Whether it has had a response (then the idle timeout applies).
        served: bool,
    },
    /// This many requests in progress (HTTP/2 runs several at once).
    Busy(usize),
    /// Told to close; gone as soon as its task notices.
    Closing(Reason),
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It waited past its deadline for a request.
    TimedOut,
    /// The cap was reached and it had waited longest.
    Shed,
    /// The server is shutting down and it had no request in progress.
    ShuttingDown,
}

impl Reason {
    /// For the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TimedOut => "no complete request in time",
            Reason::Shed => "shed at the connection limit",
            Reason::ShuttingDown => "shutting down",
        }
    }
}

/// The connection to shed: the one that has waited longest for a complete
/// request (the lowest id among equals, the older one). Busy and closing
/// connections are never chosen.
pub fn victim(phases: impl IntoIterator<Item = (u64, Phase)>) -> Option<u64> {
    phases
        .into_iter()
        .filter_map(|(id, phase)| match phase {
            Phase::Waiting { since, .. } => Some((since, id)),
            _ => None,
        })
        .min()
        .map(|(_, id)| id)
}

/// When a connection in `phase` is closed for waiting too long; `None`
/// while a request is in progress (or it is closing anyway).
pub fn deadline(
    phase: Phase,
    header_read_timeout: Duration,
    idle_timeout: Duration,
) -> Option<Instant> {
    match phase {
        Phase::Waiting {
            since,
            served: false,
        } => Some(since + header_read_timeout),
        Phase::Waiting {
            since,
            served: true,
        } => Some(since + idle_timeout),
        Phase::Busy(_) | Phase::Closing(_) => None,
    }
}

struct Slot {
    phase: Phase,
    /// Wakes the connection's task to look at its phase again.
    wake: Arc<Notify>,
}

/// The open connections of one listener.
pub struct Tracker {
    limit: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    slots: Mutex<(u64, HashMap<u64, Slot>)>,
    /// A connection closed or stopped being busy: maybe room now.
    changed: Notify,
}

impl Tracker {
    /// At most `limit` connections (at least 1), closed when waiting past
    /// the timeouts.
    pub fn new(limit: usize, header_read_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            header_read_timeout,
            idle_timeout,
            slots: Mutex::new((0, HashMap::new())),
            changed: Notify::new(),
        })
    }

    /// Track a connection accepted just now.
    pub fn register(self: &Arc<Self>) -> Registration {
        let wake = Arc::new(Notify::new());
        let mut slots = lock(&self.slots);
        let id = slots.0;
        slots.0 += 1;
        let phase = Phase::Waiting {
            since: Instant::now(),
            served: false,
        };
        let slot = Slot {
            phase,
            wake: Arc::clone(&wake),
        };
        slots.1.insert(id, slot);
        Registration {
            slot: SlotHandle {
                tracker: Arc::clone(self),
                id,
            },
            wake,
        }
    }

    /// Open connections, those told to close not counted.
    pub fn open(&self) -> usize {
        let slots = lock(&self.slots);
        slots
            .1
            .values()
            .filter(|slot| !matches!(slot.phase, Phase::Closing(_)))
            .count()
    }

    /// Wait until one more connection fits under the cap, shedding the one
    /// that has waited longest when the cap is reached. While every
    /// connection is busy, waits for one to finish or close.
    pub async fn wait_for_room(&self) {
        loop {
            let changed = self.changed.notified();
            if self.open() < self.limit || self.shed_oldest_waiting() {
                return;
            }
            changed.await;
        }
    }

    /// Close the connection that has waited longest for a request; `false`
    /// when every connection is busy.
    pub fn shed_oldest_waiting(&self) -> bool {
        let mut slots = lock(&self.slots);
        let phases = slots.1.iter().map(|(id, slot)| (*id, slot.phase));
        let Some(id) = victim(phases) else {
            return false;
        };
        if let Some(slot) = slots.1.get_mut(&id) {
            slot.phase = Phase::Closing(Reason::Shed);
            slot.wake.notify_one();
        }
        true
    }

    /// On shutdown: close every connection without a request in progress
    /// (the others finish theirs; hyper's graceful shutdown closes them
    /// after).
    pub fn close_waiting(&self) {
        let mut slots = lock(&self.slots);
        for slot in slots.1.values_mut() {
            if let Phase::Waiting { .. } = slot.phase {
                slot.phase = Phase::Closing(Reason::ShuttingDown);
                slot.wake.notify_one();
            }
        }
    }

    fn phase(&self, id: u64) -> Option<Phase> {
        lock(&self.slots).1.get(&id).map(|slot| slot.phase)
    }

    fn update(&self, id: u64, change: impl FnOnce(Phase) -> Phase) {
        if let Some(slot) = lock(&self.slots).1.get_mut(&id) {
            slot.phase = change(slot.phase);
        }
    }
}

/// One tracked connection, for the service that marks its requests.
#[derive(Clone)]
pub struct SlotHandle {
    tracker: Arc<Tracker>,
    id: u64,
}

impl SlotHandle {
    /// A request's headers are complete: busy until the guard drops.
    pub fn request_started(&self) -> RequestGuard {
        self.tracker.update(self.id, |phase| match phase {
            Phase::Waiting { .. } => Phase::Busy(1),
            Phase::Busy(requests) => Phase::Busy(requests + 1),
            closing @ Phase::Closing(_) => closing,
        });
        RequestGuard { slot: self.clone() }
    }
}

/// A request in progress; dropped when its response has been handed to
/// hyper (or the request was abandoned).
pub struct RequestGuard {
    slot: SlotHandle,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let tracker = &self.slot.tracker;
        tracker.update(self.slot.id, |phase| match phase {
            Phase::Busy(1) | Phase::Waiting { .. } => Phase::Waiting {
                since: Instant::now(),
                served: true,
            },
            Phase::Busy(requests) => Phase::Busy(requests - 1),
            closing @ Phase::Closing(_) => closing,
        });
        tracker.changed.notify_one();
    }
}

/// A tracked connection: removed from the tracker when dropped.
pub struct Registration {
    slot: SlotHandle,
    wake: Arc<Notify>,
}

impl Registration {
    /// A handle for the connection's service.
    pub fn slot(&self) -> SlotHandle {
        self.slot.clone()
    }

    /// Completes when the server wants this connection closed: shed, on
    /// shutdown, or waiting past its deadline. Never while a request is in
    /// progress.
    pub async fn closed(&self) -> Reason {
        let tracker = &self.slot.tracker;
        loop {
            let woken = self.wake.notified();
            let Some(phase) = tracker.phase(self.slot.id) else {
                return Reason::Shed;
            };
            if let Phase::Closing(reason) = phase {
                return reason;
            }
            let now = Instant::now();
            // Busy: look again after an idle timeout (the guard does not wake
            // us; the deadline it sets is never nearer than that).
            let at = deadline(phase, tracker.header_read_timeout, tracker.idle_timeout)
                .unwrap_or(now + tracker.idle_timeout);
            if at <= now && matches!(phase, Phase::Waiting { .. }) {
                tracker.update(self.slot.id, |_| Phase::Closing(Reason::TimedOut));
                return Reason::TimedOut;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = woken => {}
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let tracker = &self.slot.tracker;
        lock(&tracker.slots).1.remove(&self.slot.id);
        tracker.changed.notify_one();
    }
}

/// `S` with every request marked on the connection's slot, so the tracker
/// knows when the connection is busy.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    slot: SlotHandle,
}

impl<S> Tracked<S> {
    /// Wrap `inner` for the connection of `slot`.
    pub fn new(inner: S, slot: SlotHandle) -> Self {
        Self { inner, slot }
    }
}

impl<S, R> tower_service::Service<R> for Tracked<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let guard = self.slot.request_started();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn waiting(seconds_ago: u64, now: Instant) -> Phase {
        Phase::Waiting {
            since: now - Duration::from_secs(seconds_ago),
            served: false,
        }
    }

    #[test]
    fn the_victim_is_the_connection_waiting_longest_never_a_busy_one() {
        let now = Instant::now();
        let phases = [
            (1, waiting(3, now)),
            (2, Phase::Busy(1)),
            (3, waiting(9, now)),
            (4, Phase::Closing(Reason::Shed)),
            (5, waiting(9, now)),
        ];
        // 3 and 5 waited as long; the older connection goes first.
        assert_eq!(victim(phases), Some(3));
        // A keep-alive connection idle since its response counts from then.
        let idle = Phase::Waiting {
            since: now - Duration::from_secs(30),
            served: true,
        };
        assert_eq!(victim([(1, waiting(9, now)), (2, idle)]), Some(2));
        // Busy for an hour (a slow scrape) is still never shed.
        assert_eq!(victim([(1, Phase::Busy(3)), (2, Phase::Busy(1))]), None);
        assert_eq!(victim([]), None);
    }

    #[test]
    fn deadlines_run_from_the_accept_or_the_last_response() {
        let now = Instant::now();
        let fresh = Phase::Waiting {
            since: now,
            served: false,
        };
        let served = Phase::Waiting {
            since: now,
            served: true,
        };
        assert_eq!(deadline(fresh, HEADER, IDLE), Some(now + HEADER));
        assert_eq!(deadline(served, HEADER, IDLE), Some(now + IDLE));
        assert_eq!(deadline(Phase::Busy(1), HEADER, IDLE), None);
        assert_eq!(deadline(Phase::Closing(Reason::Shed), HEADER, IDLE), None);
    }

    /// Whether `future` is ready after the runtime ran everything it could.
    async fn ready<F: Future>(future: &mut Pin<&mut F>) -> Option<F::Output> {
        tokio::select! {
            biased;
            output = future.as_mut() => Some(output),
            () = tokio::task::yield_now() => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_waiting_is_shed_and_busy_ones_are_kept() {
        let tracker = Tracker::new(2, HEADER, IDLE);
        let oldest = tracker.register();
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = tracker.register();
        let request = busy.slot().request_started();
        tokio::time::advance(Duration::from_secs(1)).await;
        // Full: making room sheds the waiting one, not the older-busy one.
        tracker.wait_for_room().await;
        assert_eq!(oldest.closed().await, Reason::Shed);
        assert_eq!(tracker.open(), 1);
        drop(oldest);
        let newcomer = tracker.register();
        let newcomer_request = newcomer.slot().request_started();
        // Everything busy: no room until a request finishes.
        let room = tracker.wait_for_room();
        let mut room = std::pin::pin!(room);
        assert!(ready(&mut room).await.is_none());
        drop(request);
        assert!(ready(&mut room).await.is_some(), "room after a response");
        // The connection whose request finished was the one shed.
        assert_eq!(busy.closed().await, Reason::Shed);
        drop(newcomer_request);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_connections_close_at_their_deadline_busy_ones_do_not() {
        let tracker = Tracker::new(10, HEADER, IDLE);
        let silent = tracker.register();
        let started = Instant::now();
        assert_eq!(silent.closed().await, Reason::TimedOut);
        assert_eq!(started.elapsed(), HEADER);

        let scraper = tracker.register();
        let request = scraper.slot().request_started();
        let closed = scraper.closed();
        let mut closed = std::pin::pin!(closed);
        // A scrape may take longer than any timeout.
        tokio::time::advance(IDLE * 3).await;
        assert!(ready(&mut closed).await.is_none());
        let responded = Instant::now();
        drop(request);
        assert_eq!(closed.await, Reason::TimedOut);
        assert_eq!(responded.elapsed(), IDLE, "idle timeout from the response");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_only_connections_without_a_request() {
        let tracker = Tracker::new(10, HEADER, IDLE);
        let idle = tracker.register();
        let busy = tracker.register();
        let request = busy.slot().request_started();
        tracker.close_waiting();
        assert_eq!(idle.closed().await, Reason::ShuttingDown);
        let closed = busy.closed();
        let mut closed = std::pin::pin!(closed);
        assert!(ready(&mut closed).await.is_none());
        drop(request);
    }
}
