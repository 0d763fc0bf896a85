//! Collection rounds: fetch every target concurrently, bounded, under a
//! deadline, and hand the result on as a plain [`Snapshot`].
//!
//! Concurrent scrapes (Prometheus HA pairs, a human with curl) join the
//! round already in flight instead of starting another, so AvePoint sees
//! one call per profile however many scrapers there are.
//!
//! Owns [`ScrapeRounds`] and the report cache. Imports `avepoint`, `config`
//! and `discovery` (for the target list); never `metrics`, `web` or above.
//! The time budget comes in as a plain `Duration`: reading Prometheus'
//! scrape-timeout header is the web layer's job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;

use crate::avepoint::{ApiClient, ApiError, FailureKind, ScanProfileReport};
use crate::config::ProfileTarget;
use crate::discovery::DiscoveryState;
use crate::sync::lock;

/// A scrape joins a round in flight whose deadline is at most this much
/// earlier than its own (HA Prometheus pairs send the same timeout).
const JOIN_SLACK: Duration = Duration::from_secs(1);

/// Result of one collection round: one entry per target, in target order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// One result per target.
    pub profiles: Vec<ProfileResult>,
    /// Wall time of the whole round.
    pub collect_duration: Duration,
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
    /// fetched in this round); `None` when caching is off.
    pub cache_age: Option<Duration>,
}

/// Why a profile has no report in this round (plain data, cheap to clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// What kind of failure; its label is an HTTP status code, `timeout`,
    /// `error`, `auth`, `backoff`, `invalid_body` or `deadline`.
    pub status: FailureKind,
    /// AvePoint's request id, when a response carried one.
    pub request_id: Option<String>,
    /// The full error text, safe to show.
    pub message: String,
}

impl From<&ApiError> for FetchError {
    fn from(error: &ApiError) -> Self {
        FetchError {
            status: error.kind(),
            request_id: error.request_id().map(str::to_owned),
            message: error.to_string(),
        }
    }
}

impl Snapshot {
    /// How many profiles failed.
    pub fn failures(&self) -> usize {
        self.profiles.iter().filter(|p| p.outcome.is_err()).count()
    }
}

type SharedRound = Shared<BoxFuture<'static, Arc<Snapshot>>>;

/// Where the list of targets comes from.
#[derive(Debug, Clone)]
pub enum TargetSource {
    /// The config file's list, fixed.
    Static(Arc<[ProfileTarget]>),
    /// The config file's list merged with discovery's latest result.
    Discovered(watch::Receiver<Arc<DiscoveryState>>),
}

impl TargetSource {
    /// The targets right now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<[ProfileTarget]> {
        match self {
            TargetSource::Static(targets) => Arc::clone(targets),
            TargetSource::Discovered(state) => Arc::clone(&state.borrow().targets),
        }
    }
}

/// What a round needs, shared by `/metrics` rounds and probes.
struct Fetcher {
    client: Arc<ApiClient>,
    cache: Option<ReportCache>,
}

/// Reports fetched within `ttl`, served again instead of calling AvePoint
/// (`avepoint.cache_ttl`). Only successful fetches are kept: a failing
/// profile is asked again on the next scrape.
struct ReportCache {
    ttl: Duration,
    entries: Mutex<HashMap<ProfileTarget, CachedReport>>,
}

struct CachedReport {
    report: ScanProfileReport,
    fetched_at: Instant,
    fetch_duration: Duration,
}

impl ReportCache {
    fn get(&self, target: &ProfileTarget) -> Option<ProfileResult> {
        let entries = lock(&self.entries);
        let entry = entries.get(target)?;
        let age = entry.fetched_at.elapsed();
        (age < self.ttl).then(|| ProfileResult {
            target: target.clone(),
            fetch_duration: entry.fetch_duration,
            outcome: Ok(entry.report.clone()),
            cache_age: Some(age),
        })
    }

    fn put(&self, result: &ProfileResult) {
        if let Ok(report) = &result.outcome {
            let mut entries = lock(&self.entries);
            entries.insert(
                result.target.clone(),
                CachedReport {
                    report: report.clone(),
                    fetched_at: Instant::now(),
                    fetch_duration: result.fetch_duration,
                },
            );
        }
    }

    /// Drop what can no longer be served (also forgets removed targets).
    fn prune(&self) {
        let mut entries = lock(&self.entries);
        entries.retain(|_, entry| entry.fetched_at.elapsed() < self.ttl);
    }
}

/// Runs collection rounds for scrapes and probes; owns the single-flight
/// slot, so concurrent scrapes share one round.
pub struct ScrapeRounds {
    fetcher: Arc<Fetcher>,
    targets: TargetSource,
    in_flight: Mutex<Option<(TokioInstant, SharedRound)>>,
}

impl ScrapeRounds {
    /// Rounds over the targets of `targets`, as many fetches at once as
    /// the client allows, serving reports younger than `cache_ttl` from a
    /// cache (none when zero).
    pub fn new(client: Arc<ApiClient>, targets: TargetSource, cache_ttl: Duration) -> Self {
        let cache = (!cache_ttl.is_zero()).then(|| ReportCache {
            ttl: cache_ttl,
            entries: Mutex::default(),
        });
        Self {
            fetcher: Arc::new(Fetcher { client, cache }),
            targets,
            in_flight: Mutex::new(None),
        }
    }

