//! The `avepoint:` section's bounds on the requests ([`Limits`]) and the
//! extra CA certificates they trust (`avepoint.ca_file`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::file::{ConfigError, ConfigFile};

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

/// How much the exporter asks of AvePoint, and how long it waits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
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

impl Limits {
    /// Whether an API client built with `other` would behave the same. Every
    /// field is named, so a new one does not compile until someone decides
    /// whether changing it needs a new client on reload.
    pub(super) fn same_client(&self, other: &Limits) -> bool {
        let Limits {
            request_timeout,
            round_timeout: _, // the collection rounds', not the client's
            concurrency,
            cache_ttl: _, // the collection rounds', not the client's
            max_requests_per_second,
            max_response_bytes,
        } = self;
        *request_timeout == other.request_timeout
            && *concurrency == other.concurrency
            && *max_requests_per_second == other.max_requests_per_second
            && *max_response_bytes == other.max_response_bytes
    }
}

/// The extra trusted CA certificates of `avepoint.ca_file`.
pub(super) struct Trust {
    pub(super) certificates: Vec<reqwest::Certificate>,
    /// The file's PEM text (empty without one).
    pub(super) pem: Vec<u8>,
}

/// The keys of [`Limits`] and `ca_file`, as written.
pub(super) struct RawLimits {
    pub(super) request_timeout: Option<Duration>,
    pub(super) round_timeout: Option<Duration>,
    pub(super) concurrency: Option<usize>,
    pub(super) cache_ttl: Option<Duration>,
    pub(super) max_requests_per_second: Option<f64>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) max_response_bytes: Option<usize>,
}

/// The limits, checked in the order of their keys' errors: request_timeout,
/// round_timeout, concurrency, max_requests_per_second, ca_file,
/// max_response_bytes (cache_ttl takes any duration).
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: RawLimits,
) -> Result<(Limits, Trust), ConfigError> {
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
    let trust = match &raw.ca_file {
        None => Trust {
            certificates: Vec::new(),
            pem: Vec::new(),
        },
        Some(ca_file) => root_certificates(file, ca_file)?,
    };
    let max_response_bytes = raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    if max_response_bytes < 1024 {
        return Err(file.invalid(
            "avepoint.max_response_bytes",
            format!("must be at least 1024, got {max_response_bytes}"),
        ));
    }
    let limits = Limits {
        request_timeout,
        round_timeout,
        concurrency,
        cache_ttl: raw.cache_ttl.unwrap_or(Duration::ZERO),
        max_requests_per_second,
        max_response_bytes,
    };
    Ok((limits, trust))
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
fn root_certificates(file: &ConfigFile<'_>, ca_file: &Path) -> Result<Trust, ConfigError> {
    let (ca_file, pem) = file.read("avepoint.ca_file", ca_file, |path| std::fs::read(path))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(Trust { certificates, pem }),
        _ => Err(file.invalid(
            "avepoint.ca_file",
            format!("{} holds no PEM certificate", ca_file.display()),
        )),
    }
}
