//! Scan profile details (the daily-scan schedule, settings and containers),
//! fetched in the background and never on the scrape path.
//!
//! A profile's details change when someone edits the profile, not per
//! scrape, so they are refreshed on discovery's cadence (or
//! `profile_details.refresh_interval`): one request per profile per
//! refresh, at most [`FETCH_CONCURRENCY`] at a time, within the
//! [`crate::refresher`]'s permit share (so that scrapes, which share the
//! client's concurrency bound, never queue behind a refresh).
//! Profiles discovery adds between two refreshes are fetched as soon as
//! discovery publishes them. A failed fetch keeps the profile's last known
//! details; the refresh counts as failed in the metrics.
//!
//! Imports `config`, `avepoint`, `discovery` (for the targets) and
//! `refresher` (which drives it); never
//! `collect`, `metrics` or above.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::avepoint::details::{ScanProfileDetails, object_type_label};
use crate::config::ProfileTarget;
use crate::discovery::TargetSource;
use crate::refresher::{BackgroundReader, Cause, Permits, Refresher, Schedule, Task};

/// Detail requests in flight at once, whatever the client allows: a
/// refresh of thousands of profiles is background work and must leave
/// the rest of the concurrency bound to scrapes.
pub const FETCH_CONCURRENCY: usize = 2;

/// What the exporter keeps of one profile's details: plain data, ready to
/// encode. `impersonationAccount` (personal data) is never part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSettings {
    /// Seconds after midnight of the daily scan, as AvePoint states it
    /// (its time zone is not documented); `None` when daily scan is off.
    pub daily_scan_time: Option<u32>,
    /// When the profile was created, as a Unix timestamp.
    pub created_timestamp: Option<f64>,
    /// `isSendOutOfPolicyNotification` (`None` when AvePoint left it out).
    pub send_out_of_policy_notification: Option<bool>,
    /// `scanInplaceArchivedMailboxes`.
    pub scan_inplace_archived_mailboxes: Option<bool>,
    /// `isIgnoreLockedSiteEnabled`.
    pub ignore_locked_sites: Option<bool>,
    /// Containers per object type, sorted by the type's label; unknown
    /// codes add up under `other`.
    pub containers: Vec<(&'static str, u64)>,
}

impl From<&ScanProfileDetails> for ProfileSettings {
    fn from(details: &ScanProfileDetails) -> Self {
        ProfileSettings {
            daily_scan_time: details.daily_scan_time,
            created_timestamp: details
                .created_time
                .map(|at| at.unix_timestamp_nanos() as f64 / 1e9),
            send_out_of_policy_notification: details.is_send_out_of_policy_notification,
            scan_inplace_archived_mailboxes: details.scan_inplace_archived_mailboxes,
            ignore_locked_sites: details.is_ignore_locked_site_enabled,
            containers: count_containers(details.containers.iter().map(|c| c.object_type)),
        }
    }
}

/// What the details refresher knows right now; replaced whole on every
/// change.
#[derive(Debug, Clone, Default)]
pub struct ProfileDetailsState {
    /// The latest details of every current target fetched at least once.
    pub profiles: HashMap<ProfileTarget, Arc<ProfileSettings>>,
    /// End of the last full refresh in which every fetch succeeded.
    pub last_success: Option<SystemTime>,
    /// Detail requests that failed (the profile kept its last known details).
    pub errors_total: u64,
}

/// A running refresher; its task stops when the handle is dropped (a
/// config reload replaces it).
#[derive(Debug)]
pub struct ProfileDetailsTask {
    /// Always the latest state.
    pub state: watch::Receiver<Arc<ProfileDetailsState>>,
    _task: Task,
}

/// The details as the refresher's reader: a full refresh on every tick,
/// and a fetch of the newcomers whenever discovery publishes new targets.
struct Reader<F> {
    fetch: F,
    targets: TargetSource,
    refresh_interval: Duration,
}

impl<F, Fut, E> BackgroundReader for Reader<F>
where
    F: Fn(ProfileTarget) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ProfileSettings, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    type State = ProfileDetailsState;

    fn name(&self) -> &'static str {
        "profile_details"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(self.refresh_interval)
    }

    async fn input_changed(&mut self) {
        if !self.targets.changed().await {
            // Discovery is gone: only the ticks remain.
            self.targets = TargetSource::Static(self.targets.current());
        }
    }

    async fn run(
        &mut self,
        cause: Cause,
        previous: Arc<ProfileDetailsState>,
        permits: Permits,
    ) -> Option<ProfileDetailsState> {
        let current = self.targets.current();
        let fetch = |target| permits.hold((self.fetch)(target));
        let full = cause == Cause::Scheduled;
        Some(refresh(&fetch, &current, &previous, full).await)
    }

    /// A refresh that panics is a failed refresh, not a dead refresher.
    fn after_panic(&self, previous: &ProfileDetailsState) -> Option<ProfileDetailsState> {
        Some(ProfileDetailsState {
            errors_total: previous.errors_total + 1,
            ..previous.clone()
        })
    }
}

/// Start refreshing the details of `targets` every `refresh_interval` on
/// `refresher`, the first refresh at once. `fetch` asks AvePoint for one
/// profile (each fetch holds one of the refresher's permits).
///
/// `previous` is the state of the refresher this one replaces (a reload):
/// it is served until the first refresh ends, so the details series do not
/// vanish for a refresh's length.
pub fn spawn<F, Fut, E>(
    refresher: &Refresher,
    fetch: F,
    targets: TargetSource,
    refresh_interval: Duration,
    previous: Option<&ProfileDetailsState>,
) -> ProfileDetailsTask
where
    F: Fn(ProfileTarget) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ProfileSettings, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let reader = Reader {
        fetch,
        targets,
        refresh_interval,
    };
    let (state, task) = refresher.spawn(reader, previous.cloned().unwrap_or_default());
    ProfileDetailsTask { state, _task: task }
}

