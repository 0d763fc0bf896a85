//! The one background refresher: every reader that runs in the background
//! (discovery, profile details, the backup collectors) is driven by it.
//!
//! It owns what those readers share, so none of them gets it wrong alone:
//!
//! - the schedule: a run at once at start, then every interval (a small
//!   random delay spread on the later ticks when the reader asks for one),
//!   and a run as soon as one of the reader's inputs changes;
//! - panic isolation: a run that panics is logged at error level with the
//!   reader's name and counted ([`PanicCounts`], exported as
//!   `avepoint_background_panics_total{reader}`); the reader runs again on
//!   its next schedule instead of dying silently;
//! - a permit share of its own ([`Permits`]): background readers together
//!   hold at most a quarter of `avepoint.concurrency` (at least one)
//!   requests, so scrape and probe rounds always keep permits of the
//!   client's concurrency bound, however slow the background endpoints are.
//!
//! Generic: imports only `sync`. A new background reader is one
//! [`BackgroundReader`] impl (see docs/architecture.md).

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::time::MissedTickBehavior;

use crate::sync::lock;

/// When a reader runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between two scheduled runs (the first runs at once).
    pub interval: Duration,
    /// Upper bound of a random delay added before each scheduled run but
    /// the first, so that readers on one interval do not fire in lockstep.
    /// Zero: none.
    pub jitter: Duration,
}

impl Schedule {
    /// Every `interval`, without jitter.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            jitter: Duration::ZERO,
        }
    }
}

/// Why a run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The first run, or a tick of the schedule.
    Scheduled,
    /// [`BackgroundReader::input_changed`] resolved.
    InputChanged,
}

/// A reader the refresher drives: one impl per kind of background data.
pub trait BackgroundReader: Send + 'static {
    /// What it publishes, replaced whole after each run.
    type State: Send + Sync + 'static;

    /// Its name in logs and in `avepoint_background_panics_total{reader}`.
    fn name(&self) -> &'static str;

    /// When it runs.
    fn schedule(&self) -> Schedule;

    /// Resolves when an input changed and the reader should run now (e.g.
    /// discovery published new customers). Never, by default. Must not
    /// resolve at once again and again once the input is gone.
    fn input_changed(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// One run: the next state from `previous`, or `None` to publish
    /// nothing. Every request to AvePoint goes through `permits`.
    fn run(
        &mut self,
        cause: Cause,
        previous: Arc<Self::State>,
        permits: Permits,
    ) -> impl Future<Output = Option<Self::State>> + Send;

    /// The state to publish after a run panicked (e.g. one more error
    /// counted); `None`, the default, keeps the last one.
    fn after_panic(&self, previous: &Self::State) -> Option<Self::State> {
        let _ = previous;
        None
    }
}

/// The background readers' share of the client's concurrency bound.
#[derive(Debug, Clone)]
pub struct Permits(Arc<Semaphore>);

impl Permits {
    /// A quarter of `concurrency`, at least one.
    pub fn share_of(concurrency: usize) -> Self {
        Self::exactly((concurrency / 4).max(1))
    }

    /// Exactly `permits` (tests).
    pub fn exactly(permits: usize) -> Self {
        Self(Arc::new(Semaphore::new(permits)))
    }

    /// Permits free right now: the whole share (how many requests
    /// background readers may have in flight together) while none is held.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }

    /// Run `request` holding one permit: waits while the share is in use.
    pub async fn hold<F: Future>(&self, request: F) -> F::Output {
        // Never closed: the semaphore lives as long as this handle.
        let _permit = self.0.acquire().await.ok();
        request.await
    }
}

