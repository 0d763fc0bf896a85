//! [`WebConfigHandle`]: the web config in force while running. It keeps the
//! file's and the certificate files' stamps (modification time, size, inode)
//! and reads them all again when one changes, so certificates rotate without
//! a restart; a failing re-read keeps the last good config.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::auth::Authenticator;
use super::{Invalid, WebConfig, WebConfigError};
use crate::sync::lock;

/// What identifies a version of a file without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some((metadata.modified().ok()?, metadata.len(), inode))
}

/// The stamps of all the files a config was read from, in its order.
fn file_stamps(config: &WebConfig) -> Vec<Stamp> {
    config.files.iter().map(|f| stamp(f)).collect()
}

struct Current {
    config: Arc<WebConfig>,
    stamps: Vec<Stamp>,
    /// The stamps of the last load that failed, so it is logged once.
    failed: Option<Vec<Stamp>>,
}

/// The web config in force, re-read when its files change.
pub struct WebConfigHandle {
    path: PathBuf,
    tls: bool,
    current: Mutex<Current>,
    /// Lives here rather than in a [`WebConfig`] so that its cache and its
    /// bound on bcrypt work outlast a reload.
    pub(super) auth: Authenticator,
}

impl fmt::Debug for WebConfigHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfigHandle")
            .field("path", &self.path)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl WebConfigHandle {
    /// Load the file (an error is fatal at start).
    pub fn load(path: &Path) -> Result<Arc<Self>, WebConfigError> {
        let config = WebConfig::load(path)?;
        let stamps = file_stamps(&config);
        Ok(Arc::new(WebConfigHandle {
            path: path.to_owned(),
            tls: config.tls_enabled(),
            current: Mutex::new(Current {
                config: Arc::new(config),
                stamps,
                failed: None,
            }),
            auth: Authenticator::new(),
        }))
    }

    /// Whether the listener serves TLS (fixed at start).
    pub fn tls_enabled(&self) -> bool {
        self.tls
    }

    /// The config in force: re-read first if the file or a certificate file
    /// changed since the last read. A failing re-read logs a warning (once
    /// per change) and keeps the last good config.
    pub fn current(&self) -> Arc<WebConfig> {
        let mut current = lock(&self.current);
        let stamps = file_stamps(&current.config);
        if stamps == current.stamps || current.failed.as_ref() == Some(&stamps) {
            return Arc::clone(&current.config);
        }
        match self.reload() {
            Ok(config) => {
                // Stamps of the files as read (a file may have changed between
                // the check above and the read; then the next call reads again).
                current.stamps = file_stamps(&config);
                current.failed = None;
                current.config = Arc::new(config);
                tracing::info!(file = %self.path.display(), "web config reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "web config reload failed; keeping the last good config");
                current.failed = Some(stamps);
            }
        }
        Arc::clone(&current.config)
    }

    /// Read the file again. The listener was set up for TLS or plain HTTP
    /// at start, so a file that switches is refused.
    fn reload(&self) -> Result<WebConfig, WebConfigError> {
        let config = WebConfig::load(&self.path)?;
        if config.tls_enabled() == self.tls {
            Ok(config)
        } else {
            Err(Invalid { path: &self.path }.at(
                "tls_server_config",
                "TLS cannot be turned on or off while running; restart the exporter",
            ))
        }
    }
}
