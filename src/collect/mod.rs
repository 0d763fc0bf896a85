//! Collection rounds: fetch every target concurrently, bounded, under a
//! deadline, and hand the result on as a plain [`Snapshot`].
//!
//! What AvePoint sees does not depend on how many clients ask or which
//! timeouts they send. Concurrent scrapes (Prometheus HA pairs, a human
//! with curl) join the round already in flight, and so do concurrent
//! probes of the same targets; a round's deadline is `avepoint.round_timeout`
//! from its start, never a caller's. A caller's own budget only bounds how
//! long that caller waits: when it runs out first, the caller gets what the
//! round has so far, and the round goes on for the others. Rounds run as
//! tasks of their own, so no caller can cancel one; but a probe round
//! whose callers have all gone starts no further fetch, and all probe
//! rounds together hold at most half of `concurrency`, so `/metrics`
//! comes first.
//!
//! Owns [`ScrapeRounds`] and the report cache. Imports `avepoint`, `config`
//! and `discovery` (for the target list); never `metrics`, `web` or above.
//! The time budget comes in as a plain `Duration`: reading Prometheus'
//! scrape-timeout header is the web layer's job.

mod cache;
mod snapshot;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant as TokioInstant;

use crate::avepoint::{ApiClient, FailureKind};
use crate::config::ProfileTarget;
use crate::discovery::TargetSource;
use crate::report_schedule::ScheduledReports;
use crate::sync::lock;
use cache::ReportCache;
use snapshot::not_fetched;
pub use snapshot::{FetchError, ProfileResult, ReadTimes, ScheduleFigures, Snapshot};

/// Why a caller got a profile as failed although its round may still
/// fetch it: the caller's own deadline came first.
const NOT_YET: &str =
    "not fetched yet when this caller's deadline passed; the round goes on for the others";
/// Why a probe round fetched no more once every caller had gone.
const ABANDONED: &str = "not fetched: every caller of this probe had gone";
/// Why every profile a failed round had not fetched is down.
const ROUND_FAILED: &str = "internal error in the collection round";

/// What a round needs, shared by `/metrics` rounds and probes.
struct Fetcher {
    client: Arc<ApiClient>,
    cache: Option<ReportCache>,
}

/// Which callers share a round: every `/metrics` scrape, or the probes of
/// one target set (a customer, or one of its profiles).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RoundKey {
    All,
    Targets(Arc<[ProfileTarget]>),
}

/// The rounds in flight, by who shares them; a round removes itself when
/// it ends (see [`Registration`]).
type InFlight = Arc<Mutex<HashMap<RoundKey, Arc<Round>>>>;

/// One round: its targets, what it has fetched so far, and, once over,
/// the whole snapshot.
struct Round {
    targets: Arc<[ProfileTarget]>,
    started: Instant,
    /// By target index, filled as fetches end: what a caller whose own
    /// deadline comes first gets.
    results: Mutex<Vec<Option<Arc<ProfileResult>>>>,
    /// `Some` once the round is over; closed without a value if its task
    /// died.
    done: watch::Receiver<Option<Arc<Snapshot>>>,
    /// For a probe round: the permits all probe rounds share, so that
    /// `/metrics` always keeps the others; and the round stops starting
    /// fetches once no caller waits for it (a flood of probes whose
    /// clients hang up must not keep fetching ahead of `/metrics`).
    probe: Option<Arc<Semaphore>>,
    /// Callers waiting for the round now.
    callers: AtomicUsize,
}

/// One caller waiting for a round; counted while it lives.
struct Caller(Arc<Round>);

impl Caller {
    fn new(round: Arc<Round>) -> Self {
        round.callers.fetch_add(1, Ordering::SeqCst);
        Caller(round)
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.0.callers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes a round out of the in-flight map when the round's task ends,
/// normally or not: a panicking round must not be joined forever.
struct Registration {
    in_flight: InFlight,
    key: RoundKey,
    round: Weak<Round>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Only while this round is under its key: an abandoned probe round
        // may have been replaced by a fresh one.
        let mut in_flight = lock(&self.in_flight);
        if in_flight
            .get(&self.key)
            .is_some_and(|round| std::ptr::eq(Arc::as_ptr(round), self.round.as_ptr()))
        {
            in_flight.remove(&self.key);
        }
    }
}

impl Round {
    fn new(
        targets: Arc<[ProfileTarget]>,
        probe: Option<Arc<Semaphore>>,
    ) -> (Arc<Self>, watch::Sender<Option<Arc<Snapshot>>>) {
        let (done_tx, done) = watch::channel(None);
        let round = Arc::new(Round {
            results: Mutex::new(vec![None; targets.len()]),
            targets,
            started: Instant::now(),
            done,
            probe,
            callers: AtomicUsize::new(0),
        });
        (round, done_tx)
    }

