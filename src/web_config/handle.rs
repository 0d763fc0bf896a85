//! [`WebConfigHandle`]: the web config in force while running. It keeps the
//! file's and the certificate files' stamps (modification time, size, inode)
//! and reads them all again when one changes, so certificates rotate without
//! a restart; a failing re-read keeps the last good config.
//!
//! Looking for a change and reloading never hold up other requests: the
//! config in force sits behind its own lock, taken only to copy or replace
//! an `Arc`; the stamps behind another, which one request at a time takes to
//! look (and reload) while the others go on with the config in force. A
//! reload is cheap: it parses, reads the certificate files and checks the
//! hashes' format and cost, but runs no bcrypt.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::SystemTime;

use super::auth::Authenticator;
use super::{Invalid, WebConfig, WebConfigError};
use crate::sync::{read, write};

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

/// What the files looked like when last read.
struct Watch {
    /// The stamps of the files of the config in force, as it was read.
    stamps: Vec<Stamp>,
    /// The stamps of the last load that failed, so it is logged once.
    failed: Option<Vec<Stamp>>,
}

/// The web config in force, re-read when its files change.
pub struct WebConfigHandle {
    path: PathBuf,
    tls: bool,
    /// The config in force; locked only to clone or swap the `Arc`.
    current: RwLock<Arc<WebConfig>>,
    /// Taken by the one request that looks for changes and reloads.
    watch: Mutex<Watch>,
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
            current: RwLock::new(Arc::new(config)),
            watch: Mutex::new(Watch {
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
    /// changed since the last read (a `stat` of each). A failing re-read logs
    /// a warning (once per change) and keeps the last good config. While
    /// another request is looking or reloading, this one does not wait: it
    /// gets the config in force.
    pub fn current(&self) -> Arc<WebConfig> {
        self.refresh();
        Arc::clone(&read(&self.current))
    }

    /// Look for a change and reload, unless another request is doing so.
    fn refresh(&self) {
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let in_force = Arc::clone(&read(&self.current));
        let stamps = file_stamps(&in_force);
        if stamps == watch.stamps || watch.failed.as_ref() == Some(&stamps) {
            return;
        }
        match self.reload() {
            Ok(config) => {
                // Stamps of the files as read (a file may have changed between
                // the check above and the read; then the next call reads again).
                watch.stamps = file_stamps(&config);
                watch.failed = None;
                *write(&self.current) = Arc::new(config);
                tracing::info!(file = %self.path.display(), "web config reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "web config reload failed; keeping the last good config");
                watch.failed = Some(stamps);
            }
        }
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
