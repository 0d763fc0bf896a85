//! [`ConfigError`] and [`ConfigFile`], the file being validated, through
//! which every section validator reports, so each error names the file and
//! the key.

use std::path::{Path, PathBuf};

/// A config error: always names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: cannot read it: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key has a value that is not allowed, or a required key is missing.
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Dotted path of the offending key, e.g. `avepoint.concurrency`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The config file being validated: every section validator reports through
/// it, so each [`ConfigError::Invalid`] names the file without every
/// function taking the path.
pub(super) struct ConfigFile<'a> {
    pub(super) path: &'a Path,
}

impl ConfigFile<'_> {
    /// The error for `key` (a dotted path such as `avepoint.concurrency`).
    pub(super) fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// A path from the file, relative to the file's folder, as users expect
    /// of `client_secret_file` and the other file keys.
    pub(super) fn resolve(&self, file: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new("")).join(file)
    }

    /// Read a file named by `key` with `read`; the resolved path comes back
    /// too, for later messages about the content.
    pub(super) fn read<T>(
        &self,
        key: &str,
        file: &Path,
        read: fn(&Path) -> std::io::Result<T>,
    ) -> Result<(PathBuf, T), ConfigError> {
        let file = self.resolve(file);
        let content = read(&file).map_err(|error| {
            self.invalid(key, format!("cannot read {}: {error}", file.display()))
        })?;
        Ok((file, content))
    }
}
