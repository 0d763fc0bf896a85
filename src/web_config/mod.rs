//! `--web.config.file`: TLS, basic authentication and extra response headers,
//! in the Prometheus exporter-toolkit format
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>).
//!
//! This module owns that file and everything it configures: server TLS and
//! client certificates (mTLS), basic authentication, response headers, and
//! re-reading the file while running. It depends on nothing else of the crate
//! but `crate::config::parse_yaml` and `crate::sync`, so that the YAML errors read the same in
//! both files; keep it that way (the web server calls in, not the other way).
//!
//! The file is parsed strictly (unknown keys are errors naming the file and
//! the key) and checked completely, certificates included, at start; a
//! bcrypt cost above [`MAX_BCRYPT_COST`] is refused. While running,
//! [`WebConfigHandle::current`] looks at the modification time of the file
//! and of the certificate files it names on every new connection and request
//! (a `stat` each) and reads them again when one changed, so certificates
//! rotate without a restart. One request at a time looks and reloads; the
//! others go on with the config in force meanwhile. A file that fails to load
//! then is logged once and the last good config stays in force.
//!
//! Secrets (bcrypt hashes, private keys) are never part of a `Debug` output
//! or a log line.
//!
//! The parts: `parse` (the file's keys and their checks), `tls` (the rustls
//! server config), `auth` (the basic-auth middleware), `pool` (turns for
//! bcrypt checks) and `handle` (reloading).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::server::ServerConfig;
use secrecy::SecretString;

mod auth;
mod handle;
mod parse;
mod pool;
mod tls;
mod tls_names;

pub use auth::{REALM, UNAUTHENTICATED_PATHS, protect};
pub use handle::WebConfigHandle;

/// A web config error: always names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("web config file {path}: cannot read it: {source}")]
    Read {
        /// The web config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key has a value that is not allowed, or a required key is missing.
    #[error("web config file {path}: {key}: {message}")]
    Invalid {
        /// The web config file.
        path: PathBuf,
        /// Dotted path of the offending key, e.g. `tls_server_config.cert_file`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Makes [`WebConfigError::Invalid`] for one file, so that no check can
/// forget to name the file.
#[derive(Clone, Copy)]
struct Invalid<'a> {
    path: &'a Path,
}

impl Invalid<'_> {
    /// The error for `key` (a dotted path from the top of the file).
    fn at(self, key: &str, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The error for `tls_server_config.<name>`, where most checks are.
    fn tls(self, name: &str, message: impl Into<String>) -> WebConfigError {
        self.at(&format!("tls_server_config.{name}"), message)
    }
}

/// The highest bcrypt cost accepted in `basic_auth_users`. Each step doubles
/// the time of a check, paid by every first login and every wrong password:
/// measured in a release build on a shared two-core VM, cost 10 took 0.06 to
/// 0.1 s of one core, 12 0.3 to 0.4 s, 14 1.3 s. 14 admits the usual
/// defaults (`htpasswd -B` 5, Go 10, Python's `bcrypt` 12) with room to
/// spare, and keeps a first login that waits behind a few others inside
/// Prometheus' default 10 s scrape timeout. Cost 15 takes 2.5 s and more, and
/// 31 (which bcrypt allows) days: an outage, not a password policy.
/// exporter-toolkit has no such limit.
pub const MAX_BCRYPT_COST: u32 = 14;

/// The lowest bcrypt cost that bcrypt implementations (this one and Go's)
/// will check at all: a hash below it could never match.
pub const MIN_BCRYPT_COST: u32 = 4;

/// A user's bcrypt hash and its cost (read from the hash at load).
struct UserHash {
    hash: SecretString,
    cost: u32,
}

/// One validated load of the web config file.
pub struct WebConfig {
    tls: Option<Arc<ServerConfig>>,
    users: HashMap<String, UserHash>,
    /// The user with the highest bcrypt cost (the first by name among
    /// equals), whose hash stands in for an unknown user's and pads a failed
    /// check of a cheaper one, so that every refusal costs the same; see
    /// `auth`. `None` without users.
    stand_in: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    http2: bool,
    /// The files this config was read from: the web config file first, then
    /// the certificate, key and CA files.
    files: Vec<PathBuf>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &users)
            .field("password_hashes", &"<redacted>")
            .field("headers", &self.headers)
            .field("http2", &self.http2)
            .field("files", &self.files)
            .finish()
    }
}

impl WebConfig {
    /// Read, parse and check a web config file, reading the certificate files
    /// it names. Relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Whether connections are served over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The rustls server config, when TLS is enabled.
    pub fn tls_server_config(&self) -> Option<Arc<ServerConfig>> {
        self.tls.clone()
    }

    /// Whether HTTP/2 is offered (`http_server_config.http2`, default true).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Whether requests need basic authentication.
    pub fn auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_hashes() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let config = WebConfig::from_yaml(
            &format!("basic_auth_users:\n  alice: '{hash}'\n"),
            Path::new("w.yml"),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(!debug.contains(&hash), "{debug}");
        assert!(!debug.contains("$2"), "{debug}");
    }
}