    /// A probe round nobody waits for any more.
    fn abandoned(&self) -> bool {
        self.probe.is_some() && self.callers.load(Ordering::SeqCst) == 0
    }

    /// Fetch every target in a task of its own, ending by `deadline`;
    /// profiles still pending then fail with `timeout_message`.
    fn run(
        self: &Arc<Self>,
        fetcher: Arc<Fetcher>,
        deadline: TokioInstant,
        timeout_message: Arc<str>,
        done: watch::Sender<Option<Arc<Snapshot>>>,
        registration: Option<Registration>,
    ) {
        let round = Arc::clone(self);
        tokio::spawn(async move {
            let snapshot = collect_round(fetcher, Arc::clone(&round), deadline, timeout_message);
            let snapshot = Arc::new(snapshot.await);
            // Out of the map first: a caller from now on starts a new
            // round, and every caller that joined this one gets its result.
            drop(registration);
            done.send_replace(Some(snapshot));
        });
    }

    /// The round's snapshot, or, when `deadline` passes first, what it has
    /// so far, with the profiles still pending failed as `deadline`.
    async fn wait_until(&self, deadline: Option<TokioInstant>) -> Arc<Snapshot> {
        let finished = async {
            let mut done = self.done.clone();
            let result = done.wait_for(Option::is_some).await;
            result.ok().and_then(|snapshot| snapshot.clone())
        };
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, finished).await,
            None => Ok(finished.await),
        };
        match outcome {
            Ok(Some(snapshot)) => snapshot,
            // The round's task never panics on network input; if it ever
            // does, the callers still answer, with what it had fetched.
            Ok(None) => {
                tracing::error!("collection round failed");
                Arc::new(self.so_far(ROUND_FAILED))
            }
            Err(_) => Arc::new(self.so_far(NOT_YET)),
        }
    }

    /// The results so far, in target order; a target still pending fails
    /// as `deadline` with `pending`.
    fn so_far(&self, pending: &str) -> Snapshot {
        let elapsed = self.started.elapsed();
        let results = lock(&self.results);
        let profiles = self
            .targets
            .iter()
            .zip(results.iter())
            .map(|(target, result)| {
                result.clone().unwrap_or_else(|| {
                    Arc::new(ProfileResult {
                        target: target.clone(),
                        fetch_duration: elapsed,
                        outcome: Err(FetchError {
                            status: FailureKind::Deadline,
                            request_id: None,
                            message: pending.into(),
                        }),
                        cache_age: None,
                        read: None,
                    })
                })
            })
            .collect();
        Snapshot {
            profiles,
            collect_duration: elapsed,
            schedule: None,
        }
    }
}

/// Runs collection rounds for scrapes and probes, and keeps the rounds in
/// flight so that concurrent callers share them.
pub struct ScrapeRounds {
    fetcher: Arc<Fetcher>,
    targets: TargetSource,
    round_timeout: Duration,
    in_flight: InFlight,
    /// What all probe rounds together may hold of the client's
    /// `concurrency` permits: half (at least 1), so `/metrics` keeps the
    /// rest however many probes arrive.
    probe_share: Arc<Semaphore>,
    /// `refresh: report_schedule`: scrapes and probes serve this reader's
    /// results instead of running rounds.
    scheduled: Option<Arc<ScheduledReports>>,
}

impl ScrapeRounds {
    /// Rounds over the targets of `targets`, as many fetches at once as
    /// the client allows, each round ending `round_timeout` after its
    /// start, serving reports younger than `cache_ttl` from a cache (none
    /// when zero).
    pub fn new(
        client: Arc<ApiClient>,
        targets: TargetSource,
        cache_ttl: Duration,
        round_timeout: Duration,
    ) -> Self {
        let cache = (!cache_ttl.is_zero()).then(|| ReportCache::new(cache_ttl));
        let probe_share = Arc::new(Semaphore::new((client.concurrency() / 2).max(1)));
        Self {
            fetcher: Arc::new(Fetcher { client, cache }),
            targets,
            round_timeout,
            in_flight: InFlight::default(),
            probe_share,
            scheduled: None,
        }
    }

