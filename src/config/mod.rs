//! The YAML config file, environment overrides and validation into [`Settings`].
//!
//! Parsing is strict (unknown keys are typos, and typos are errors) and every
//! error names the file and the key, so a broken deployment says what to fix.
//!
//! This module holds the public types and [`Settings::from_yaml`], which
//! runs the checks in the order their errors are reported; the submodules
//! hold the YAML decoding (`yaml`), the file as written (`raw`) and one
//! validator per section (`avepoint`, `discovery`, `targets`).
//!
//! Config is the start of the data flow, so it imports nothing of the crate,
//! with one accepted exception against that flow:
//! `crate::avepoint::certificate::{CertificateError, ClientCertificate}`, because
//! the certificate is checked at load, where a bad one is a config error
//! naming the key, not a failure at the first token request.

mod avepoint;
mod collectors;
mod discovery;
mod profile_details;
mod raw;
mod targets;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::avepoint::certificate::ClientCertificate;

pub use collectors::{
    BACKUP_COVERAGE_SCOPE, BACKUP_JOBS_SCOPE, BackupCollectorSettings, CollectorSettings,
    ReportSchedule, SCAN_PROFILES_SCOPE,
};
pub use discovery::{DiscoveryRule, DiscoverySettings, ListLimits};
pub use profile_details::ProfileDetailsSettings;
pub(crate) use yaml::parse_yaml;

/// Environment variable that overrides `avepoint.client_id`.
pub const CLIENT_ID_ENV: &str = "AVEPOINT_CLIENT_ID";
/// Environment variable that overrides `avepoint.client_secret_file`.
pub const CLIENT_SECRET_ENV: &str = "AVEPOINT_CLIENT_SECRET";
/// Default for `avepoint.max_response_bytes`: 64 MiB, room for a `changes`
/// body with a few hundred thousand objects in its lists. Reports are
/// decoded as they stream in, so this caps bytes read, not memory held.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Upper bound for `avepoint.concurrency`; more would only hurt AvePoint.
pub const MAX_CONCURRENCY: usize = 1024;
/// Default for `avepoint.round_timeout`: Prometheus' default scrape timeout
/// (10 s) minus the 0.5 s the exporter keeps back to answer in time.
pub const DEFAULT_ROUND_TIMEOUT: Duration = Duration::from_millis(9500);
/// Upper bound for `avepoint.round_timeout`, as for the scrape timeout
/// header: an hour.
pub const MAX_ROUND_TIMEOUT: Duration = Duration::from_secs(3600);
/// Permission needed to list customers.
pub const CUSTOMERS_SCOPE: &str = "elements.customers.read.all";

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

/// AvePoint Elements environment: picks the token and API URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// The commercial cloud (default).
    #[default]
    Commercial,
    /// U.S. Government.
    Gov,
    /// AOS2.
    Aos2,
    /// FedRAMP (Project Hosts).
    Fedramp,
}

impl Environment {
    /// The OAuth2 token URL of this environment.
    pub fn token_url(self) -> &'static str {
        match self {
            Environment::Commercial => "https://identity.avepointonlineservices.com/connect/token",
            Environment::Gov => "https://identity-gov.avepointonlineservices.com/connect/token",
            Environment::Aos2 => "https://identity-aos2.avepointonlineservices.com/connect/token",
            Environment::Fedramp => "https://identity.online15.net/connect/token",
        }
    }

    /// The Graph API base URL of this environment.
    pub fn base_url(self) -> &'static str {
        match self {
            Environment::Commercial => "https://graph.avepointonlineservices.com",
            Environment::Gov => "https://graph-gov.avepointonlineservices.com",
            Environment::Aos2 => "https://graph-aos2.avepointonlineservices.com",
            Environment::Fedramp => "https://graphusgovapi.online15.net",
        }
    }
}

