//! The time budget of one request, from Prometheus' scrape timeout header.
//!
//! The one place that reads and parses `X-Prometheus-Scrape-Timeout-Seconds`;
//! both `/metrics` and `/probe` take their budget from here.

use std::time::Duration;

use axum::http::HeaderMap;

/// The header Prometheus sends with its scrape timeout in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// Deadline used when the scraper does not send `X-Prometheus-Scrape-Timeout-Seconds`.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Kept back from Prometheus' timeout so the answer arrives before it gives up.
const SCRAPE_TIMEOUT_OFFSET: Duration = Duration::from_millis(500);
/// The most time a scrape is given, whatever the header says.
const MAX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The least time a scrape is given, whatever the header says.
const MIN_SCRAPE_BUDGET: Duration = Duration::from_millis(100);

/// The time budget of a request with these headers (see [`scrape_budget`]).
pub fn request_budget(headers: &HeaderMap) -> Duration {
    scrape_budget(
        headers
            .get(SCRAPE_TIMEOUT_HEADER)
            .and_then(|value| value.to_str().ok()),
    )
}

/// The time budget of one scrape, from Prometheus' scrape timeout header
/// (seconds, may be fractional) minus [`SCRAPE_TIMEOUT_OFFSET`].
fn scrape_budget(timeout_header: Option<&str>) -> Duration {
    let timeout = timeout_header
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        // The header comes from the network: NaN, infinity or 1e300 must not
        // panic or push the deadline past what an Instant can hold.
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .unwrap_or(DEFAULT_SCRAPE_TIMEOUT)
        .min(MAX_SCRAPE_TIMEOUT);
    timeout
        .saturating_sub(SCRAPE_TIMEOUT_OFFSET)
        .max(MIN_SCRAPE_BUDGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_from_the_prometheus_header() {
        assert_eq!(scrape_budget(None), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("15")), Duration::from_millis(14500));
        assert_eq!(scrape_budget(Some("2.5")), Duration::from_secs(2));
        assert_eq!(scrape_budget(Some(" 4 ")), Duration::from_millis(3500));
        // Nonsense falls back to the default rather than to zero.
        assert_eq!(scrape_budget(Some("-3")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("soon")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("NaN")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("inf")), Duration::from_millis(9500));
        assert_eq!(scrape_budget(Some("1e300")), Duration::from_millis(9500));
        assert_eq!(
            scrape_budget(Some("86400")),
            Duration::from_millis(3_599_500)
        );
        // A timeout below the offset still leaves a minimal budget.
        assert_eq!(scrape_budget(Some("0.2")), MIN_SCRAPE_BUDGET);
    }
}
