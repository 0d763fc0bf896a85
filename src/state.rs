//! The running exporter's state: what one config builds (a [`Pipeline`]),
//! the [`AppState`] the web routes share, and reloading the config file
//! into it (SIGHUP, `POST /-/reload`).
//!
//! A reload parses, validates and builds a complete new pipeline first;
//! only if all of that works is it swapped in. A bad edit never replaces a
//! good config: the old one keeps serving, and
//! `avepoint_exporter_config_last_reload_successful` says 0.
//!
//! Imports `config`, `avepoint`, `refresher`, `discovery`, `collect` and
//! `metrics`; never
//! `web`, `serve` or `app`, which build on it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::avepoint::{ApiClient, ApiMetrics, details};
use crate::backup::{CollectorTasks, CustomerSource};
use crate::collect::ScrapeRounds;
use crate::config::{ConfigError, ProfileTarget, ReportSchedule, Settings, process_env};
use crate::discovery::{Discovery, TargetSource};
use crate::metrics::{BuildInfo, ReloadMetrics, SharedBodies};
use crate::profile_details::{ProfileDetailsTask, ProfileSettings};
use crate::refresher::{PanicCounts, Refresher};
use crate::report_schedule::{ReadFailure, ScheduledReports};
use crate::sync::{read, write};

mod reuse;
mod serving;

use reuse::refresher_for;
pub use serving::{ProbeError, ProbeInputs};

/// Why a config could not be built into a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] crate::avepoint::ClientError),
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The exporter was not started from a config file (the demo).
    #[error("nothing to reload: the exporter was not started with --config.file")]
    NoConfigFile,
    /// The new config is invalid or could not be built.
    #[error(transparent)]
    Invalid(#[from] BuildError),
}

/// Everything built from one config: API client, collection rounds and
/// (when enabled) discovery. Replaced whole by a reload, so a scrape in
/// flight finishes with the config it started with; the client and the
/// discovery are shared with the replacement when the reload left them alone.
pub struct Pipeline {
    /// The settings it was built from.
    pub settings: Settings,
    /// The API client: token cache, concurrency bound, rate limiter, back-off.
    pub client: Arc<ApiClient>,
    /// Drives the background readers within their share of the client's
    /// concurrency bound; shared with the replacement along with the client.
    pub refresher: Refresher,
    /// Runs the collection rounds.
    pub rounds: Arc<ScrapeRounds>,
    /// Discovery, when enabled; stops when the last pipeline sharing it drops.
    pub discovery: Option<Arc<Discovery>>,
    /// The profile details refresher, unless disabled; shared like discovery.
    pub profile_details: Option<Arc<ProfileDetailsTask>>,
    /// The per-customer collectors that are enabled; shared like discovery.
    pub backup: CollectorTasks,
}

impl Pipeline {
    /// Build the pipeline of `settings`. Discovery starts in the background
    /// at once, so this must run inside the Tokio runtime. `previous` is the
    /// pipeline a reload replaces: its client is kept when the `avepoint`
    /// settings did not change (else its back-off carries over), its
    /// discovery is kept when nothing discovery depends on changed (else its
    /// results serve until the new discovery has refreshed).
    ///
    /// Background readers count their panics in `panics`.
    pub fn build(
        settings: &Settings,
        api_metrics: &ApiMetrics,
        panics: &PanicCounts,
        previous: Option<&Pipeline>,
    ) -> Result<Self, BuildError> {
        let client = match previous {
            Some(previous) if previous.settings.avepoint.same_client(&settings.avepoint) => {
                Arc::clone(&previous.client)
            }
            _ => {
                let client = ApiClient::new(&settings.avepoint, api_metrics.clone())?;
                if let Some(previous) = previous {
                    client.inherit_backoff(&previous.client);
                }
                Arc::new(client)
            }
        };
        // One permit share per client: readers a reload keeps and readers
        // it starts anew share the same quarter of its concurrency.
        let refresher = refresher_for(settings, &client, panics, previous);
        let discovery = settings.discovery.as_ref().map(|discovery| {
            match previous.and_then(|previous| previous.reusable_discovery(settings, &client)) {
                Some(running) => running,
                None => Arc::new(crate::discovery::spawn(
                    &refresher,
                    Arc::clone(&client),
                    discovery.clone(),
                    settings.targets.clone(),
                    previous.and_then(Pipeline::discovery_state).as_deref(),
                )),
            }
        });
        let targets = match &discovery {
            Some(discovery) => TargetSource::Discovered(discovery.state.clone()),
            None => TargetSource::Static(settings.targets.clone().into()),
        };
        let profile_details = match previous
            .and_then(|previous| previous.reusable_details(settings, &client, &discovery))
        {
            Some(running) => Some(running),
            None => spawn_details(settings, &refresher, &client, &targets, previous),
        };
        let backup = match previous
            .filter(|previous| previous.can_share_backup(settings, &client, &discovery))
        {
            Some(previous) => previous.backup.clone(),
            None => spawn_backup(settings, &refresher, &client, &discovery),
        };
        let mut rounds = ScrapeRounds::new(
            Arc::clone(&client),
            targets.clone(),
            settings.avepoint.limits.cache_ttl,
            settings.avepoint.limits.round_timeout,
        );
        if let Some(schedule) = settings.collectors.report_schedule {
            rounds = rounds.serving(spawn_scheduled_reports(
                settings,
                schedule,
                &refresher,
                &client,
                targets,
                profile_details.as_ref(),
                previous,
            ));
        }
        Ok(Self {
            settings: settings.clone(),
            rounds: Arc::new(rounds),
            client,
            refresher,
            discovery,
            profile_details,
            backup,
        })
    }
}

