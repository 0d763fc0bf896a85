//! The YAML config file, environment overrides and validation into [`Settings`].
//!
//! Parsing is strict (unknown keys are typos, and typos are errors) and every
//! error names the file and the key, so a broken deployment says what to fix.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use url::Url;
use uuid::Uuid;

use crate::avepoint::auth::{CertificateError, ClientCertificate};

/// Environment variable that overrides `avepoint.client_id`.
pub const CLIENT_ID_ENV: &str = "AVEPOINT_CLIENT_ID";
/// Environment variable that overrides `avepoint.client_secret_file`.
pub const CLIENT_SECRET_ENV: &str = "AVEPOINT_CLIENT_SECRET";
/// The permission the exporter needs for the profile endpoints.
pub const DEFAULT_SCOPE: &str = "elements.scanprofiles.read.all";
/// Default for `avepoint.max_response_bytes`: 1 MiB, far above a profile
/// report; raise it for the `changes` endpoint's object lists if needed.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Upper bound for `avepoint.concurrency`; more would only hurt AvePoint.
pub const MAX_CONCURRENCY: usize = 1024;

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
    /// `.../scan-profiles-v2/{id}`: the seed's path (default).
    #[default]
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
            ProfileEndpoint::ScanProfilesV2 => "scan-profiles-v2",
            ProfileEndpoint::Changes => "changes",
        }
    }

    /// The other endpoint, suggested when this one answers 404.
    pub fn other(self) -> Self {
        match self {
            ProfileEndpoint::ScanProfilesV2 => ProfileEndpoint::Changes,
            ProfileEndpoint::Changes => ProfileEndpoint::ScanProfilesV2,
        }
    }

    /// Path of one profile's report below the API base URL.
    pub fn path(self, customer_id: &str, profile_id: &str) -> String {
        match self {
            ProfileEndpoint::ScanProfilesV2 => format!(
                "/partner/external/v3/general/customers/{customer_id}/scan-profiles-v2/{profile_id}"
            ),
            ProfileEndpoint::Changes => format!(
                "/partner/external/v3/general/customers/{customer_id}/scan-profiles/{profile_id}/changes"
            ),
        }
    }
}

/// Validated settings: everything the exporter needs, checked once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from, for messages.
    pub source: PathBuf,
    /// Connection to AvePoint.
    pub avepoint: AvePointSettings,
    /// The scan profiles listed in the file (discovery may add more).
    pub targets: Vec<ProfileTarget>,
    /// Finding customers and profiles through the API, when enabled.
    pub discovery: Option<DiscoverySettings>,
    /// Whether `/metrics` fetches and serves every target's profile
    /// metrics (`metrics.include_profiles`, default true). Off when
    /// Prometheus scrapes customers through `/sd` + `/probe`, so the API is
    /// not called twice for the same profiles.
    pub metrics_include_profiles: bool,
}

/// Permission needed to list customers.
pub const CUSTOMERS_SCOPE: &str = "elements.customers.read.all";

/// How customers and profiles are discovered.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// How often the lists are fetched again.
    pub refresh_interval: Duration,
    /// Items per page (AvePoint allows at most 100).
    pub page_size: u32,
    /// A customer/profile is kept if any of these match (or if there are none).
    pub include: Vec<DiscoveryRule>,
    /// ... and none of these match.
    pub exclude: Vec<DiscoveryRule>,
}

/// One include or exclude rule: every field given must match (anchored regex).
#[derive(Debug, Clone, Default)]
pub struct DiscoveryRule {
    /// Matches the customer id.
    pub customer_id: Option<Regex>,
    /// Matches the organization name.
    pub organization: Option<Regex>,
    /// Matches the profile name.
    pub profile_name: Option<Regex>,
}

impl DiscoveryRule {
    /// Whether the customer-level fields match (profile name not considered).
    pub fn matches_customer(&self, customer_id: &str, organization: &str) -> bool {
        self.customer_id
            .as_ref()
            .is_none_or(|re| re.is_match(customer_id))
            && self
                .organization
                .as_ref()
                .is_none_or(|re| re.is_match(organization))
    }

