//! The `avepoint:` section: the URLs, the client id and its one credential
//! (a secret, or a certificate and its key), the request limits and the
//! scope, each checked by its own function so `Settings::from_yaml` can call
//! them in the order their errors are reported.
//!
//! The certificate is loaded here, not when the first token is requested,
//! so a bad certificate or key stops the exporter at start (or keeps the old
//! config on reload) instead of failing every scrape.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::collectors::{BACKUP_COVERAGE_SCOPE, BACKUP_JOBS_SCOPE, CollectorSettings};
use super::raw::RawAvePoint;
use super::{
    CLIENT_ID_ENV, CLIENT_SECRET_ENV, CUSTOMERS_SCOPE, ConfigError, ConfigFile,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_ROUND_TIMEOUT, MAX_CONCURRENCY, MAX_ROUND_TIMEOUT,
};
use crate::avepoint::certificate::{CertificateError, ClientCertificate};

/// The credential the token is requested with: exactly one of the two is set.
pub(super) struct Credential {
    /// The client secret; empty when the certificate is used.
    pub(super) secret: SecretString,
    /// The certificate and its private key, when configured.
    pub(super) certificate: Option<ClientCertificate>,
}

/// The checked limits and trust settings, with their defaults applied; each
/// field is the [`super::AvePointSettings`] field of the same name.
pub(super) struct Limits {
    pub(super) request_timeout: Duration,
    pub(super) round_timeout: Duration,
    pub(super) concurrency: usize,
    pub(super) cache_ttl: Duration,
    pub(super) max_requests_per_second: Option<f64>,
    pub(super) extra_root_certificates: Vec<reqwest::Certificate>,
    pub(super) ca_pem: Vec<u8>,
    pub(super) max_response_bytes: usize,
}