    /// Serve scrapes and probes from `reports` (`refresh: report_schedule`)
    /// instead of asking AvePoint in rounds.
    pub fn serving(mut self, reports: Arc<ScheduledReports>) -> Self {
        self.scheduled = Some(reports);
        self
    }

    /// The scheduled reader, in `report_schedule` mode.
    pub fn scheduled(&self) -> Option<&Arc<ScheduledReports>> {
        self.scheduled.as_ref()
    }

    /// `targets` from memory, in `report_schedule` mode.
    fn served_from_memory(&self, targets: &[ProfileTarget]) -> Option<Arc<Snapshot>> {
        let scheduled = self.scheduled.as_ref()?;
        let started = Instant::now();
        let reports = Arc::clone(&scheduled.state.borrow());
        Some(Arc::new(Snapshot::from_memory(
            &reports,
            targets,
            scheduled.settings.max_age,
            started,
        )))
    }

    /// The API client the rounds use.
    pub fn client(&self) -> &ApiClient {
        &self.fetcher.client
    }

    /// The current targets.
    pub fn targets(&self) -> Arc<[ProfileTarget]> {
        self.targets.current()
    }

    /// All targets, from the round in flight or a new one, waiting at most
    /// `wait` (for `/metrics`).
    ///
    /// `wait` is the caller's budget, not the round's: the round ends by
    /// `round_timeout` whoever waits for it. When `wait` runs out first the
    /// caller gets the profiles fetched so far and `deadline` failures for
    /// the rest, and the round goes on for the others.
    pub async fn collect(&self, wait: Duration) -> Arc<Snapshot> {
        if let Some(snapshot) = self.served_from_memory(&self.targets.current()) {
            return snapshot;
        }
        let deadline = TokioInstant::now().checked_add(wait);
        let caller = self.join_or_start(RoundKey::All, || self.targets.current());
        caller.0.wait_until(deadline).await
    }

    /// `targets`, from the round in flight for the same targets or a new
    /// one, waiting at most `wait` (for `/probe`); shared and bounded like
    /// [`ScrapeRounds::collect`].
    pub async fn collect_targets(
        &self,
        targets: Arc<[ProfileTarget]>,
        wait: Duration,
    ) -> Arc<Snapshot> {
        if let Some(snapshot) = self.served_from_memory(&targets) {
            return snapshot;
        }
        let deadline = TokioInstant::now().checked_add(wait);
        let key = RoundKey::Targets(Arc::clone(&targets));
        let caller = self.join_or_start(key, || targets);
        caller.0.wait_until(deadline).await
    }

    /// All targets in a round of their own that ends `round_timeout` after
    /// its start instead of the configured one, waiting for all of it
    /// (for `check`, which runs alone and gives every request its time).
    pub async fn collect_once(&self, round_timeout: Duration) -> Arc<Snapshot> {
        let (round, done) = Round::new(self.targets.current(), None);
        let message = format!("no answer within {}s", round_timeout.as_secs_f64());
        round.run(
            Arc::clone(&self.fetcher),
            TokioInstant::now() + round_timeout,
            message.into(),
            done,
            None,
        );
        round.wait_until(None).await
    }