/// Which path serves a profile's daily report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ProfileEndpoint {
    /// `scan-profiles-v2` first; when it answers 404 (or 405, as a gateway
    /// may answer an unknown route) and `changes` answers for the same
    /// profile, `changes` from then on (the default: AvePoint's published
    /// docs name only `changes`).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// `.../scan-profiles-v2/{id}`: the path this project was specified with.
    #[serde(rename = "scan-profiles-v2")]
    ScanProfilesV2,
    /// `.../scan-profiles/{id}/changes`: the current public path.
    #[serde(rename = "changes")]
    Changes,
}

impl ProfileEndpoint {
    /// The config spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ProfileEndpoint::Auto => "auto",
            ProfileEndpoint::ScanProfilesV2 => "scan-profiles-v2",
            ProfileEndpoint::Changes => "changes",
        }
    }

    /// The other endpoint, suggested when this one answers 404.
    pub fn other(self) -> Self {
        match self {
            ProfileEndpoint::Auto | ProfileEndpoint::ScanProfilesV2 => ProfileEndpoint::Changes,
            ProfileEndpoint::Changes => ProfileEndpoint::ScanProfilesV2,
        }
    }

    /// Path of one profile's report below the API base URL (`auto` starts
    /// with `scan-profiles-v2`'s).
    pub fn path(self, customer_id: &str, profile_id: &str) -> String {
        match self {
            ProfileEndpoint::Auto | ProfileEndpoint::ScanProfilesV2 => format!(
                "/partner/external/v3/general/customers/{customer_id}/scan-profiles-v2/{profile_id}"
            ),
            ProfileEndpoint::Changes => format!(
                "/partner/external/v3/general/customers/{customer_id}/scan-profiles/{profile_id}/changes"
            ),
        }
    }
}

/// Which series of the status state set `avepoint_scan_last_status_state`
/// each profile gets (`metrics.last_status_state`). The raw code gauge
/// `avepoint_scan_last_status` is exported in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastStatusState {
    /// One series per documented state, 1 for the current one and 0 for
    /// the others (the default: 15 series per profile).
    #[default]
    All,
    /// Only the current state's series, with value 1 (none for an
    /// undocumented status code).
    Current,
    /// No state set at all; the raw code gauge remains.
    None,
}

impl LastStatusState {
    /// The config spelling, for messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            LastStatusState::All => "all",
            LastStatusState::Current => "current",
            LastStatusState::None => "none",
        }
    }
}

/// Validated settings: everything the exporter needs, checked once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from, for messages.
    pub source: PathBuf,
    /// SHA-256 of the config text: with [`AvePointSettings::same_client`]
    /// (which covers the files the text names), what tells a reload that
    /// nothing changed.
    pub source_digest: [u8; 32],
    /// Connection to AvePoint.
    pub avepoint: AvePointSettings,
    /// The scan profiles listed in the file (discovery may add more).
    pub targets: Vec<ProfileTarget>,
    /// Every customer `targets` names, in file order (for the per-customer
    /// collectors; discovery may add more).
    pub customers: Vec<String>,
    /// Finding customers and profiles through the API, when enabled.
    pub discovery: Option<DiscoverySettings>,
    /// Which collectors run.
    pub collectors: CollectorSettings,
    /// Fetching each profile's details in the background, unless disabled.
    pub profile_details: Option<ProfileDetailsSettings>,
    /// Whether `/metrics` fetches and serves every target's profile
    /// metrics (`metrics.include_profiles`, default true). Off when
    /// Prometheus scrapes customers through `/sd` + `/probe`, so the API is
    /// not called twice for the same profiles.
    pub metrics_include_profiles: bool,
    /// Which series of `avepoint_scan_last_status_state` are exported
    /// (`metrics.last_status_state`, default `all`), on `/metrics` and
    /// `/probe` alike.
    pub metrics_last_status_state: LastStatusState,
}