/// One refresh over `targets`: every one of them when `full`, else only
/// those without details yet. Targets no longer listed are forgotten.
pub async fn refresh<F, Fut, E>(
    fetch: &F,
    targets: &[ProfileTarget],
    previous: &ProfileDetailsState,
    full: bool,
) -> ProfileDetailsState
where
    F: Fn(ProfileTarget) -> Fut,
    Fut: Future<Output = Result<ProfileSettings, E>>,
    E: Display,
{
    let wanted: Vec<ProfileTarget> = targets
        .iter()
        .filter(|target| full || !previous.profiles.contains_key(*target))
        .cloned()
        .collect();
    let results: Vec<(ProfileTarget, Result<ProfileSettings, E>)> = stream::iter(wanted)
        .map(|target| fetch(target.clone()).map(|result| (target, result)))
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut profiles: HashMap<ProfileTarget, Arc<ProfileSettings>> = targets
        .iter()
        .filter_map(|target| {
            let known = previous.profiles.get(target)?;
            Some((target.clone(), Arc::clone(known)))
        })
        .collect();
    let mut failures = 0u64;
    for (target, result) in results {
        match result {
            Ok(settings) => {
                profiles.insert(target, Arc::new(settings));
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(
                    customer_id = %target.customer_id,
                    profile_id = %target.profile_id,
                    %error,
                    "fetching scan profile details failed; keeping the last known details"
                );
            }
        }
    }
    ProfileDetailsState {
        profiles,
        last_success: if full && failures == 0 {
            Some(SystemTime::now())
        } else {
            previous.last_success
        },
        errors_total: previous.errors_total + failures,
    }
}

/// Containers counted per object type label, sorted by label.
pub fn count_containers(codes: impl IntoIterator<Item = i64>) -> Vec<(&'static str, u64)> {
    let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for code in codes {
        *counts.entry(object_type_label(code)).or_default() += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn target(profile: &str) -> ProfileTarget {
        ProfileTarget::new("c", profile)
    }

    fn settings(daily: Option<u32>) -> ProfileSettings {
        ProfileSettings {
            daily_scan_time: daily,
            created_timestamp: Some(1.5),
            send_out_of_policy_notification: Some(false),
            scan_inplace_archived_mailboxes: Some(true),
            ignore_locked_sites: None,
            containers: vec![("mailbox", 2)],
        }
    }

    /// A fetch that fails for the profiles named in `failing` and records
    /// every profile asked for.
    fn fake(
        failing: &'static [&'static str],
        asked: &Arc<Mutex<Vec<String>>>,
    ) -> impl Fn(ProfileTarget) -> std::future::Ready<Result<ProfileSettings, String>> + use<> {
        let asked = Arc::clone(asked);
        move |target: ProfileTarget| {
            asked.lock().unwrap().push(target.profile_id.clone());
            std::future::ready(if failing.contains(&target.profile_id.as_str()) {
                Err(format!("HTTP 500 for {}", target.profile_id))
            } else {
                Ok(settings(Some(60)))
            })
        }
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_last_known_details_and_counts() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let targets = [target("a"), target("b")];
        let first = refresh(
            &fake(&[], &asked),
            &targets,
            &ProfileDetailsState::default(),
            true,
        )
        .await;
        assert_eq!(first.profiles.len(), 2);
        assert_eq!(first.errors_total, 0);
        assert!(first.last_success.is_some());

        let mut previous = first.clone();
        previous
            .profiles
            .insert(target("b"), Arc::new(settings(None)));
        let second = refresh(&fake(&["b"], &asked), &targets, &previous, true).await;
        assert_eq!(second.errors_total, 1);
        assert_eq!(second.last_success, first.last_success);
        assert_eq!(*second.profiles[&target("a")], settings(Some(60)));
        assert_eq!(*second.profiles[&target("b")], settings(None));
    }

    #[tokio::test]
    async fn a_partial_refresh_fetches_only_newcomers_and_forgets_the_removed() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let mut previous = ProfileDetailsState::default();
        previous
            .profiles
            .insert(target("a"), Arc::new(settings(None)));
        previous
            .profiles
            .insert(target("gone"), Arc::new(settings(None)));
        let next = refresh(
            &fake(&[], &asked),
            &[target("a"), target("new")],
            &previous,
            false,
        )
        .await;
        assert_eq!(*asked.lock().unwrap(), ["new"]);
        assert_eq!(next.profiles.len(), 2);
        assert!(!next.profiles.contains_key(&target("gone")));
        // Only a full refresh says everything is up to date.
        assert_eq!(next.last_success, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_refresher_fetches_at_once_and_then_on_its_interval() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let refresher = Refresher::new(Permits::share_of(8), Default::default());
        let details = spawn(
            &refresher,
            fake(&[], &asked),
            TargetSource::Static(vec![target("a")].into()),
            Duration::from_secs(3600),
            None,
        );
        let mut state = details.state.clone();
        state.changed().await.unwrap();
        assert_eq!(state.borrow().profiles.len(), 1);
        tokio::time::sleep(Duration::from_secs(3599)).await;
        assert_eq!(asked.lock().unwrap().len(), 1);
        state.changed().await.unwrap();
        assert_eq!(asked.lock().unwrap().len(), 2);
    }

    #[test]
    fn containers_count_per_documented_type_and_other() {
        assert_eq!(
            count_containers([6, 2, 2, 1, 42, 999, 105]),
            vec![
                ("google_vault_matter", 1),
                ("mailbox", 1),
                ("onedrive", 2),
                ("other", 2),
                ("project_online", 1),
            ]
        );
    }
}