/// The per-customer collectors `settings` enables, reading the config's
/// customers and the ones `discovery` finds.
fn spawn_backup(
    settings: &Settings,
    refresher: &Refresher,
    client: &Arc<ApiClient>,
    discovery: &Option<Arc<Discovery>>,
) -> CollectorTasks {
    let customers = CustomerSource {
        configured: settings.customers.clone(),
        discovered: discovery.as_ref().map(|d| d.state.clone()),
    };
    crate::backup::spawn(refresher, client, &customers, &settings.collectors)
}

/// A new details refresher for `settings`, unless details are disabled;
/// it serves `previous`'s details until its first refresh ends.
fn spawn_details(
    settings: &Settings,
    refresher: &Refresher,
    client: &Arc<ApiClient>,
    targets: &TargetSource,
    previous: Option<&Pipeline>,
) -> Option<Arc<ProfileDetailsTask>> {
    let details = settings.profile_details.as_ref()?;
    let client = Arc::clone(client);
    let fetch = move |target: ProfileTarget| {
        let client = Arc::clone(&client);
        async move {
            let ids = [target.customer_id.as_str(), target.profile_id.as_str()];
            let details = client.get(details::PROFILE_DETAILS, ids).await?;
            Ok::<_, crate::avepoint::ApiError>(ProfileSettings::from(&details))
        }
    };
    Some(Arc::new(crate::profile_details::spawn(
        refresher,
        fetch,
        targets.clone(),
        details.refresh_interval,
        previous
            .and_then(Pipeline::profile_details_state)
            .as_deref(),
    )))
}

/// The reader of `refresh: report_schedule`. It keeps the plans of the
/// reader it replaces (a reload) for every profile still a target, so a
/// reload reads nothing again.
fn spawn_scheduled_reports(
    settings: &Settings,
    schedule: ReportSchedule,
    refresher: &Refresher,
    client: &Arc<ApiClient>,
    targets: TargetSource,
    details: Option<&Arc<ProfileDetailsTask>>,
    previous: Option<&Pipeline>,
) -> Arc<ScheduledReports> {
    let client = Arc::clone(client);
    let round_timeout = settings.avepoint.limits.round_timeout;
    let fetch = move |target: ProfileTarget| {
        let client = Arc::clone(&client);
        async move {
            let deadline = tokio::time::Instant::now() + round_timeout;
            client
                .scan_profile(&target, deadline)
                .await
                .map_err(|error| {
                    tracing::warn!(
                        customer_id = %target.customer_id,
                        profile_id = %target.profile_id,
                        status = %error.kind(),
                        error = %error,
                        "scheduled scan report read failed; retried with a growing delay"
                    );
                    ReadFailure {
                        kind: error.kind(),
                        request_id: error.request_id().map(str::to_owned),
                        message: error.to_string(),
                    }
                })
        }
    };
    let previous = previous
        .and_then(|previous| previous.rounds.scheduled())
        .map(|scheduled| Arc::clone(&scheduled.state.borrow()));
    Arc::new(crate::report_schedule::spawn(
        refresher,
        fetch,
        targets,
        details.map(|details| details.state.clone()),
        schedule,
        previous.as_deref(),
    ))
}

/// How the web face is set up, beside the config file.
#[derive(Debug, Clone)]
pub struct StateOptions {
    /// Where metrics are served (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// The config file, which SIGHUP (and `POST /-/reload` when the
    /// lifecycle API is on) re-reads; `None`: nothing to reload (the demo,
    /// `check`).
    pub config_file: Option<PathBuf>,
    /// Whether `POST /-/reload` works (`--web.enable-lifecycle`), as in
    /// Prometheus: off by default, since anyone who can reach the port
    /// could otherwise make the exporter re-read its config at will.
    pub enable_lifecycle: bool,
}