/// Panics per reader, for the life of the process (a reload keeps them).
#[derive(Debug, Clone, Default)]
pub struct PanicCounts(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl PanicCounts {
    /// Every reader started so far, with its panics (zero included).
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        lock(&self.0).iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Panics of `reader` so far.
    pub fn get(&self, reader: &str) -> u64 {
        lock(&self.0).get(reader).copied().unwrap_or(0)
    }

    fn register(&self, reader: &'static str) {
        lock(&self.0).entry(reader).or_insert(0);
    }

    fn record(&self, reader: &'static str) {
        *lock(&self.0).entry(reader).or_insert(0) += 1;
    }
}

/// A running reader's task; stops when dropped (a reload replaced it).
#[derive(Debug)]
pub struct Task(tokio::task::AbortHandle);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The refresher of one API client: its permit share and the process's
/// panic counts. Cheap to clone; clones share both.
#[derive(Debug, Clone)]
pub struct Refresher {
    permits: Permits,
    panics: PanicCounts,
}

impl Refresher {
    /// A refresher with `permits`, counting panics in `panics`.
    pub fn new(permits: Permits, panics: PanicCounts) -> Self {
        Self { permits, panics }
    }

    /// Its permit share.
    pub fn permits(&self) -> &Permits {
        &self.permits
    }

    /// Start `reader`, publishing `initial` until its first run ends.
    pub fn spawn<R: BackgroundReader>(
        &self,
        reader: R,
        initial: R::State,
    ) -> (watch::Receiver<Arc<R::State>>, Task) {
        self.panics.register(reader.name());
        let (sender, receiver) = watch::channel(Arc::new(initial));
        let task = tokio::spawn(drive(reader, sender, self.clone()));
        (receiver, Task(task.abort_handle()))
    }
}

/// A reader's loop. Runs are not tasks of their own: aborting this task (a
/// reload replaced the reader) stops the run in progress too.
async fn drive<R: BackgroundReader>(
    mut reader: R,
    sender: watch::Sender<Arc<R::State>>,
    refresher: Refresher,
) {
    let name = reader.name();
    let schedule = reader.schedule();
    let mut ticks = tokio::time::interval(schedule.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        let cause = tokio::select! {
            _ = ticks.tick() => Cause::Scheduled,
            () = reader.input_changed() => Cause::InputChanged,
        };
        if cause == Cause::Scheduled && !first && !schedule.jitter.is_zero() {
            tokio::time::sleep(random_below(schedule.jitter)).await;
        }
        first = false;
        let previous = Arc::clone(&sender.borrow());
        let run = reader.run(cause, Arc::clone(&previous), refresher.permits.clone());
        let next = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(next) => next,
            Err(panic) => {
                refresher.panics.record(name);
                tracing::error!(
                    reader = name,
                    panic = panic_message(panic.as_ref()),
                    "background reader panicked; it keeps its last state and runs again on its next schedule"
                );
                reader.after_panic(&previous)
            }
        };
        if let Some(next) = next
            && sender.send(Arc::new(next)).is_err()
        {
            // Nobody listens any more: the exporter is shutting down.
            return;
        }
    }
}

/// What a panic said, when it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a message)")
}

/// A random duration in `[0, bound)`.
fn random_below(bound: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(random % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its runs; panics on the runs `panicking` names.
    struct Counter {
        runs: Arc<AtomicUsize>,
        panicking: &'static [usize],
        in_flight: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl BackgroundReader for Counter {
        type State = usize;
        fn name(&self) -> &'static str {
            "counter"
        }
        fn schedule(&self) -> Schedule {
            Schedule::every(Duration::from_secs(60))
        }
        async fn run(&mut self, _: Cause, _: Arc<usize>, permits: Permits) -> Option<usize> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(
                !self.panicking.contains(&run),
                "injected panic in run {run}"
            );
            let (in_flight, most) = (Arc::clone(&self.in_flight), Arc::clone(&self.most));
            let requests = (0..5).map(|_| {
                permits.hold(async {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            });
            futures_util::future::join_all(requests).await;
            Some(run)
        }
    }

    fn counter(panicking: &'static [usize]) -> (Counter, Arc<AtomicUsize>) {
        let most = Arc::new(AtomicUsize::new(0));
        let reader = Counter {
            runs: Arc::default(),
            panicking,
            in_flight: Arc::default(),
            most: Arc::clone(&most),
        };
        (reader, most)
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_run_is_counted_and_the_reader_runs_again_on_schedule() {
        let panics = PanicCounts::default();
        let refresher = Refresher::new(Permits::share_of(8), panics.clone());
        let (reader, most) = counter(&[1]);
        let (mut state, _task) = refresher.spawn(reader, 0);
        assert_eq!(panics.snapshot(), [("counter", 0)]);
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(**state.borrow(), 0);
        assert_eq!(panics.get("counter"), 1);
        state.changed().await.unwrap();
        assert_eq!(**state.borrow_and_update(), 2);
        assert_eq!(panics.get("counter"), 1);
        // A quarter of 8: five requests of one run, two at a time.
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_share_is_a_quarter_of_the_concurrency_and_at_least_one() {
        assert_eq!(Permits::share_of(1).available(), 1);
        assert_eq!(Permits::share_of(7).available(), 1);
        assert_eq!(Permits::share_of(8).available(), 2);
        assert_eq!(Permits::share_of(64).available(), 16);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(random_below(Duration::from_millis(5)) < Duration::from_millis(5));
        }
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
    }
}