/// How to reach and authenticate to AvePoint.
#[derive(Debug, Clone)]
pub struct AvePointSettings {
    /// The environment the URLs default from.
    pub environment: Environment,
    /// API base URL (environment default unless overridden).
    pub base_url: Url,
    /// OAuth2 token URL (environment default unless overridden).
    pub token_url: Url,
    /// App registration client id.
    pub client_id: String,
    /// App registration client secret; `Debug` shows `[REDACTED]`. Empty
    /// when the app authenticates with [`AvePointSettings::client_certificate`].
    pub client_secret: SecretString,
    /// The certificate credential (`avepoint.client_certificate_file` and
    /// `avepoint.client_private_key_file`), used instead of the secret when
    /// set; `Debug` never shows the private key.
    pub client_certificate: Option<ClientCertificate>,
    /// Extra trusted CA certificates (`avepoint.ca_file`), added to the
    /// system's, e.g. for a TLS-inspecting proxy.
    pub extra_root_certificates: Vec<reqwest::Certificate>,
    /// The PEM text of `avepoint.ca_file` (empty without one): what tells a
    /// reload whether the trusted certificates changed.
    pub ca_pem: Vec<u8>,
    /// Space-separated permissions requested with the token.
    pub scope: String,
    /// Which profile endpoint to call.
    pub endpoint: ProfileEndpoint,
    /// Upper bound for one HTTP request to AvePoint.
    pub request_timeout: Duration,
    /// Deadline of a collection round, counted from its start: concurrent
    /// scrapes and probes share a round, so its length is set here, never
    /// by a caller's scrape timeout header.
    pub round_timeout: Duration,
    /// How many profiles are fetched at once.
    pub concurrency: usize,
    /// How long a fetched report may be served again (0 = never).
    pub cache_ttl: Duration,
    /// Upper bound on API requests per second over everything (None = none).
    pub max_requests_per_second: Option<f64>,
    /// Largest response body accepted from the API.
    pub max_response_bytes: usize,
}

impl AvePointSettings {
    /// Whether an API client built from `other` would be the same as one
    /// built from these settings: same URLs, credential (secret, certificate),
    /// trusted certificates, scope, endpoint and limits. A reload that leaves
    /// them alone keeps the running client, and with it the token, the
    /// concurrency bound, the rate limiter and any back-off. (`cache_ttl`
    /// belongs to the collection rounds, not the client.)
    pub fn same_client(&self, other: &AvePointSettings) -> bool {
        let same_certificate = match (&self.client_certificate, &other.client_certificate) {
            (Some(mine), Some(theirs)) => mine.certificate_der() == theirs.certificate_der(),
            (None, None) => true,
            _ => false,
        };
        self.environment == other.environment
            && self.base_url == other.base_url
            && self.token_url == other.token_url
            && self.client_id == other.client_id
            && self.client_secret.expose_secret() == other.client_secret.expose_secret()
            && same_certificate
            && self.ca_pem == other.ca_pem
            && self.scope == other.scope
            && self.endpoint == other.endpoint
            && self.request_timeout == other.request_timeout
            && self.concurrency == other.concurrency
            && self.max_requests_per_second == other.max_requests_per_second
            && self.max_response_bytes == other.max_response_bytes
    }
}

impl Settings {
    /// Whether `other` (a reload of the same file) is the very same config:
    /// the same text, and the same contents of the files it names.
    pub fn unchanged_from(&self, other: &Settings) -> bool {
        self.source == other.source
            && self.source_digest == other.source_digest
            && self.avepoint.same_client(&other.avepoint)
    }
}

/// The form every id in a [`ProfileTarget`] takes: the lower-case,
/// hyphenated UUID, whatever spelling it came in (case, braces, no hyphens),
/// or `None` when it is not a UUID. Discovery and `/probe` use it, so that
/// one id is one target everywhere.
pub fn canonical_uuid(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id.trim())
        .ok()
        .map(|id| id.to_string())
}

