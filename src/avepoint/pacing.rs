//! How fast and how often the client asks AvePoint: the token-bucket rate
//! limit (`avepoint.max_requests_per_second`), `Retry-After` parsing, the
//! back-off AvePoint asks for ([`Backoffs`], one per endpoint family) and
//! the jitter that keeps retries of many profiles out of lockstep.
//!
//! Imports only `avepoint::instrumentation` (the endpoint names).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::endpoint::ApiEndpoint;
use super::model::{CUSTOMERS, SCAN_PROFILES};
use crate::sync::lock;

/// A token bucket over all API requests: `rate` per second, bursts of up
/// to one second's worth.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    bucket: tokio::sync::Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(crate) fn new(rate: f64) -> Self {
        Self {
            rate,
            bucket: tokio::sync::Mutex::new((rate.max(1.0), Instant::now())),
        }
    }

    /// Wait for a token. The lock is held while waiting, so waiters are
    /// served in order and none is starved.
    pub(crate) async fn acquire(&self) {
        let mut bucket = self.bucket.lock().await;
        let capacity = self.rate.max(1.0);
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let mut tokens =
            (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(capacity);
        let mut now = now;
        if tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - tokens) / self.rate);
            tokio::time::sleep(wait).await;
            now = Instant::now();
            tokens = 1.0;
        }
        *bucket = (tokens - 1.0, now);
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 10.2.3); a date in
/// the past means "now".
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }
    };
    // Capped: a header asking for years would overflow `Instant + wait`
    // and stop the exporter for good.
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The longest back-off honoured, whatever `Retry-After` asks for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The longest pause a background endpoint (discovery, profile details, a
/// backup collector) takes, whatever `Retry-After` asks for: its reader runs
/// again on its next schedule, and one odd header must not silence a
/// collector for a day. The reports honour `Retry-After` up to an hour.
pub(crate) const MAX_BACKGROUND_PAUSE: Duration = Duration::from_secs(15 * 60);

/// The endpoints one back-off pauses: a `429`/`503` with `Retry-After`
/// pauses the family of the endpoint that sent it, never the others, so a
/// throttled optional collector never pauses the scan reports.
pub(crate) fn backoff_family(endpoint: ApiEndpoint) -> ApiEndpoint {
    // Discovery's two lists are one reader.
    if endpoint == SCAN_PROFILES.endpoint {
        CUSTOMERS.endpoint
    } else {
        endpoint
    }
}

/// The pauses AvePoint asked for, per endpoint family: until when, and the
/// status that asked.
#[derive(Debug, Default)]
pub(crate) struct Backoffs {
    until: std::sync::Mutex<HashMap<ApiEndpoint, (Instant, StatusCode)>>,
}

impl Backoffs {
    /// The pause in force for `endpoint`'s family, if any: what is left of
    /// it and the status that asked for it.
    pub(crate) fn current(&self, endpoint: ApiEndpoint) -> Option<(Duration, StatusCode)> {
        let now = Instant::now();
        lock(&self.until)
            .get(&backoff_family(endpoint))
            .filter(|(until, _)| *until > now)
            .map(|(until, status)| (*until - now, *status))
    }

    /// Start (or lengthen) the pause of `endpoint`'s family by `delay`,
    /// capped at [`MAX_BACKGROUND_PAUSE`] for a background family. Returns
    /// the pause taken when it is new or longer than the one in force.
    pub(crate) fn start(
        &self,
        endpoint: ApiEndpoint,
        status: StatusCode,
        delay: Duration,
    ) -> Option<Duration> {
        let family = backoff_family(endpoint);
        let delay = if family == ApiEndpoint::SCAN_PROFILE || family == ApiEndpoint::TOKEN {
            delay
        } else {
            delay.min(MAX_BACKGROUND_PAUSE)
        };
        let until = Instant::now() + delay;
        let mut pauses = lock(&self.until);
        let current = pauses.get(&family).map(|(current, _)| *current);
        if current.is_some_and(|current| current >= until) {
            return None;
        }
        pauses.insert(family, (until, status));
        Some(delay)
    }

    /// Take over `previous`'s pauses (a reload builds a new client).
    pub(crate) fn inherit(&self, previous: &Backoffs) {
        let inherited = lock(&previous.until).clone();
        lock(&self.until).extend(inherited);
    }
}

/// A random delay between `min_ms` and `max_ms`, so retries of many
/// profiles do not arrive at AvePoint in lockstep.
pub(crate) fn jitter(min_ms: u64, max_ms: u64) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(Instant::now());
    Duration::from_millis(min_ms + random % (max_ms - min_ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::backup::{BACKUP_COVERAGE, BACKUP_JOBS};
    use crate::avepoint::details::PROFILE_DETAILS;

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
        let wait = parse_retry_after(&httpdate::fmt_http_date(in_a_minute)).unwrap();
        assert!(
            wait > Duration::from_secs(58) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn a_pause_holds_its_family_only_and_background_pauses_are_capped() {
        let pauses = Backoffs::default();
        let hour = Duration::from_secs(3600);
        let taken = pauses.start(
            BACKUP_COVERAGE.endpoint,
            StatusCode::TOO_MANY_REQUESTS,
            hour,
        );
        assert_eq!(taken, Some(MAX_BACKGROUND_PAUSE));
        assert!(pauses.current(BACKUP_COVERAGE.endpoint).is_some());
        for other in [
            ApiEndpoint::SCAN_PROFILE,
            PROFILE_DETAILS.endpoint,
            CUSTOMERS.endpoint,
            BACKUP_JOBS.endpoint,
        ] {
            assert_eq!(pauses.current(other), None, "{other:?}");
        }
        assert_eq!(
            pauses.start(
                ApiEndpoint::SCAN_PROFILE,
                StatusCode::SERVICE_UNAVAILABLE,
                hour
            ),
            Some(hour)
        );
        // Discovery's two lists pause together; a shorter pause changes nothing.
        pauses.start(SCAN_PROFILES.endpoint, StatusCode::TOO_MANY_REQUESTS, hour);
        assert!(pauses.current(CUSTOMERS.endpoint).is_some());
        assert_eq!(
            pauses.start(
                CUSTOMERS.endpoint,
                StatusCode::TOO_MANY_REQUESTS,
                Duration::from_secs(60)
            ),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_requests() {
        let limiter = RateLimiter::new(2.0);
        let started = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // A burst of 2, then one every 0.5 s.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
