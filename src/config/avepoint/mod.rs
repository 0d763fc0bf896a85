//! The `avepoint:` section, all of it: the keys as written
//! ([`RawAvePoint`]), their checks, the validated [`AvePointSettings`] and
//! which of them a reload may change without a new API client
//! ([`AvePointSettings::same_client`]). The URLs, the client id and the
//! scope are checked here; the credential (`credential.rs`) and the limits
//! (`limits.rs`) beside it.
//!
//! A new `avepoint.*` key is a field of [`RawAvePoint`] and of
//! [`AvePointSettings`] (or of its [`Limits`]), plus its row in the README.
//! Each step after the first fails to compile until it is written:
//! [`validate`] takes [`RawAvePoint`] apart field by field, builds
//! [`AvePointSettings`] whole, and `same_client` names every field; a key
//! missing from the README fails this module's test.

mod credential;
mod limits;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::collectors::{CollectorKind, CollectorSettings};
use super::file::{ConfigError, ConfigFile};
use super::yaml::duration;
use credential::RawCredential;
use limits::RawLimits;

pub use credential::{CLIENT_SECRET_ENV, Credential};
pub use limits::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_ROUND_TIMEOUT, Limits, MAX_CONCURRENCY, MAX_ROUND_TIMEOUT,
};

/// Environment variable that overrides `avepoint.client_id`.
pub const CLIENT_ID_ENV: &str = "AVEPOINT_CLIENT_ID";
/// Permission needed to list customers.
pub const CUSTOMERS_SCOPE: &str = "elements.customers.read.all";

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

/// Which path serves a profile's daily report (its methods, with the
/// report URL templates, are in `config/mod.rs`).
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

/// The `avepoint:` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAvePoint {
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
    #[serde(default, deserialize_with = "duration")]
    round_timeout: Option<Duration>,
    concurrency: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    cache_ttl: Option<Duration>,
    max_requests_per_second: Option<f64>,
    max_response_bytes: Option<usize>,
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
    /// The one credential: a client secret, or a certificate and its key;
    /// `Debug` shows neither the secret nor the private key.
    pub credential: Credential,
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
    /// Timeouts, concurrency, rate and size bounds.
    pub limits: Limits,
}

impl AvePointSettings {
    /// Whether an API client built from `other` would be the same as one
    /// built from these settings: same URLs, credential, trusted
    /// certificates, scope, endpoint and limits. A reload that leaves them
    /// alone keeps the running client, and with it the token, the
    /// concurrency bound, the rate limiter and any back-off. Every field is
    /// named, so a new one does not compile until someone decides.
    pub fn same_client(&self, other: &AvePointSettings) -> bool {
        let AvePointSettings {
            environment,
            base_url,
            token_url,
            client_id,
            credential,
            extra_root_certificates: _, // compared as their text, `ca_pem`
            ca_pem,
            scope,
            endpoint,
            limits,
        } = self;
        *environment == other.environment
            && *base_url == other.base_url
            && *token_url == other.token_url
            && *client_id == other.client_id
            && credential.same_as(&other.credential)
            && *ca_pem == other.ca_pem
            && *scope == other.scope
            && *endpoint == other.endpoint
            && limits.same_client(&other.limits)
    }
}

