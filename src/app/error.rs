//! [`AppError`]: why a subcommand could not run.

use crate::config::ConfigError;
use crate::serve;
use crate::state::BuildError;
use crate::web_config::WebConfigError;

/// Why a subcommand could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config could not be built into a running pipeline.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The listen address is unusable.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// `--web.listen-address` or `--web.systemd-socket` cannot be used.
    #[error(transparent)]
    Listeners(#[from] serve::ListenError),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The `--web.config.file` is invalid.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
}