    /// Whether every field matches this profile of this customer.
    pub fn matches(&self, customer_id: &str, organization: &str, profile_name: &str) -> bool {
        self.matches_customer(customer_id, organization)
            && self
                .profile_name
                .as_ref()
                .is_none_or(|re| re.is_match(profile_name))
    }
}

impl DiscoverySettings {
    /// Whether some profile of this customer can still be kept (so its
    /// profiles are worth listing).
    pub fn wants_customer(&self, customer_id: &str, organization: &str) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|rule| rule.matches_customer(customer_id, organization));
        let excluded = self.exclude.iter().any(|rule| {
            rule.profile_name.is_none() && rule.matches_customer(customer_id, organization)
        });
        included && !excluded
    }

    /// Whether this profile is kept.
    pub fn wants_profile(&self, customer_id: &str, organization: &str, profile_name: &str) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|rule| rule.matches(customer_id, organization, profile_name));
        included
            && !self
                .exclude
                .iter()
                .any(|rule| rule.matches(customer_id, organization, profile_name))
    }
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
    /// Space-separated permissions requested with the token.
    pub scope: String,
    /// Which profile endpoint to call.
    pub endpoint: ProfileEndpoint,
    /// Upper bound for one HTTP request to AvePoint.
    pub request_timeout: Duration,
    /// How many profiles are fetched at once.
    pub concurrency: usize,
    /// How long a fetched report may be served again (0 = never).
    pub cache_ttl: Duration,
    /// Upper bound on API requests per second over everything (None = none).
    pub max_requests_per_second: Option<f64>,
    /// Largest response body accepted from the API.
    pub max_response_bytes: usize,
}

/// One scan profile to export.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileTarget {
    /// Customer id (lower-case UUID).
    pub customer_id: String,
    /// Scan profile id (lower-case UUID).
    pub profile_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping with the keys avepoint, targets, discovery and metrics")]
struct RawConfig {
    avepoint: Option<RawAvePoint>,
    #[serde(default)]
    targets: Vec<RawTarget>,
    discovery: Option<RawDiscovery>,
    metrics: Option<RawMetrics>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    include_profiles: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    #[serde(default)]
    enabled: bool,
    #[serde(default, deserialize_with = "duration")]
    refresh_interval: Option<Duration>,
    page_size: Option<u32>,
    #[serde(default)]
    include: Vec<RawRule>,
    #[serde(default)]
    exclude: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(
    expecting = "a mapping with any of customer_id, organization, profile_name (regular expressions)"
)]
struct RawRule {
    #[serde(default, deserialize_with = "regex")]
    customer_id: Option<Regex>,
    #[serde(default, deserialize_with = "regex")]
    organization: Option<Regex>,
    #[serde(default, deserialize_with = "regex")]
    profile_name: Option<Regex>,
}

/// A regular expression, anchored at both ends as in Prometheus relabelling.
fn regex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Regex>, D::Error> {
    struct RegexVisitor;
    impl serde::de::Visitor<'_> for RegexVisitor {
        type Value = Option<Regex>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a regular expression")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Regex::new(&format!("^(?:{text})$"))
                .map(Some)
                .map_err(|error| E::custom(format!("invalid regular expression {text:?}: {error}")))
        }
    }
    deserializer.deserialize_str(RegexVisitor)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAvePoint {
    #[serde(default)]
    environment: Environment,
    base_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_certificate_file: Option<PathBuf>,
    client_private_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    scope: Option<String>,
    #[serde(default)]
    endpoint: ProfileEndpoint,
    #[serde(default, deserialize_with = "duration")]
    request_timeout: Option<Duration>,
    concurrency: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    cache_ttl: Option<Duration>,
    max_requests_per_second: Option<f64>,
    max_response_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping with the keys customer_id and profile_ids")]
struct RawTarget {
    #[serde(deserialize_with = "uuid")]
    customer_id: Uuid,
    #[serde(deserialize_with = "uuids")]
    profile_ids: Vec<Uuid>,
}

/// A UUID, with the offending text quoted when it is not one.
fn uuid<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
    struct UuidVisitor;
    impl serde::de::Visitor<'_> for UuidVisitor {
        type Value = Uuid;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a UUID such as caf90000-2cc6-4000-b04b-794c00005ea3")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Uuid, E> {
            Uuid::parse_str(text)
                .map_err(|error| E::custom(format!("{text:?} is not a UUID: {error}")))
        }
    }
    deserializer.deserialize_str(UuidVisitor)
}

