//! Every open connection of a listener, whether it has a request in
//! progress, and which one to close: the cap, the deadlines, shedding.
//!
//! A connection is *waiting* from its accept, and again from each response
//! written, until its next request's headers are complete; it is *busy*
//! while a request is in progress, its response's body included until the
//! last byte is handed to the socket. The server closes a waiting
//! connection at its deadline (the header-read timeout after its accept,
//! the idle timeout after its last response), a busy one whose response is
//! not written within the write timeout (a client that asks and never
//! reads; a request still being answered is never cut short), and at the
//! cap the connection that has waited longest, once it has waited
//! [`SHED_GRACE`]: never one whose response is being written nor one
//! accepted a moment ago. When none can be shed, newcomers queue in the
//! kernel's listen backlog instead of being refused.
//!
//! Which connection to close and when is decided by the pure functions of
//! `closing.rs`; this file keeps the books they are applied to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::closing::{Phase, Reason, SHED_GRACE, Timeouts, deadline, victim};
use crate::sync::lock;

struct Slot {
    phase: Phase,
    /// Its responses being written: a token each and when it was handed over.
    writes: Vec<(u64, Instant)>,
    /// Wakes the connection's task to look at its phase again.
    wake: Arc<Notify>,
}

impl Slot {
    fn oldest_write(&self) -> Option<Instant> {
        self.writes.iter().map(|(_, at)| *at).min()
    }
}

/// The open connections of one listener.
pub(super) struct Tracker {
    limit: usize,
    timeouts: Timeouts,
    slots: Mutex<(u64, HashMap<u64, Slot>)>,
    /// A connection closed or stopped being busy: maybe room now.
    changed: Notify,
}

impl Tracker {
    /// At most `limit` connections (at least 1), closed past `timeouts`.
    pub(super) fn new(limit: usize, timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            timeouts,
            slots: Mutex::new((0, HashMap::new())),
            changed: Notify::new(),
        })
    }

    /// Track a connection accepted just now.
    pub(super) fn register(self: &Arc<Self>) -> Registration {
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
            writes: Vec::new(),
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
    pub(super) fn open(&self) -> usize {
        let slots = lock(&self.slots);
        slots
            .1
            .values()
            .filter(|slot| !matches!(slot.phase, Phase::Closing(_)))
            .count()
    }

    /// Wait until one more connection fits under the cap, shedding the one
    /// that has waited longest when the cap is reached. While none can be
    /// shed, waits for one to close, to stop being busy, or to have waited
    /// [`SHED_GRACE`].
    pub(super) async fn wait_for_room(&self) {
        loop {
            let changed = self.changed.notified();
            if self.open() < self.limit || self.shed_oldest_waiting() {
                return;
            }
            match self.next_sheddable() {
                Some(at) => tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(at) => {}
                },
                None => changed.await,
            }
        }
    }

    /// Close the connection that has waited longest for a request, if one
    /// has waited [`SHED_GRACE`]; `false` when none can be shed.
    pub(super) fn shed_oldest_waiting(&self) -> bool {
        let mut slots = lock(&self.slots);
        let phases = slots.1.iter().map(|(id, slot)| (*id, slot.phase));
        let Some(id) = victim(phases, Instant::now()) else {
            return false;
        };
        if let Some(slot) = slots.1.get_mut(&id) {
            slot.phase = Phase::Closing(Reason::Shed);
            slot.wake.notify_one();
        }
        true
    }

    /// When the next waiting connection will have waited [`SHED_GRACE`].
    fn next_sheddable(&self) -> Option<Instant> {
        let slots = lock(&self.slots);
        slots
            .1
            .values()
            .filter_map(|slot| match slot.phase {
                Phase::Waiting { since, .. } => Some(since + SHED_GRACE),
                _ => None,
            })
            .min()
    }

    /// On shutdown: close every connection without a request in progress
    /// (the others finish theirs; hyper's graceful shutdown closes them
    /// after).
    pub(super) fn close_waiting(&self) {
        let mut slots = lock(&self.slots);
        for slot in slots.1.values_mut() {
            if let Phase::Waiting { .. } = slot.phase {
                slot.phase = Phase::Closing(Reason::ShuttingDown);
                slot.wake.notify_one();
            }
        }
    }

    fn phase(&self, id: u64) -> Option<(Phase, Option<Instant>)> {
        lock(&self.slots)
            .1
            .get(&id)
            .map(|slot| (slot.phase, slot.oldest_write()))
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Slot)) {
        if let Some(slot) = lock(&self.slots).1.get_mut(&id) {
            change(slot);
        }
    }

    /// A token for a response being written.
    fn next_token(&self) -> u64 {
        let mut slots = lock(&self.slots);
        let token = slots.0;
        slots.0 += 1;
        token
    }
}

/// One tracked connection, for the service that marks its requests.
#[derive(Clone)]
pub(super) struct SlotHandle {
    tracker: Arc<Tracker>,
    id: u64,
}