/// `base_url` and `token_url`, defaulting from the environment.
pub(super) fn urls(file: &ConfigFile<'_>, raw: &RawAvePoint) -> Result<(Url, Url), ConfigError> {
    let base_url = parse_url(
        raw.base_url
            .as_deref()
            .unwrap_or(raw.environment.base_url()),
    )
    .map_err(|message| file.invalid("avepoint.base_url", message))?;
    let token_url = parse_url(
        raw.token_url
            .as_deref()
            .unwrap_or(raw.environment.token_url()),
    )
    .map_err(|message| file.invalid("avepoint.token_url", message))?;
    Ok((base_url, token_url))
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
pub(super) fn client_id(
    file: &ConfigFile<'_>,
    raw: &RawAvePoint,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    // A blank variable (e.g. an empty Kubernetes env entry) does not hide the file's value.
    let non_blank = |id: String| Some(id.trim().to_owned()).filter(|id| !id.is_empty());
    env(CLIENT_ID_ENV)
        .and_then(non_blank)
        .or_else(|| raw.client_id.clone().and_then(non_blank))
        .ok_or_else(|| {
            file.invalid(
                "avepoint.client_id",
                format!("missing: set it in the file or in {CLIENT_ID_ENV}"),
            )
        })
}

/// Exactly one credential: a client secret, or a certificate and its key.
pub(super) fn credential(
    file: &ConfigFile<'_>,
    raw: &RawAvePoint,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credential, ConfigError> {
    let env_secret = env(CLIENT_SECRET_ENV).filter(|secret| !secret.trim().is_empty());
    let certificate = client_certificate(file, raw, env_secret.is_some())?;
    let secret = match certificate {
        Some(_) => String::new(),
        None => client_secret(file, raw, env_secret)?,
    };
    Ok(Credential {
        secret: SecretString::from(secret),
        certificate,
    })
}

/// The certificate credential, when either of its files is named; a secret
/// configured as well is an error, since which one wins would be a guess.
fn client_certificate(
    file: &ConfigFile<'_>,
    raw: &RawAvePoint,
    env_secret: bool,
) -> Result<Option<ClientCertificate>, ConfigError> {
    let certificate = &raw.client_certificate_file;
    let private_key = &raw.client_private_key_file;
    if certificate.is_none() && private_key.is_none() {
        return Ok(None);
    }
    let secret_source = match (env_secret, &raw.client_secret_file) {
        (true, _) => Some(CLIENT_SECRET_ENV),
        (false, Some(_)) => Some("avepoint.client_secret_file"),
        (false, None) => None,
    };
    if let Some(source) = secret_source {
        return Err(file.invalid(
            "avepoint.client_certificate_file",
            format!(
                "a client secret is configured too ({source}): use either a client secret \
                 or avepoint.client_certificate_file with avepoint.client_private_key_file, not both"
            ),
        ));
    }
    match (certificate, private_key) {
        (Some(certificate), Some(private_key)) => {
            load_certificate(file, certificate, private_key).map(Some)
        }
        (Some(_), None) => Err(file.invalid(
            "avepoint.client_private_key_file",
            "missing: avepoint.client_certificate_file needs the certificate's private key here"
                .into(),
        )),
        (None, _) => Err(file.invalid(
            "avepoint.client_certificate_file",
            "missing: avepoint.client_private_key_file needs its certificate here".into(),
        )),
    }
}

/// Load the pair, blaming whichever of the two keys names the bad file.
fn load_certificate(
    file: &ConfigFile<'_>,
    certificate: &Path,
    private_key: &Path,
) -> Result<ClientCertificate, ConfigError> {
    ClientCertificate::load(&file.resolve(certificate), &file.resolve(private_key)).map_err(
        |error| match error {
            CertificateError::Certificate(message) => {
                file.invalid("avepoint.client_certificate_file", message)
            }
            CertificateError::PrivateKey(message) => {
                file.invalid("avepoint.client_private_key_file", message)
            }
        },
    )
}

/// The client secret: `AVEPOINT_CLIENT_SECRET` overrides
/// `client_secret_file`. Surrounding whitespace is trimmed, so the trailing
/// newline most secret files end with is not sent as part of the secret.
fn client_secret(
    file: &ConfigFile<'_>,
    raw: &RawAvePoint,
    env_secret: Option<String>,
) -> Result<String, ConfigError> {
    match (env_secret, &raw.client_secret_file) {
        (Some(secret), _) => Ok(secret.trim().to_owned()),
        (None, Some(secret_file)) => {
            let (secret_file, secret) =
                file.read("avepoint.client_secret_file", secret_file, |path| {
                    std::fs::read_to_string(path)
                })?;
            let secret = secret.trim().to_owned();
            if secret.is_empty() {
                return Err(file.invalid(
                    "avepoint.client_secret_file",
                    format!("{} is empty", secret_file.display()),
                ));
            }
            Ok(secret)
        }
        (None, None) => Err(file.invalid(
            "avepoint.client_secret_file",
            format!(
                "no client credential: set avepoint.client_secret_file or {CLIENT_SECRET_ENV}, \
                 or avepoint.client_certificate_file and avepoint.client_private_key_file"
            ),
        )),
    }
}

/// The limits, checked in the order of their keys' errors: request_timeout,
/// round_timeout, concurrency, max_requests_per_second, ca_file,
/// max_response_bytes (cache_ttl takes any duration).
pub(super) fn limits(file: &ConfigFile<'_>, raw: &RawAvePoint) -> Result<Limits, ConfigError> {
    let request_timeout = timeout(
        file,
        "avepoint.request_timeout",
        raw.request_timeout,
        (Duration::from_secs(10), Duration::from_secs(600), "10m"),
    )?;
    let round_timeout = timeout(
        file,
        "avepoint.round_timeout",
        raw.round_timeout,
        (DEFAULT_ROUND_TIMEOUT, MAX_ROUND_TIMEOUT, "1h"),
    )?;
    let concurrency = raw.concurrency.unwrap_or(8);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(file.invalid(
            "avepoint.concurrency",
            format!("must be between 1 and {MAX_CONCURRENCY}, got {concurrency}"),
        ));
    }
    let cache_ttl = raw.cache_ttl.unwrap_or(Duration::ZERO);
    let max_requests_per_second = match raw.max_requests_per_second {
        None => None,
        Some(rate) if (0.01..=1_000_000.0).contains(&rate) => Some(rate),
        Some(rate) => {
            return Err(file.invalid(
                "avepoint.max_requests_per_second",
                format!("must be between 0.01 and 1000000, got {rate}"),
            ));
        }
    };
    let (extra_root_certificates, ca_pem) = match &raw.ca_file {
        None => (Vec::new(), Vec::new()),
        Some(ca_file) => root_certificates(file, ca_file)?,
    };
    let max_response_bytes = raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    if max_response_bytes < 1024 {
        return Err(file.invalid(
            "avepoint.max_response_bytes",
            format!("must be at least 1024, got {max_response_bytes}"),
        ));
    }
    Ok(Limits {
        request_timeout,
        round_timeout,
        concurrency,
        cache_ttl,
        max_requests_per_second,
        extra_root_certificates,
        ca_pem,
        max_response_bytes,
    })
}

/// A timeout key: `default` when unset, at most `max` (named `max_text` in
/// the message), and never 0. `request_timeout` (10s, at most 10m): 0 would
/// fail every request; `round_timeout` (9.5s, at most 1h): every round.
fn timeout(
    file: &ConfigFile<'_>,
    key: &str,
    raw: Option<Duration>,
    (default, max, max_text): (Duration, Duration, &str),
) -> Result<Duration, ConfigError> {
    let timeout = raw.unwrap_or(default);
    if timeout > max {
        return Err(file.invalid(
            key,
            format!(
                "must be at most {max_text}, got {}",
                humantime::format_duration(timeout)
            ),
        ));
    }
    if timeout.is_zero() {
        return Err(file.invalid(key, "must be greater than 0".into()));
    }
    Ok(timeout)
}

/// `ca_file`: a PEM bundle, with its text; a file without a single
/// certificate is an error, since it would silently trust nothing extra.
fn root_certificates(
    file: &ConfigFile<'_>,
    ca_file: &Path,
) -> Result<(Vec<reqwest::Certificate>, Vec<u8>), ConfigError> {
    let (ca_file, pem) = file.read("avepoint.ca_file", ca_file, |path| std::fs::read(path))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok((certificates, pem)),
        _ => Err(file.invalid(
            "avepoint.ca_file",
            format!("{} holds no PEM certificate", ca_file.display()),
        )),
    }
}

/// The scope: by default the profile permission, plus the customers
/// permission when discovery is on. Checked after discovery because that
/// default depends on it; an explicit scope that lacks the customers
/// permission is caught here rather than as a 403 on the first refresh.
pub(super) fn scope(
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
    // The scan profile permission is not checked: scopes written before
    // collectors existed may spell it differently and work.
    let required = [
        (discovery_enabled, CUSTOMERS_SCOPE, "discovery"),
        (
            collectors.backup_jobs.is_some(),
            BACKUP_JOBS_SCOPE,
            "collectors.backup_jobs",
        ),
        (
            collectors.backup_coverage.is_some(),
            BACKUP_COVERAGE_SCOPE,
            "collectors.backup_coverage",
        ),
    ];
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