    /// The API client the rounds use.
    pub fn client(&self) -> &ApiClient {
        &self.fetcher.client
    }

    /// The current targets.
    pub fn targets(&self) -> Arc<[ProfileTarget]> {
        self.targets.current()
    }

    /// Collect `targets` now, in a round of their own (for `/probe`).
    pub async fn collect_targets(
        &self,
        targets: Arc<[ProfileTarget]>,
        budget: Duration,
    ) -> Snapshot {
        let deadline = TokioInstant::now() + budget;
        collect_round(Arc::clone(&self.fetcher), targets, deadline).await
    }

    /// Collect all targets within `budget`, joining a round already in flight.
    ///
    /// The round runs as its own task: a scraper that disconnects does not
    /// cancel the fetches other scrapers are waiting on.
    pub async fn collect(&self, budget: Duration) -> Arc<Snapshot> {
        let deadline = TokioInstant::now() + budget;
        let (round_deadline, round) = {
            let mut slot = lock(&self.in_flight);
            match slot.as_ref() {
                // Join only a round that may run about as long as this
                // scrape may: a curl with a short (or no) timeout header must
                // not cut Prometheus' budget short.
                Some((round_deadline, round))
                    if round.peek().is_none() && *round_deadline + JOIN_SLACK >= deadline =>
                {
                    (*round_deadline, round.clone())
                }
                _ => {
                    let round = self.start_round(deadline);
                    *slot = Some((deadline, round.clone()));
                    (deadline, round)
                }
            }
        };
        // The round ends by its own deadline; only a joiner whose budget is
        // shorter than the round's needs a timeout of its own.
        if deadline >= round_deadline {
            return round.await;
        }
        match tokio::time::timeout_at(deadline, round).await {
            Ok(snapshot) => snapshot,
            Err(_) => Arc::new(all_failed(
                &self.targets.current(),
                budget,
                "scrape deadline passed while waiting for the round in flight",
            )),
        }
    }

    fn start_round(&self, deadline: TokioInstant) -> SharedRound {
        let targets = self.targets.current();
        let budget = deadline.saturating_duration_since(TokioInstant::now());
        let task = tokio::spawn(collect_round(
            Arc::clone(&self.fetcher),
            Arc::clone(&targets),
            deadline,
        ));
        async move {
            match task.await {
                Ok(snapshot) => Arc::new(snapshot),
                // The round task never panics on network input; if it ever
                // does, the scrape still answers, with every profile down.
                Err(error) => {
                    tracing::error!(%error, "collection round failed");
                    Arc::new(all_failed(
                        &targets,
                        budget,
                        "internal error in the collection round",
                    ))
                }
            }
        }
        .boxed()
        .shared()
    }
}

/// A snapshot in which every target failed with `message`.
fn all_failed(targets: &[ProfileTarget], budget: Duration, message: &str) -> Snapshot {
    Snapshot {
        profiles: targets
            .iter()
            .map(|target| ProfileResult {
                target: target.clone(),
                fetch_duration: budget,
                outcome: Err(FetchError {
                    status: FailureKind::Deadline,
                    request_id: None,
                    message: message.into(),
                }),
                cache_age: None,
            })
            .collect(),
        collect_duration: budget,
    }
}

async fn collect_round(
    fetcher: Arc<Fetcher>,
    targets: Arc<[ProfileTarget]>,
    deadline: TokioInstant,
) -> Snapshot {
    let started = Instant::now();
    if let Some(cache) = &fetcher.cache {
        cache.prune();
    }
    let mut profiles: Vec<(usize, ProfileResult)> =
        stream::iter(targets.iter().cloned().enumerate())
            .map(|(index, target)| {
                let fetcher = Arc::clone(&fetcher);
                async move {
                    let cached = fetcher.cache.as_ref().and_then(|cache| cache.get(&target));
                    let result = match cached {
                        Some(result) => result,
                        None => {
                            let result = fetch_one(&fetcher.client, target, deadline).await;
                            if let Some(cache) = &fetcher.cache {
                                cache.put(&result);
                            }
                            ProfileResult {
                                cache_age: fetcher.cache.as_ref().map(|_| Duration::ZERO),
                                ..result
                            }
                        }
                    };
                    (index, result)
                }
            })
            .buffer_unordered(fetcher.client.concurrency())
            .collect()
            .await;
    profiles.sort_unstable_by_key(|(index, _)| *index);
    let skipped = profiles
        .iter()
        .filter(|(_, result)| {
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
    let snapshot = Snapshot {
        profiles: profiles.into_iter().map(|(_, result)| result).collect(),
        collect_duration: started.elapsed(),
    };
    tracing::debug!(
        targets = snapshot.profiles.len(),
        failures = snapshot.failures(),
        duration = ?snapshot.collect_duration,
        "collection round done"
    );
    snapshot
}

async fn fetch_one(
    client: &ApiClient,
    target: ProfileTarget,
    deadline: TokioInstant,
) -> ProfileResult {
    let started = Instant::now();
    let outcome =
        match tokio::time::timeout_at(deadline, client.scan_profile(&target, deadline)).await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(error)) => Err(FetchError::from(&error)),
            Err(_) => Err(FetchError {
                status: FailureKind::Deadline,
                request_id: None,
                message: "no answer before the scrape deadline".into(),
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
    }
}