impl SlotHandle {
    /// A request's headers are complete: busy until the guard drops.
    pub(super) fn request_started(&self) -> RequestGuard {
        self.tracker.update(self.id, |slot| {
            slot.phase = match slot.phase {
                Phase::Waiting { .. } => Phase::Busy(1),
                Phase::Busy(requests) => Phase::Busy(requests + 1),
                closing @ Phase::Closing(_) => closing,
            }
        });
        RequestGuard {
            slot: self.clone(),
            write: None,
        }
    }
}

/// A request in progress; dropped when its response's body has been
/// written (or the request was abandoned, or the connection is gone).
pub(super) struct RequestGuard {
    slot: SlotHandle,
    /// The token of its response being written, once handed over.
    write: Option<u64>,
}

impl RequestGuard {
    /// Its response was handed to hyper: the write timeout runs from now.
    pub(super) fn writing(&mut self) {
        let tracker = &self.slot.tracker;
        let token = tracker.next_token();
        let now = Instant::now();
        tracker.update(self.slot.id, |slot| {
            slot.writes.push((token, now));
            // Its task sleeps until a deadline computed without this one.
            slot.wake.notify_one();
        });
        self.write = Some(token);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let tracker = &self.slot.tracker;
        let write = self.write;
        tracker.update(self.slot.id, |slot| {
            slot.writes.retain(|(token, _)| Some(*token) != write);
            slot.phase = match slot.phase {
                Phase::Busy(1) | Phase::Waiting { .. } => Phase::Waiting {
                    since: Instant::now(),
                    served: true,
                },
                Phase::Busy(requests) => Phase::Busy(requests - 1),
                closing @ Phase::Closing(_) => closing,
            };
            slot.wake.notify_one();
        });
        tracker.changed.notify_one();
    }
}

/// A tracked connection: removed from the tracker when dropped.
pub(super) struct Registration {
    slot: SlotHandle,
    wake: Arc<Notify>,
}

impl Registration {
    /// A handle for the connection's service.
    pub(super) fn slot(&self) -> SlotHandle {
        self.slot.clone()
    }

    /// Completes when the server wants this connection closed: shed, on
    /// shutdown, waiting past its deadline, or a response not written in
    /// time. Never while a request is being answered.
    pub(super) async fn closed(&self) -> Reason {
        let tracker = &self.slot.tracker;
        loop {
            let woken = self.wake.notified();
            let Some((phase, oldest_write)) = tracker.phase(self.slot.id) else {
                return Reason::Shed;
            };
            if let Phase::Closing(reason) = phase {
                return reason;
            }
            let now = Instant::now();
            match deadline(phase, oldest_write, tracker.timeouts) {
                Some((at, reason)) if at <= now => {
                    tracker.update(self.slot.id, |slot| slot.phase = Phase::Closing(reason));
                    return reason;
                }
                Some((at, _)) => tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = woken => {}
                },
                // Busy answering: the guard wakes us when that changes.
                None => woken.await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::closing::tests::{HEADER, IDLE, TIMEOUTS, WRITE};
    use std::future::Future;
    use std::pin::Pin;
    use std::time::Duration;

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
        let tracker = Tracker::new(2, TIMEOUTS);
        let oldest = tracker.register();
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = tracker.register();
        let request = busy.slot().request_started();
        tokio::time::advance(SHED_GRACE).await;
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
        // Served a moment ago: not shed until it has idled SHED_GRACE.
        assert!(ready(&mut room).await.is_none());
        tokio::time::advance(SHED_GRACE).await;
        assert!(ready(&mut room).await.is_some(), "room after a grace");
        // The connection whose request finished was the one shed.
        assert_eq!(busy.closed().await, Reason::Shed);
        drop(newcomer_request);
    }

    #[tokio::test(start_paused = true)]
    async fn a_newcomer_waits_while_the_only_candidate_was_accepted_a_moment_ago() {
        let tracker = Tracker::new(1, TIMEOUTS);
        let fresh = tracker.register();
        let room = tracker.wait_for_room();
        let mut room = std::pin::pin!(room);
        tokio::time::advance(SHED_GRACE - Duration::from_millis(1)).await;
        assert!(ready(&mut room).await.is_none());
        // Its request arrived in time: busy, never shed.
        let request = fresh.slot().request_started();
        tokio::time::advance(HEADER).await;
        assert!(ready(&mut room).await.is_none());
        drop(request);
        drop(fresh);
        assert!(ready(&mut room).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_connections_close_at_their_deadline_busy_ones_do_not() {
        let tracker = Tracker::new(10, TIMEOUTS);
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
    async fn a_response_nobody_reads_closes_at_the_write_timeout() {
        let tracker = Tracker::new(10, TIMEOUTS);
        let reader = tracker.register();
        let mut request = reader.slot().request_started();
        let closed = reader.closed();
        let mut closed = std::pin::pin!(closed);
        tokio::time::advance(IDLE * 3).await;
        assert!(ready(&mut closed).await.is_none(), "still answering");
        let handed_over = Instant::now();
        request.writing();
        assert_eq!(closed.await, Reason::WriteTimedOut);
        assert_eq!(handed_over.elapsed(), WRITE);
        // Not idle meanwhile: a connection writing is never shed.
        assert_eq!(victim([(0, Phase::Busy(1))], Instant::now()), None);
        drop(request);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_only_connections_without_a_request() {
        let tracker = Tracker::new(10, TIMEOUTS);
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