    /// A caller of the round in flight under `key`, or of a new one over
    /// `targets()` (also in place of an abandoned probe round, which has
    /// stopped fetching).
    fn join_or_start(
        &self,
        key: RoundKey,
        targets: impl FnOnce() -> Arc<[ProfileTarget]>,
    ) -> Caller {
        let (caller, done) = {
            let mut in_flight = lock(&self.in_flight);
            if let Some(round) = in_flight.get(&key).filter(|round| !round.abandoned()) {
                return Caller::new(Arc::clone(round));
            }
            let probe = matches!(key, RoundKey::Targets(_)).then(|| Arc::clone(&self.probe_share));
            let (round, done) = Round::new(targets(), probe);
            in_flight.insert(key.clone(), Arc::clone(&round));
            // Counted before the round can start: it must not see itself
            // abandoned before its first caller waits.
            (Caller::new(round), done)
        };
        let round = Arc::clone(&caller.0);
        // Spawned with the map unlocked: a task dropped at once (runtime
        // shutting down) unregisters itself, which takes the lock.
        let registration = Registration {
            in_flight: Arc::clone(&self.in_flight),
            key,
            round: Arc::downgrade(&round),
        };
        // Seconds as the config file has them: "9.5s", not "9s 500ms".
        let message = format!(
            "no answer within avepoint.round_timeout ({}s)",
            self.round_timeout.as_secs_f64()
        );
        round.run(
            Arc::clone(&self.fetcher),
            TokioInstant::now() + self.round_timeout,
            message.into(),
            done,
            Some(registration),
        );
        caller
    }
}

/// Fetch every target of `round`, `concurrency` at a time, recording each
/// result in the round as it comes.
async fn collect_round(
    fetcher: Arc<Fetcher>,
    round: Arc<Round>,
    deadline: TokioInstant,
    timeout_message: Arc<str>,
) -> Snapshot {
    if let Some(cache) = &fetcher.cache {
        cache.prune();
    }
    stream::iter(round.targets.iter().cloned().enumerate())
        .map(|(index, target)| {
            let fetcher = Arc::clone(&fetcher);
            let timeout_message = Arc::clone(&timeout_message);
            let round = Arc::clone(&round);
            async move {
                let _share = match &round.probe {
                    Some(share) => share.acquire().await.ok(),
                    None => None,
                };
                if round.abandoned() {
                    return (index, not_fetched(target, ABANDONED));
                }
                let result = fetch_cached(&fetcher, target, deadline, &timeout_message).await;
                (index, result)
            }
        })
        .buffer_unordered(fetcher.client.concurrency())
        .for_each(|(index, result)| {
            lock(&round.results)[index] = Some(Arc::new(result));
            std::future::ready(())
        })
        .await;
    // Every target has its result now.
    let snapshot = round.so_far(ROUND_FAILED);
    let skipped = snapshot
        .profiles
        .iter()
        .filter(|result| {
            result
                .outcome
                .as_ref()
                .is_err_and(|error| error.status == FailureKind::Backoff)
        })
        .count();
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "AvePoint asked for a pause (429/503 Retry-After); these profiles were not fetched"
        );
    }
    tracing::debug!(
        targets = snapshot.profiles.len(),
        failures = snapshot.failures(),
        duration = ?snapshot.collect_duration,
        "collection round done"
    );
    snapshot
}

/// One target's report from the cache, or else from AvePoint (and then
/// into the cache).
async fn fetch_cached(
    fetcher: &Fetcher,
    target: ProfileTarget,
    deadline: TokioInstant,
    timeout_message: &str,
) -> ProfileResult {
    if let Some(result) = fetcher.cache.as_ref().and_then(|cache| cache.get(&target)) {
        return result;
    }
    let result = fetch_one(&fetcher.client, target, deadline, timeout_message).await;
    if let Some(cache) = &fetcher.cache {
        cache.put(&result);
    }
    ProfileResult {
        cache_age: fetcher.cache.as_ref().map(|_| Duration::ZERO),
        ..result
    }
}

async fn fetch_one(
    client: &ApiClient,
    target: ProfileTarget,
    deadline: TokioInstant,
    timeout_message: &str,
) -> ProfileResult {
    let started = Instant::now();
    let outcome =
        match tokio::time::timeout_at(deadline, client.scan_profile(&target, deadline)).await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(error)) => Err(FetchError::from(&error)),
            Err(_) => Err(FetchError {
                status: FailureKind::Deadline,
                request_id: None,
                message: timeout_message.into(),
            }),
        };
    // During a back-off nothing was sent; the round logs that once.
    if let Err(error) = &outcome
        && error.status != FailureKind::Backoff
    {
        tracing::warn!(
            customer_id = %target.customer_id,
            profile_id = %target.profile_id,
            status = %error.status,
            request_id = error.request_id.as_deref().unwrap_or("-"),
            error = %error.message,
            "scan profile fetch failed"
        );
    }
    ProfileResult {
        target,
        fetch_duration: started.elapsed(),
        outcome,
        cache_age: None,
        read: None,
    }
}