/// A list of UUIDs, each checked by [`uuid`].
fn uuids<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Uuid>, D::Error> {
    #[derive(Deserialize)]
    struct Item(#[serde(deserialize_with = "uuid")] Uuid);
    Ok(Vec::<Item>::deserialize(deserializer)?
        .into_iter()
        .map(|Item(id)| id)
        .collect())
}

/// Durations as Prometheus users write them: `10s`, `1m30s`, `500ms`.
///
/// Parsed inside a visitor so the YAML deserializer attaches the value's own
/// line and column to the error, not those of the enclosing mapping.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    struct DurationVisitor;
    impl serde::de::Visitor<'_> for DurationVisitor {
        type Value = Option<Duration>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 10s, 1m30s or 500ms")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            humantime::parse_duration(text)
                .map(Some)
                .map_err(|error| E::custom(format!("invalid duration {text:?}: {error}")))
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

impl Settings {
    /// Read, parse and validate a config file. `env` looks up environment
    /// variables (pass `|name| std::env::var(name).ok()`); tests pass a map.
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
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let raw: RawConfig = parse_yaml(text).map_err(|(key, message)| invalid(&key, message))?;
        let avepoint = raw.avepoint.ok_or_else(|| {
            invalid(
                "avepoint",
                "missing: add an avepoint: section with at least client_id".into(),
            )
        })?;

        let base_url = parse_url(
            avepoint
                .base_url
                .as_deref()
                .unwrap_or(avepoint.environment.base_url()),
        )
        .map_err(|message| invalid("avepoint.base_url", message))?;
        let token_url = parse_url(
            avepoint
                .token_url
                .as_deref()
                .unwrap_or(avepoint.environment.token_url()),
        )
        .map_err(|message| invalid("avepoint.token_url", message))?;

        // A blank variable (e.g. an empty Kubernetes env entry) does not hide the file's value.
        let non_blank = |id: String| Some(id.trim().to_owned()).filter(|id| !id.is_empty());
        let client_id = env(CLIENT_ID_ENV)
            .and_then(non_blank)
            .or_else(|| avepoint.client_id.and_then(non_blank))
            .ok_or_else(|| {
                invalid(
                    "avepoint.client_id",
                    format!("missing: set it in the file or in {CLIENT_ID_ENV}"),
                )
            })?;
        // Exactly one credential: a client secret, or a certificate and its key.
        let dir = path.parent().unwrap_or(Path::new(""));
        let env_secret = env(CLIENT_SECRET_ENV).filter(|secret| !secret.trim().is_empty());
        let certificate = &avepoint.client_certificate_file;
        let private_key = &avepoint.client_private_key_file;
        let client_certificate = if certificate.is_some() || private_key.is_some() {
            let secret_source = match (&env_secret, &avepoint.client_secret_file) {
                (Some(_), _) => Some(CLIENT_SECRET_ENV),
                (None, Some(_)) => Some("avepoint.client_secret_file"),
                (None, None) => None,
            };
            if let Some(source) = secret_source {
                return Err(invalid(
                    "avepoint.client_certificate_file",
                    format!(
                        "a client secret is configured too ({source}): use either a client secret \
                         or avepoint.client_certificate_file with avepoint.client_private_key_file, not both"
                    ),
                ));
            }
            match (certificate, private_key) {
                (Some(certificate), Some(private_key)) => Some(
                    ClientCertificate::load(&dir.join(certificate), &dir.join(private_key))
                        .map_err(|error| match error {
                            CertificateError::Certificate(message) => {
                                invalid("avepoint.client_certificate_file", message)
                            }
                            CertificateError::PrivateKey(message) => {
                                invalid("avepoint.client_private_key_file", message)
                            }
                        })?,
                ),
                (Some(_), None) => {
                    return Err(invalid(
                        "avepoint.client_private_key_file",
                        "missing: avepoint.client_certificate_file needs the certificate's private key here"
                            .into(),
                    ));
                }
                (None, _) => {
                    return Err(invalid(
                        "avepoint.client_certificate_file",
                        "missing: avepoint.client_private_key_file needs its certificate here"
                            .into(),
                    ));
                }
            }
        } else {
            None
        };
        let client_secret = match (env_secret, &avepoint.client_secret_file) {
            _ if client_certificate.is_some() => String::new(),
            (Some(secret), _) => secret.trim().to_owned(),
            (_, Some(file)) => {
                let file = dir.join(file);
                let secret = std::fs::read_to_string(&file).map_err(|error| {
                    invalid(
                        "avepoint.client_secret_file",
                        format!("cannot read {}: {error}", file.display()),
                    )
                })?;
                let secret = secret.trim().to_owned();
                if secret.is_empty() {
                    return Err(invalid(
                        "avepoint.client_secret_file",
                        format!("{} is empty", file.display()),
                    ));
                }
                secret
            }
            _ => {
                return Err(invalid(
                    "avepoint.client_secret_file",
                    format!(
                        "no client credential: set avepoint.client_secret_file or {CLIENT_SECRET_ENV}, \
                         or avepoint.client_certificate_file and avepoint.client_private_key_file"
                    ),
                ));
            }
        };

        let request_timeout = avepoint.request_timeout.unwrap_or(Duration::from_secs(10));
        if request_timeout > Duration::from_secs(600) {
            return Err(invalid(
                "avepoint.request_timeout",
                format!(
                    "must be at most 10m, got {}",
                    humantime::format_duration(request_timeout)
                ),
            ));
        }
        if request_timeout.is_zero() {
            return Err(invalid(
                "avepoint.request_timeout",
                "must be greater than 0".into(),
            ));
        }
        let concurrency = avepoint.concurrency.unwrap_or(8);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(invalid(
                "avepoint.concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}, got {concurrency}"),
            ));
        }
        let cache_ttl = avepoint.cache_ttl.unwrap_or(Duration::ZERO);
        let max_requests_per_second = match avepoint.max_requests_per_second {
            None => None,
            Some(rate) if (0.01..=1_000_000.0).contains(&rate) => Some(rate),
            Some(rate) => {
                return Err(invalid(
                    "avepoint.max_requests_per_second",
                    format!("must be between 0.01 and 1000000, got {rate}"),
                ));
            }
        };
        let extra_root_certificates = match &avepoint.ca_file {
            None => Vec::new(),
            Some(file) => {
                let file = path.parent().unwrap_or(Path::new("")).join(file);
                let pem = std::fs::read(&file).map_err(|error| {
                    invalid(
                        "avepoint.ca_file",
                        format!("cannot read {}: {error}", file.display()),
                    )
                })?;
                match reqwest::Certificate::from_pem_bundle(&pem) {
                    Ok(certificates) if !certificates.is_empty() => certificates,
                    _ => {
                        return Err(invalid(
                            "avepoint.ca_file",
                            format!("{} holds no PEM certificate", file.display()),
                        ));
                    }
                }
            }
        };
        let max_response_bytes = avepoint
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes < 1024 {
            return Err(invalid(
                "avepoint.max_response_bytes",
                format!("must be at least 1024, got {max_response_bytes}"),
            ));
        }
        let discovery = match raw.discovery {
            Some(discovery) if discovery.enabled => {
                let refresh_interval = discovery
                    .refresh_interval
                    .unwrap_or(Duration::from_secs(3600));
                if refresh_interval < Duration::from_secs(1) {
                    return Err(invalid(
                        "discovery.refresh_interval",
                        "must be at least 1s".into(),
                    ));
                }
                let page_size = discovery.page_size.unwrap_or(100);
                if !(1..=100).contains(&page_size) {
                    return Err(invalid(
                        "discovery.page_size",
                        format!("must be between 1 and 100, got {page_size}"),
                    ));
                }
                let rule = |raw: RawRule| DiscoveryRule {
                    customer_id: raw.customer_id,
                    organization: raw.organization,
                    profile_name: raw.profile_name,
                };
                Some(DiscoverySettings {
                    refresh_interval,
                    page_size,
                    include: discovery.include.into_iter().map(rule).collect(),
                    exclude: discovery.exclude.into_iter().map(rule).collect(),
                })
            }
            _ => None,
        };

        let scope = match avepoint.scope {
            Some(scope) => scope,
            None if discovery.is_some() => format!("{DEFAULT_SCOPE} {CUSTOMERS_SCOPE}"),
            None => DEFAULT_SCOPE.to_owned(),
        };
        if scope.trim().is_empty() {
            return Err(invalid("avepoint.scope", "must not be empty".into()));
        }
        if discovery.is_some() && !scope.split_whitespace().any(|s| s == CUSTOMERS_SCOPE) {
            return Err(invalid(
                "avepoint.scope",
                format!("discovery needs the permission {CUSTOMERS_SCOPE}; add it to the scope"),
            ));
        }

        if raw.targets.is_empty() && discovery.is_none() {
            return Err(invalid(
                "targets",
                "is empty: list at least one customer_id with its profile_ids, or enable discovery"
                    .into(),
            ));
        }
        let mut seen = HashSet::new();
        let mut targets = Vec::new();
        for (index, target) in raw.targets.iter().enumerate() {
            if target.profile_ids.is_empty() {
                return Err(invalid(
                    &format!("targets[{index}].profile_ids"),
                    "is empty: list at least one scan profile id".into(),
                ));
            }
            for (profile_index, profile_id) in target.profile_ids.iter().enumerate() {
                let target = ProfileTarget {
                    customer_id: target.customer_id.to_string(),
                    profile_id: profile_id.to_string(),
                };
                if !seen.insert(target.clone()) {
                    return Err(invalid(
                        &format!("targets[{index}].profile_ids[{profile_index}]"),
                        format!(
                            "profile {} of customer {} is listed twice",
                            target.profile_id, target.customer_id
                        ),
                    ));
                }
                targets.push(target);
            }
        }

        Ok(Settings {
            source: path.to_owned(),
            avepoint: AvePointSettings {
                environment: avepoint.environment,
                base_url,
                token_url,
                client_id,
                client_secret: SecretString::from(client_secret),
                client_certificate,
                extra_root_certificates,
                scope,
                endpoint: avepoint.endpoint,
                request_timeout,
                concurrency,
                cache_ttl,
                max_requests_per_second,
                max_response_bytes,
            },
            targets,
            discovery,
            metrics_include_profiles: raw
                .metrics
                .and_then(|metrics| metrics.include_profiles)
                .unwrap_or(true),
        })
    }
}

