//! One collection round: its targets, the results as fetches end, the
//! snapshot once it is over, and the callers waiting for it; and the
//! fetches themselves, `concurrency` at a time, each from the report cache
//! or from AvePoint. [`ScrapeRounds`](super::ScrapeRounds) decides who
//! joins which round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant as TokioInstant;

use super::cache::ReportCache;
use super::snapshot::{FetchError, ProfileResult, Snapshot, not_fetched};
use crate::avepoint::{ApiClient, FailureKind};
use crate::config::ProfileTarget;
use crate::sync::lock;

/// Why a caller got a profile as failed although its round may still
/// fetch it: the caller's own deadline came first.
const NOT_YET: &str =
    "not fetched yet when this caller's deadline passed; the round goes on for the others";
/// Why a probe round fetched no more once every caller had gone.
const ABANDONED: &str = "not fetched: every caller of this probe had gone";
/// Why every profile a failed round had not fetched is down.
const ROUND_FAILED: &str = "internal error in the collection round";

/// What a round needs, shared by `/metrics` rounds and probes.
pub(super) struct Fetcher {
    pub(super) client: Arc<ApiClient>,
    pub(super) cache: Option<ReportCache>,
}

/// Which callers share a round: every `/metrics` scrape, or the probes of
/// one target set (a customer, or one of its profiles).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum RoundKey {
    All,
    Targets(Arc<[ProfileTarget]>),
}

/// The rounds in flight, by who shares them; a round removes itself when
/// it ends (see [`Registration`]).
pub(super) type InFlight = Arc<Mutex<HashMap<RoundKey, Arc<Round>>>>;

/// One round: its targets, what it has fetched so far, and, once over,
/// the whole snapshot.
pub(super) struct Round {
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
pub(super) struct Caller(pub(super) Arc<Round>);

impl Caller {
    pub(super) fn new(round: Arc<Round>) -> Self {
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
pub(super) struct Registration {
    pub(super) in_flight: InFlight,
    pub(super) key: RoundKey,
    pub(super) round: Weak<Round>,
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
    pub(super) fn new(
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
    pub(super) fn abandoned(&self) -> bool {
        self.probe.is_some() && self.callers.load(Ordering::SeqCst) == 0
    }

    /// Fetch every target in a task of its own, ending by `deadline`;
    /// profiles still pending then fail with `timeout_message`.
    pub(super) fn run(
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
    pub(super) async fn wait_until(&self, deadline: Option<TokioInstant>) -> Arc<Snapshot> {
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
                            kind: FailureKind::Deadline,
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
                .is_err_and(|error| error.kind == FailureKind::Backoff)
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
                kind: FailureKind::Deadline,
                request_id: None,
                message: timeout_message.into(),
            }),
        };
    // During a back-off nothing was sent; the round logs that once.
    if let Err(error) = &outcome
        && error.kind != FailureKind::Backoff
    {
        tracing::warn!(
            customer_id = %target.customer_id,
            profile_id = %target.profile_id,
            status = %error.kind,
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
