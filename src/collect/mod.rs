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
mod round;
mod snapshot;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::time::Instant as TokioInstant;

use crate::avepoint::ApiClient;
use crate::config::ProfileTarget;
use crate::discovery::TargetSource;
use crate::report_schedule::ScheduledReports;
use crate::sync::lock;
use cache::ReportCache;
use round::{Caller, Fetcher, InFlight, Registration, Round, RoundKey};
pub use snapshot::{FetchError, ProfileResult, ReadTimes, ScheduleFigures, Snapshot};

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
