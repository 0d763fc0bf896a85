//! Scrape orchestration: fetch every target concurrently, bounded, under a
//! deadline, and hand the result on as a plain [`Snapshot`].
//!
//! Concurrent scrapes (Prometheus HA pairs, a human with curl) join the
//! round already in flight instead of starting another, so AvePoint sees
//! one call per profile however many scrapers there are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{self, StreamExt};
use tokio::time::Instant as TokioInstant;

use tokio::sync::watch;

use crate::avepoint::{ApiClient, ApiError, ScanProfileReport};
use crate::config::ProfileTarget;
use crate::discovery::DiscoveryState;

/// `FetchError::status` of a profile not fetched because of a back-off.
const BACKOFF_STATUS: &str = "backoff";

/// Deadline used when the scraper does not send `X-Prometheus-Scrape-Timeout-Seconds`.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Kept back from Prometheus' timeout so the answer arrives before it gives up.
pub const SCRAPE_TIMEOUT_OFFSET: Duration = Duration::from_millis(500);
/// A scrape joins a round in flight whose deadline is at most this much
/// earlier than its own (HA Prometheus pairs send the same timeout).
const JOIN_SLACK: Duration = Duration::from_secs(1);
/// The most time a scrape is given, whatever the header says.
const MAX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The least time a scrape is given, whatever the header says.
const MIN_SCRAPE_BUDGET: Duration = Duration::from_millis(100);

/// The time budget of one scrape, from Prometheus' scrape timeout header
/// (seconds, may be fractional) minus [`SCRAPE_TIMEOUT_OFFSET`].
pub fn scrape_budget(timeout_header: Option<&str>) -> Duration {
    let timeout = timeout_header
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        // The header comes from the network: NaN, infinity or 1e300 must not
        // panic or push the deadline past what an Instant can hold.
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .unwrap_or(DEFAULT_SCRAPE_TIMEOUT)
        .min(MAX_SCRAPE_TIMEOUT);
    timeout
        .saturating_sub(SCRAPE_TIMEOUT_OFFSET)
        .max(MIN_SCRAPE_BUDGET)
}

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
    /// HTTP status code, `timeout`, `error`, `auth`, `invalid_body` or `deadline`.
    pub status: String,
    /// AvePoint's request id, when a response carried one.
    pub request_id: Option<String>,
    /// The full error text, safe to show.
    pub message: String,
}

impl From<&ApiError> for FetchError {
    fn from(error: &ApiError) -> Self {
        FetchError {
            status: error.status_label(),
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
    concurrency: usize,
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
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, entry| entry.fetched_at.elapsed() < self.ttl);
    }
}

/// Fetches all targets for a scrape; owns the single-flight slot.
pub struct Collector {
    fetcher: Arc<Fetcher>,
    targets: TargetSource,
    in_flight: Mutex<Option<(TokioInstant, SharedRound)>>,
}

impl Collector {
    /// A collector for the targets of `targets`, at most `concurrency`
    /// fetches at once per round, serving reports younger than `cache_ttl`
    /// from a cache (none when zero).
    pub fn new(
        client: Arc<ApiClient>,
        targets: TargetSource,
        concurrency: usize,
        cache_ttl: Duration,
    ) -> Self {
        let cache = (!cache_ttl.is_zero()).then(|| ReportCache {
            ttl: cache_ttl,
            entries: Mutex::default(),
        });
        Self {
            fetcher: Arc::new(Fetcher {
                client,
                concurrency: concurrency.max(1),
                cache,
            }),
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
            let mut slot = self
                .in_flight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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
                    status: "deadline".into(),
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
            .buffer_unordered(fetcher.concurrency)
            .collect()
            .await;
    profiles.sort_unstable_by_key(|(index, _)| *index);
    let skipped = profiles
        .iter()
        .filter(|(_, result)| {
            result
                .outcome
                .as_ref()
                .is_err_and(|error| error.status == BACKOFF_STATUS)
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
                status: "deadline".into(),
                request_id: None,
                message: "no answer before the scrape deadline".into(),
            }),
        };
    // During a back-off nothing was sent; the round logs that once.
    if let Err(error) = &outcome
        && error.status != BACKOFF_STATUS
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_from_the_prometheus_header() {
        assert_eq!(scrape_budget(None), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("15")), Duration::from_millis(14500));
        assert_eq!(scrape_budget(Some("2.5")), Duration::from_secs(2));
        assert_eq!(scrape_budget(Some(" 4 ")), Duration::from_millis(3500));
        // Nonsense falls back to the default rather than to zero.
        assert_eq!(scrape_budget(Some("-3")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("soon")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("NaN")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("inf")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("1e300")), Duration::from_millis(9500));
        assert_eq!(
            scrape_budget(Some("86400")),
            Duration::from_millis(3_599_500)
        );
        // A timeout below the offset still leaves a minimal budget.
        assert_eq!(scrape_budget(Some("0.2")), MIN_SCRAPE_BUDGET);
    }
}