/// The section checked up to its scope: the scope's default and its check
/// depend on the collectors and discovery, whose errors come first.
pub(super) type Unscoped = Box<
    dyn FnOnce(&ConfigFile<'_>, bool, &CollectorSettings) -> Result<AvePointSettings, ConfigError>,
>;

/// Check the section, in the order its errors are reported: the URLs, the
/// client id, the credential, the limits; the scope when the result is
/// called with whether discovery is on and the collectors.
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: RawAvePoint,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Unscoped, ConfigError> {
    let RawAvePoint {
        environment,
        base_url,
        token_url,
        client_id,
        client_secret_file,
        client_certificate_file,
        client_private_key_file,
        ca_file,
        scope,
        endpoint,
        request_timeout,
        round_timeout,
        concurrency,
        cache_ttl,
        max_requests_per_second,
        max_response_bytes,
    } = raw;
    let base_url = url(file, "avepoint.base_url", base_url, environment.base_url())?;
    let token_url = url(
        file,
        "avepoint.token_url",
        token_url,
        environment.token_url(),
    )?;
    let client_id = checked_client_id(file, client_id, env)?;
    let credential = credential::validate(
        file,
        &RawCredential {
            client_secret_file,
            client_certificate_file,
            client_private_key_file,
        },
        env,
    )?;
    let (limits, trust) = limits::validate(
        file,
        RawLimits {
            request_timeout,
            round_timeout,
            concurrency,
            cache_ttl,
            max_requests_per_second,
            ca_file,
            max_response_bytes,
        },
    )?;
    Ok(Box::new(move |file, discovery_enabled, collectors| {
        Ok(AvePointSettings {
            environment,
            base_url,
            token_url,
            client_id,
            credential,
            extra_root_certificates: trust.certificates,
            ca_pem: trust.pem,
            scope: checked_scope(file, scope, discovery_enabled, collectors)?,
            endpoint,
            limits,
        })
    }))
}

/// `base_url` or `token_url`, defaulting from the environment.
fn url(
    file: &ConfigFile<'_>,
    key: &str,
    raw: Option<String>,
    default: &str,
) -> Result<Url, ConfigError> {
    parse_url(raw.as_deref().unwrap_or(default)).map_err(|message| file.invalid(key, message))
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

/// The client id: `AVEPOINT_CLIENT_ID` overrides the file's value.
fn checked_client_id(
    file: &ConfigFile<'_>,
    raw: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    // A blank variable (e.g. an empty Kubernetes env entry) does not hide the file's value.
    let non_blank = |id: String| Some(id.trim().to_owned()).filter(|id| !id.is_empty());
    env(CLIENT_ID_ENV)
        .and_then(non_blank)
        .or_else(|| raw.and_then(non_blank))
        .ok_or_else(|| {
            file.invalid(
                "avepoint.client_id",
                format!("missing: set it in the file or in {CLIENT_ID_ENV}"),
            )
        })
}

/// The scope: by default the profile permission, plus the customers
/// permission when discovery is on. Checked after discovery because that
/// default depends on it; an explicit scope that lacks the customers
/// permission is caught here rather than as a 403 on the first refresh.
fn checked_scope(
    file: &ConfigFile<'_>,
    raw: Option<String>,
    discovery_enabled: bool,
    collectors: &CollectorSettings,
) -> Result<String, ConfigError> {
    let mut needed = collectors.scopes();
    if discovery_enabled {
        needed.push(CUSTOMERS_SCOPE);
    }
    let scope = raw.unwrap_or_else(|| needed.join(" "));
    if scope.trim().is_empty() {
        return Err(file.invalid("avepoint.scope", "must not be empty".into()));
    }
    let mut required = vec![(discovery_enabled, CUSTOMERS_SCOPE, "discovery".to_owned())];
    for kind in CollectorKind::ALL {
        let what = format!("collectors.{}", kind.name());
        let wanted = kind.scope_checked() && collectors.enabled(kind);
        required.push((wanted, kind.scope(), what));
    }
    for (wanted, permission, what) in required {
        if wanted && !scope.split_whitespace().any(|s| s == permission) {
            return Err(file.invalid(
                "avepoint.scope",
                format!("{what} needs the permission {permission}; add it to the scope"),
            ));
        }
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::RawAvePoint;
    use crate::config::yaml::parse_yaml;

    /// Every key of the section has its row in the README's key table.
    #[test]
    fn every_key_is_documented() {
        let Err((_, message)) = parse_yaml::<RawAvePoint>("no_such_key: 1") else {
            panic!("an unknown key was accepted");
        };
        let (_, expected) = message.split_once("expected one of").expect(&message);
        let keys: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(keys.len() > 10, "{message}");
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        for key in keys {
            assert!(
                readme.contains(&format!("| `avepoint.{key}` |")),
                "avepoint.{key} has no row in the README's table of keys"
            );
        }
    }
}