/// Strict YAML decoding shared by the config files: on error, the dotted
/// path of the offending key (`(top level)` for the document itself) and
/// the message.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|error| {
        let key = error.path().to_string();
        let message = error.into_inner().to_string();
        let message = without_yaml_path(&key, &message).to_owned();
        let key = if key == "." {
            "(top level)".to_owned()
        } else {
            key
        };
        (key, message)
    })
}

/// serde_yaml_ng starts its messages with its own, coarser path (`avepoint: `
/// for an error in `avepoint.client_idd`); the key already says where, so drop
/// that prefix when it names `key` or one of its parents.
fn without_yaml_path<'a>(key: &str, message: &'a str) -> &'a str {
    match message.split_once(": ") {
        Some((prefix, rest))
            if key == prefix
                || key
                    .strip_prefix(prefix)
                    .is_some_and(|tail| tail.starts_with(['.', '['])) =>
        {
            rest
        }
        _ => message,
    }
}

/// Parse a URL and allow plain `http` only for loopback hosts (the simulator).
fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("invalid URL {text:?}: {error}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{:?} carries credentials; they do not belong in a URL (and would show in errors)",
            url.host_str().unwrap_or_default()
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "{text:?} uses plain http, which is only allowed for loopback hosts; use https"
        )),
        other => Err(format!("{text:?} has scheme {other:?}; use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
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
