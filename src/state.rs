//! The running exporter's state: what one config builds (a [`Pipeline`]),
//! the [`AppState`] the web routes share, and reloading the config file
//! into it (SIGHUP, `POST /-/reload`).
//!
//! A reload parses, validates and builds a complete new pipeline first;
//! only if all of that works is it swapped in. A bad edit never replaces a
//! good config: the old one keeps serving, and
//! `avepoint_exporter_config_last_reload_successful` says 0.
//!
//! Imports `config`, `avepoint`, `discovery`, `collect` and `metrics`; never
//! `web`, `serve` or `app`, which build on it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::avepoint::{ApiClient, ApiMetrics};
use crate::collect::{ScrapeRounds, TargetSource};
use crate::config::{ConfigError, Settings, process_env};
use crate::discovery::{Discovery, DiscoveryState};
use crate::metrics::{BuildInfo, ReloadMetrics};
use crate::sync::{read, write};

/// Why a config could not be built into a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
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
/// flight finishes with the config it started with.
pub struct Pipeline {
    /// Runs the collection rounds.
    pub rounds: Arc<ScrapeRounds>,
    /// Whether `/metrics` collects the profiles (else only `/probe` does).
    pub metrics_include_profiles: bool,
    /// Discovery, when enabled; dropping the pipeline stops it.
    pub discovery: Option<Discovery>,
}

impl Pipeline {
    /// Build the pipeline of `settings`. Discovery starts in the background
    /// at once, so this must run inside the Tokio runtime. `previous` is the
    /// pipeline a reload replaces: its back-off carries over, and its
    /// discovery results serve until the new discovery has refreshed.
    pub fn build(
        settings: &Settings,
        api_metrics: &ApiMetrics,
        previous: Option<&Pipeline>,
    ) -> Result<Self, BuildError> {
        let client = Arc::new(ApiClient::new(&settings.avepoint, api_metrics.clone())?);
        if let Some(previous) = previous {
            client.inherit_backoff(previous.rounds.client());
        }
        let discovery = settings.discovery.clone().map(|discovery| {
            let carried = previous.and_then(Pipeline::discovery_state);
            crate::discovery::spawn(
                Arc::clone(&client),
                discovery,
                settings.targets.clone(),
                carried.as_deref(),
            )
        });
        let targets = match &discovery {
            Some(discovery) => TargetSource::Discovered(discovery.state.clone()),
            None => TargetSource::Static(settings.targets.clone().into()),
        };
        Ok(Self {
            rounds: Arc::new(ScrapeRounds::new(
                client,
                targets,
                settings.avepoint.cache_ttl,
                settings.avepoint.round_timeout,
            )),
            metrics_include_profiles: settings.metrics_include_profiles,
            discovery,
        })
    }

    /// Discovery's latest state, when discovery is enabled.
    pub fn discovery_state(&self) -> Option<Arc<DiscoveryState>> {
        self.discovery
            .as_ref()
            .map(|d| Arc::clone(&d.state.borrow()))
    }
}

/// What the web handlers share; built once at start.
pub struct AppState {
    /// What the config built; replaced whole by a reload.
    pipeline: RwLock<Arc<Pipeline>>,
    /// The config file, when the state came from one (a reload re-reads it).
    pub config_file: Option<PathBuf>,
    /// Outcome of the last config reload.
    pub reload_metrics: ReloadMetrics,
    /// The exporter's own API instrumentation (survives reloads).
    pub api_metrics: ApiMetrics,
    /// Version information.
    pub build: BuildInfo,
    /// Where metrics are served, e.g. `/metrics`.
    pub telemetry_path: String,
}

impl AppState {
    /// The state for `settings`, serving metrics at `telemetry_path`. With
    /// `config_file`, SIGHUP and `POST /-/reload` re-read that file; without
    /// (the demo, `check`), there is nothing to reload.
    pub fn build(
        settings: &Settings,
        telemetry_path: &str,
        config_file: Option<&Path>,
    ) -> Result<Arc<Self>, BuildError> {
        let api_metrics = ApiMetrics::default();
        let pipeline = Pipeline::build(settings, &api_metrics, None)?;
        Ok(Arc::new(Self {
            pipeline: RwLock::new(Arc::new(pipeline)),
            config_file: config_file.map(Path::to_owned),
            reload_metrics: ReloadMetrics::started(),
            api_metrics,
            build: BuildInfo::default(),
            telemetry_path: telemetry_path.to_owned(),
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

    /// Reload the config file; on failure the old config stays in force.
    /// The outcome is logged and exported either way.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let path = self.config_file.as_ref().ok_or(ReloadError::NoConfigFile)?;
        let built = Settings::load(path, process_env)
            .map_err(BuildError::from)
            .and_then(|settings| {
                Pipeline::build(&settings, &self.api_metrics, Some(&self.pipeline()))
                    .map(|pipeline| (settings, pipeline))
            });
        match built {
            Ok((settings, pipeline)) => {
                let targets = pipeline.rounds.targets().len();
                *write(&self.pipeline) = Arc::new(pipeline);
                self.reload_metrics.record(true);
                tracing::info!(
                    config = %path.display(),
                    targets,
                    discovery = settings.discovery.is_some(),
                    "config reloaded"
                );
                Ok(())
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
                        tracing::error!(%error, "cannot listen for SIGHUP; reload with POST /-/reload");
                        return;
                    }
                };
                while hangups.recv().await.is_some() {
                    // The outcome is logged and exported by reload itself.
                    let _ = state.reload();
                }
            });
        }
    }
}