impl Default for StateOptions {
    fn default() -> Self {
        Self {
            telemetry_path: "/metrics".to_owned(),
            config_file: None,
            enable_lifecycle: false,
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A changed config is in force now.
    Reloaded,
    /// The file and the files it names are as they were: nothing was rebuilt.
    Unchanged,
}

/// The result of the last reload, handed to every request it covered.
type SharedReloadResult = Result<ReloadOutcome, Arc<ReloadError>>;

/// What the web handlers share; built once at start.
pub struct AppState {
    /// What the config built; replaced whole by a reload.
    pipeline: RwLock<Arc<Pipeline>>,
    /// How the state was set up.
    pub options: StateOptions,
    /// Outcome of the last config reload.
    pub reload_metrics: ReloadMetrics,
    /// The exporter's own API instrumentation (survives reloads).
    pub api_metrics: ApiMetrics,
    /// Panics of the background readers (survive reloads).
    pub background_panics: PanicCounts,
    /// Version information.
    pub build: BuildInfo,
    /// The scrape bodies of the latest rounds, encoded once for all their
    /// callers.
    pub scrape_bodies: SharedBodies,
    /// The same for `/probe`.
    pub probe_bodies: SharedBodies,
    /// Reload requests so far; a request is covered by a reload that
    /// started after it was made.
    reloads_requested: AtomicU64,
    /// Serializes reloads; holds how many requests the last one covered,
    /// and its result.
    reload_lock: tokio::sync::Mutex<(u64, SharedReloadResult)>,
}

impl AppState {
    /// The state for `settings`, set up as `options` says.
    pub fn build(settings: &Settings, options: StateOptions) -> Result<Arc<Self>, BuildError> {
        let api_metrics = ApiMetrics::default();
        let background_panics = PanicCounts::default();
        let pipeline = Pipeline::build(settings, &api_metrics, &background_panics, None)?;
        Ok(Arc::new(Self {
            pipeline: RwLock::new(Arc::new(pipeline)),
            options,
            reload_metrics: ReloadMetrics::started(),
            api_metrics,
            background_panics,
            build: BuildInfo::default(),
            scrape_bodies: SharedBodies::default(),
            probe_bodies: SharedBodies::default(),
            reloads_requested: AtomicU64::new(0),
            reload_lock: tokio::sync::Mutex::new((0, Ok(ReloadOutcome::Unchanged))),
        }))
    }

    /// The current pipeline.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        Arc::clone(&read(&self.pipeline))
    }

    /// The current collection rounds.
    pub fn rounds(&self) -> Arc<ScrapeRounds> {
        Arc::clone(&self.pipeline().rounds)
    }

    /// Where metrics are served, e.g. `/metrics`.
    pub fn telemetry_path(&self) -> &str {
        &self.options.telemetry_path
    }

    /// Reload the config file; on failure the old config stays in force.
    ///
    /// Reloads run one at a time, and requests that arrive while one runs
    /// share the next: a burst of any size costs at most two reads of the
    /// file and one rebuild. An unchanged config rebuilds nothing, so it
    /// costs AvePoint nothing either. The outcome is logged and exported.
    pub async fn reload(&self) -> SharedReloadResult {
        let ticket = self.reloads_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = self.reload_lock.lock().await;
        if last.0 >= ticket {
            return last.1.clone();
        }
        let covered = self.reloads_requested.load(Ordering::SeqCst);
        let result = self.reload_now().map_err(Arc::new);
        *last = (covered, result.clone());
        result
    }

    /// One reload, start to end.
    fn reload_now(&self) -> Result<ReloadOutcome, ReloadError> {
        let path = self
            .options
            .config_file
            .as_ref()
            .ok_or(ReloadError::NoConfigFile)?;
        let current = self.pipeline();
        let built = Settings::load(path, process_env)
            .map_err(BuildError::from)
            .and_then(|settings| {
                if settings.unchanged_from(&current.settings) {
                    return Ok(None);
                }
                Pipeline::build(
                    &settings,
                    &self.api_metrics,
                    &self.background_panics,
                    Some(&current),
                )
                .map(Some)
            });
        match built {
            Ok(None) => {
                self.reload_metrics.record(true);
                tracing::info!(config = %path.display(), "config unchanged; nothing to reload");
                Ok(ReloadOutcome::Unchanged)
            }
            Ok(Some(pipeline)) => {
                let targets = pipeline.rounds.targets().len();
                let discovery = pipeline.discovery.is_some();
                let kept_client = Arc::ptr_eq(&pipeline.client, &current.client);
                *write(&self.pipeline) = Arc::new(pipeline);
                self.reload_metrics.record(true);
                tracing::info!(
                    config = %path.display(),
                    targets,
                    discovery,
                    kept_client,
                    "config reloaded"
                );
                Ok(ReloadOutcome::Reloaded)
            }
            Err(error) => {
                self.reload_metrics.record(false);
                tracing::error!(config = %path.display(), %error, "config reload failed; the previous config stays in force");
                Err(error.into())
            }
        }
    }

    /// Reload the config on every SIGHUP, for as long as the process runs.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            let state = Arc::clone(self);
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let mut hangups = match signal(SignalKind::hangup()) {
                    Ok(hangups) => hangups,
                    Err(error) => {
                        tracing::error!(%error, "cannot listen for SIGHUP");
                        return;
                    }
                };
                while hangups.recv().await.is_some() {
                    // The outcome is logged and exported by reload itself.
                    let _ = state.reload().await;
                }
            });
        }
    }
}
