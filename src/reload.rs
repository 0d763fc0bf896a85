//! Re-reading the config file (SIGHUP, `POST /-/reload`) without a restart.
//!
//! The new file is parsed, validated and built into a complete [`crate::web::Core`]
//! first; only if all of that works is it swapped in. A bad edit never
//! replaces a good config: the old one keeps serving, and
//! `avepoint_exporter_config_last_reload_successful` says 0.

use crate::app::{AppError, build_core, process_env};
use crate::config::Settings;
use crate::web::AppState;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The exporter was not started from a config file (the demo).
    #[error("nothing to reload: the exporter was not started with --config.file")]
    NoConfigFile,
    /// The new config is invalid or could not be built.
    #[error(transparent)]
    Invalid(#[from] AppError),
}

/// Reload the config file into `state`; on failure the old config stays.
pub fn reload(state: &AppState) -> Result<(), ReloadError> {
    let path = state
        .config_file
        .as_ref()
        .ok_or(ReloadError::NoConfigFile)?;
    let built = Settings::load(path, process_env)
        .map_err(AppError::from)
        .and_then(|settings| {
            build_core(&settings, &state.api_metrics, Some(&state.core()))
                .map(|core| (settings, core))
        });
    match built {
        Ok((settings, core)) => {
            let targets = core.collector.targets().len();
            state.replace_core(core);
            state.reload_metrics.record(true);
            tracing::info!(
                config = %path.display(),
                targets,
                discovery = settings.discovery.is_some(),
                "config reloaded"
            );
            Ok(())
        }
        Err(error) => {
            state.reload_metrics.record(false);
            tracing::error!(config = %path.display(), %error, "config reload failed; the previous config stays in force");
            Err(error.into())
        }
    }
}