/// One scan profile to export.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileTarget {
    /// Customer id (lower-case UUID).
    pub customer_id: String,
    /// Scan profile id (lower-case UUID).
    pub profile_id: String,
}

impl fmt::Display for ProfileTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "customer {} profile {}",
            self.customer_id, self.profile_id
        )
    }
}

/// Look up environment variables for [`Settings::load`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Settings {
    /// Read, parse and validate a config file. `env` looks up environment
    /// variables (pass [`process_env`]); tests pass a map.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path, env)
    }

    /// Parse and validate config text; `path` is only used in messages and
    /// to resolve relative `client_secret_file`, `client_certificate_file`
    /// and `client_private_key_file` paths.
    pub fn from_yaml(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = ConfigFile { path };
        let raw: raw::RawConfig =
            parse_yaml(text).map_err(|(key, message)| file.invalid(&key, message))?;
        let section = raw.avepoint.ok_or_else(|| {
            file.invalid(
                "avepoint",
                "missing: add an avepoint: section with at least client_id".into(),
            )
        })?;
        // The order of these calls is the order of the checks: the first
        // error in it is the one reported, and the tests pin that.
        let (base_url, token_url) = avepoint::urls(&file, &section)?;
        let client_id = avepoint::client_id(&file, &section, &env)?;
        let credential = avepoint::credential(&file, &section, &env)?;
        let limits = avepoint::limits(&file, &section)?;
        let list_limits = discovery::list_limits(&file, raw.discovery.as_ref())?;
        let mut collectors = collectors::validate(&file, raw.collectors)?;
        for backup in [&mut collectors.backup_jobs, &mut collectors.backup_coverage]
            .into_iter()
            .flatten()
        {
            backup.max_items_per_list = list_limits.max_items_per_list;
        }
        let mut discovery = discovery::validate(&file, raw.discovery)?;
        if let Some(discovery) = &mut discovery {
            discovery.list_profiles = collectors.scan_profiles;
            discovery.limits = list_limits;
        }
        let profile_details = match collectors.scan_profiles {
            true => profile_details::validate(&file, raw.profile_details, discovery.as_ref())?,
            false => None,
        };
        let scope = avepoint::scope(&file, section.scope, discovery.is_some(), &collectors)?;
        let targets = targets::validate(&file, &raw.targets, discovery.is_some(), &collectors)?;
        let metrics = raw.metrics.unwrap_or_default();
        Ok(Settings {
            source: path.to_owned(),
            source_digest: Sha256::digest(text).into(),
            avepoint: AvePointSettings {
                environment: section.environment,
                base_url,
                token_url,
                client_id,
                client_secret: credential.secret,
                client_certificate: credential.certificate,
                extra_root_certificates: limits.extra_root_certificates,
                ca_pem: limits.ca_pem,
                scope,
                endpoint: section.endpoint,
                request_timeout: limits.request_timeout,
                round_timeout: limits.round_timeout,
                concurrency: limits.concurrency,
                cache_ttl: limits.cache_ttl,
                max_requests_per_second: limits.max_requests_per_second,
                max_response_bytes: limits.max_response_bytes,
            },
            targets: targets.profiles,
            customers: targets.customers,
            discovery,
            profile_details,
            collectors,
            metrics_include_profiles: metrics.include_profiles.unwrap_or(true),
            metrics_last_status_state: metrics.last_status_state,
        })
    }
}

/// The config file being validated: every section validator reports through
/// it, so each [`ConfigError::Invalid`] names the file without every
/// function taking the path.
struct ConfigFile<'a> {
    path: &'a Path,
}

impl ConfigFile<'_> {
    /// The error for `key` (a dotted path such as `avepoint.concurrency`).
    fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// A path from the file, relative to the file's folder, as users expect
    /// of `client_secret_file` and the other file keys.
    fn resolve(&self, file: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new("")).join(file)
    }

    /// Read a file named by `key` with `read`; the resolved path comes back
    /// too, for later messages about the content.
    fn read<T>(
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
