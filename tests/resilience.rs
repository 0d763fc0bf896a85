//! Issue #4's "polite to the upstream API" and fault matrix: throttling and
//! back-off, retries, the rate limit, the result cache, response size, and
//! every fault the simulator can inject. For each fault: /metrics answers
//! within the scrape deadline, the affected profiles are down, the others
//! keep their exact values, and nothing panics.

use crate::common;

use std::time::{Duration, Instant};

use avepoint_exporter::collect::FetchError;
use avepoint_exporter::simulator::{Fault, FaultAt, SimulatorConfig};
use common::{Exposition, Harness, Setup};

fn requests(harness: &Harness) -> u64 {
    harness.profile_requests()
}

/// Scrape with Prometheus' timeout header; the answer must come in time.
async fn scrape_within(harness: &Harness, timeout_seconds: f64) -> Exposition {
    let started = Instant::now();
    let response = harness
        .get(
            "/metrics",
            &[(
                "X-Prometheus-Scrape-Timeout-Seconds",
                &timeout_seconds.to_string(),
            )],
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    assert!(
        elapsed < Duration::from_secs_f64(timeout_seconds),
        "answered after {elapsed:?}"
    );
    Exposition::parse(&response.body)
}

/// Gives the simulator's profile number `index` the `fault`; returns its
/// profile id.
fn fault_profile(harness: &Harness, index: usize, fault: Fault) -> String {
    let (_, profile) = harness.sim.profile_ids()[index].clone();
    harness.sim.set_fault(FaultAt::Report(&profile), fault);
    profile
}

/// Why profile number `index` failed in a round collected within
/// `timeout`; panics when it did not fail.
async fn round_error(harness: &Harness, index: usize, timeout: Duration) -> FetchError {
    let snapshot = harness.state.rounds().collect(timeout).await;
    snapshot.profiles[index]
        .outcome
        .as_ref()
        .unwrap_err()
        .clone()
}

fn up_count(metrics: &Exposition) -> usize {
    metrics.up_count()
}

/// Every profile but `except` has exactly the simulator's current values.
fn others_exact(harness: &Harness, metrics: &Exposition, except: &str) {
    for (customer, profile) in harness
        .sim
        .profile_ids()
        .iter()
        .filter(|(_, p)| p != except)
    {
        let report = harness.sim.current_report(customer, profile).unwrap();
        let ids = [
            ("customer_id", customer.as_str()),
            ("profile_id", profile.as_str()),
        ];
        assert_eq!(
            metrics.value("avepoint_scan_profile_up", &ids),
            1.0,
            "{profile}"
        );
        assert_eq!(
            metrics.value("avepoint_scan_new_registered_content", &ids),
            report.new_registered_content_count as f64
        );
        assert_eq!(
            metrics.value("avepoint_scan_last_status", &ids),
            report.last_scan_status as f64
        );
    }
}

/// All nine profiles start at once (concurrency 16), so a fault's effects
/// on the others are deterministic.
fn wide() -> Setup {
    Setup {
        avepoint_extra: "  concurrency: 16\n".into(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn long_retry_after_fails_fast_and_the_back_off_spares_the_api() {
    let harness = Harness::start(wide()).await;
    let (_, throttled) = harness.sim.profile_ids()[1].clone();
    harness.sim.set_fault(
        FaultAt::Report(&throttled),
        Fault::Throttle(Some("30".into())),
    );

    let first = scrape_within(&harness, 5.0).await;
    assert_eq!(
        first.value(
            "avepoint_scan_profile_up",
            &[("profile_id", throttled.as_str())]
        ),
        0.0
    );
    others_exact(&harness, &first, &throttled);
    assert_eq!(requests(&harness), 9);

    // AvePoint asked for 30 s: the next scrapes send nothing at all.
    for _ in 0..3 {
        let metrics = scrape_within(&harness, 5.0).await;
        assert_eq!(up_count(&metrics), 0);
    }
    assert_eq!(requests(&harness), 9);
    let error = round_error(&harness, 0, Duration::from_secs(2)).await;
    assert_eq!(error.kind, "backoff");
    assert!(
        error
            .message
            .starts_with("not sent: backing off for another ")
            && error
                .message
                .ends_with("s after AvePoint answered 429 Too Many Requests"),
        "{}",
        error.message
    );
    let metrics = harness.scrape().await;
    assert_eq!(metrics.value("avepoint_api_backoffs_total", &[]), 1.0);
    assert_eq!(
        metrics.value(
            "avepoint_api_backoff_skipped_requests_total",
            &[("api_endpoint", "scan_profile")]
        ),
        5.0 * 9.0
    );
    assert!(metrics.find("avepoint_api_retries_total", &[]).is_empty());
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let harness = Harness::start(wide()).await;
    let (_, throttled) = harness.sim.profile_ids()[0].clone();
    let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
    harness.sim.set_fault(
        FaultAt::Report(&throttled),
        Fault::Throttle(Some(httpdate::fmt_http_date(in_a_minute))),
    );
    let error = round_error(&harness, 0, Duration::from_secs(3)).await;
    assert!(
        error
            .message
            .starts_with("HTTP 429 Too Many Requests: rate limited by AvePoint, retry after 5"),
        "{}",
        error.message
    );
    // The back-off lasts about the minute AvePoint asked for.
    let next = harness.state.rounds().collect(Duration::from_secs(3)).await;
    let error = next.profiles[3].outcome.as_ref().unwrap_err();
    let seconds: f64 = error
        .message
        .trim_start_matches("not sent: backing off for another ")
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((55.0..=60.0).contains(&seconds), "{}", error.message);
}

#[tokio::test]
async fn short_retry_after_is_retried_once_within_the_deadline() {
    let harness = Harness::start(wide()).await;
    let (_, throttled) = harness.sim.profile_ids()[2].clone();
    harness.sim.set_fault(
        FaultAt::Report(&throttled),
        Fault::Throttle(Some("1".into())),
    );
    let started = Instant::now();
    let metrics = scrape_within(&harness, 5.0).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    others_exact(&harness, &metrics, &throttled);
    assert_eq!(
        metrics.value(
            "avepoint_api_retries_total",
            &[("api_endpoint", "scan_profile"), ("code", "429")]
        ),
        1.0
    );
    assert_eq!(
        metrics.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "scan_profile"), ("code", "429")]
        ),
        2.0
    );

    // The retry was throttled too: a 1 s back-off, then the API is asked again.
    harness.sim.clear_faults();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics = scrape_within(&harness, 5.0).await;
    assert_eq!(up_count(&metrics), 9);
}

#[tokio::test]
async fn service_unavailable_with_retry_after_is_retried() {
    let harness = Harness::start(wide()).await;
    let profile = fault_profile(&harness, 4, Fault::Status(503));
    let metrics = scrape_within(&harness, 4.0).await;
    others_exact(&harness, &metrics, &profile);
    assert_eq!(
        metrics.value(
            "avepoint_scan_profile_up",
            &[("profile_id", profile.as_str())]
        ),
        0.0
    );
    // No Retry-After on this 503: the default 1 s wait fitted, one retry.
    assert_eq!(
        metrics.value(
            "avepoint_api_retries_total",
            &[("api_endpoint", "scan_profile"), ("code", "503")]
        ),
        1.0
    );
}

#[tokio::test]
async fn connection_reset_mid_response_is_retried_and_fails_only_that_profile() {
    let harness = Harness::start(wide()).await;
    let profile = fault_profile(&harness, 5, Fault::Reset);
    let error = round_error(&harness, 5, Duration::from_secs(3)).await;
    assert_eq!(error.kind, "error");
    assert!(
        error.message.starts_with("request failed: ")
            && error.message.contains("connection closed"),
        "{}",
        error.message
    );
    let metrics = scrape_within(&harness, 3.0).await;
    others_exact(&harness, &metrics, &profile);
    assert_eq!(
        metrics.value(
            "avepoint_api_retries_total",
            &[("api_endpoint", "scan_profile"), ("code", "error")]
        ),
        2.0
    );
}

#[tokio::test]
async fn huge_bodies_are_refused_not_buffered() {
    let harness = Harness::start(Setup {
        avepoint_extra: "  concurrency: 16\n  max_response_bytes: 1048576\n".into(),
        ..Setup::default()
    })
    .await;
    let profile = fault_profile(&harness, 6, Fault::Huge(3 * 1024 * 1024));
    let error = round_error(&harness, 6, Duration::from_secs(3)).await;
    assert_eq!(error.kind, "invalid_body");
    assert!(
        error
            .message
            .starts_with("invalid response body: response body larger than avepoint.max_response_bytes (1048576 bytes), refused"),
        "{}",
        error.message
    );
    let metrics = scrape_within(&harness, 3.0).await;
    others_exact(&harness, &metrics, &profile);
}

#[tokio::test]
async fn max_response_bytes_is_configurable() {
    let harness = Harness::start(Setup {
        avepoint_extra: "  max_response_bytes: 4194304\n".into(),
        ..Setup::default()
    })
    .await;
    fault_profile(&harness, 6, Fault::Huge(3 * 1024 * 1024));
    let metrics = scrape_within(&harness, 5.0).await;
    assert_eq!(up_count(&metrics), 9);
}

#[tokio::test]
async fn token_endpoint_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let harness = Harness::start(Setup {
        rewrite: Some(Box::new(move |yaml: String| {
            let start = yaml.find("  token_url: ").unwrap();
            let end = start + yaml[start..].find('\n').unwrap();
            format!(
                "{}  token_url: http://{closed}/connect/token{}",
                &yaml[..start],
                &yaml[end..]
            )
        })),
        ..Setup::default()
    })
    .await;
    let metrics = scrape_within(&harness, 3.0).await;
    assert_eq!(metrics.find("avepoint_scan_profile_up", &[]).len(), 9);
    assert_eq!(up_count(&metrics), 0);
    assert!(
        metrics.value(
            "avepoint_api_requests_total",
            &[("api_endpoint", "token"), ("code", "error")]
        ) >= 1.0
    );
    let error = round_error(&harness, 0, Duration::from_secs(2)).await;
    assert!(
        error.message.starts_with("token request failed: "),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn token_endpoint_slow() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            token_latency: Duration::from_secs(10),
            ..SimulatorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let metrics = scrape_within(&harness, 2.0).await;
    assert_eq!(up_count(&metrics), 0);
    assert_eq!(metrics.find("avepoint_scan_profile_up", &[]).len(), 9);
}

#[tokio::test]
async fn every_fault_at_once_leaves_the_healthy_profile_exact() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 4,
            profiles_per_customer: 3,
            ..SimulatorConfig::default()
        },
        avepoint_extra: "  concurrency: 16\n  max_response_bytes: 1048576\n".into(),
        ..Setup::default()
    })
    .await;
    let ids = harness.sim.profile_ids();
    let faults = [
        Fault::Status(401),
        Fault::Status(403),
        Fault::Status(404),
        Fault::Status(500),
        Fault::Throttle(None),
        Fault::Hang,
        Fault::Truncated,
        Fault::NotJson,
        Fault::WrongTypes,
        Fault::Huge(2 * 1024 * 1024),
        Fault::Reset,
    ];
    for ((_, profile), fault) in ids.iter().zip(faults) {
        harness.sim.set_fault(FaultAt::Report(profile), fault);
    }
    let healthy = &ids[11].1;
    let metrics = scrape_within(&harness, 3.0).await;
    assert_eq!(metrics.find("avepoint_scan_profile_up", &[]).len(), 12);
    assert_eq!(up_count(&metrics), 1);
    assert_eq!(
        metrics.value(
            "avepoint_scan_profile_up",
            &[("profile_id", healthy.as_str())]
        ),
        1.0
    );
    let report = harness.sim.current_report(&ids[11].0, healthy).unwrap();
    assert_eq!(
        metrics.value(
            "avepoint_scan_new_registered_content",
            &[("profile_id", healthy.as_str())]
        ),
        report.new_registered_content_count as f64
    );
    for (_, profile) in &ids[..11] {
        assert!(!metrics.has_data_for(profile), "{profile} has stale data");
    }
}

#[tokio::test]
async fn rate_limit_spaces_requests() {
    // 9 profiles at 4 requests per second: a burst of 4, then 5 more at
    // 250 ms intervals.
    let harness = Harness::start(Setup {
        avepoint_extra: "  max_requests_per_second: 4\n".into(),
        ..Setup::default()
    })
    .await;
    let started = Instant::now();
    let metrics = scrape_within(&harness, 5.0).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
    assert_eq!(up_count(&metrics), 9);
}

#[tokio::test]
async fn cache_ttl_makes_an_ha_pair_call_once_per_ttl() {
    // Two Prometheus servers scraping every 300 ms with a 1 s TTL, for 2.8 s:
    // fetches at 0, 1.2 and 2.4 s, i.e. three calls per profile, not 20.
    let harness = Harness::start(Setup {
        avepoint_extra: "  cache_ttl: 1s\n".into(),
        ..Setup::default()
    })
    .await;
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_millis(2800) {
        let (a, b) = tokio::join!(harness.scrape(), harness.scrape());
        assert_eq!(up_count(&a), 9);
        assert_eq!(up_count(&b), 9);
        last = Some(a);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(requests(&harness), 3 * 9);
    let metrics = last.unwrap();
    for sample in metrics.find("avepoint_scan_profile_cache_age_seconds", &[]) {
        assert!((0.0..1.0).contains(&sample.value), "{sample:?}");
    }
    assert_eq!(
        metrics
            .find("avepoint_scan_profile_cache_age_seconds", &[])
            .len(),
        9
    );
    assert!(
        metrics
            .text
            .contains("served from a fetch younger than the TTL")
    );
}

#[tokio::test]
async fn without_cache_ttl_every_scrape_calls_the_api() {
    let harness = Harness::start(Setup::default()).await;
    for _ in 0..3 {
        harness.scrape().await;
    }
    assert_eq!(requests(&harness), 27);
    assert!(
        harness
            .scrape()
            .await
            .find("avepoint_scan_profile_cache_age_seconds", &[])
            .is_empty()
    );
}

#[tokio::test]
async fn a_throttled_optional_collector_pauses_only_itself() {
    // The coverage endpoint answers 429 with an hour's Retry-After for every
    // customer; the reports never throttle and must keep flowing.
    let prepare: common::PrepareSim = Box::new(|sim| {
        for customer in sim.customers() {
            sim.set_fault(
                FaultAt::Coverage(&customer.id),
                Fault::Throttle(Some("3600".into())),
            );
        }
    });
    let harness = Harness::start(Setup {
        config_tail: "collectors:\n  backup_coverage:\n    enabled: true\n".into(),
        prepare_sim: Some(prepare),
        ..Setup::default()
    })
    .await;
    let mut paused = false;
    for _ in 0..200 {
        let metrics = harness.scrape().await;
        if !metrics
            .find(
                "avepoint_api_backoff_end_timestamp_seconds",
                &[("api_endpoint", "backup_coverage")],
            )
            .is_empty()
        {
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(paused, "the coverage endpoint never asked for a pause");
    for _ in 0..3 {
        let before = requests(&harness);
        let metrics = scrape_within(&harness, 5.0).await;
        assert_eq!(
            up_count(&metrics),
            9,
            "every profile up while coverage pauses"
        );
        others_exact(&harness, &metrics, "");
        assert_eq!(requests(&harness), before + 9, "report requests flow");
        let end = metrics.value(
            "avepoint_api_backoff_end_timestamp_seconds",
            &[("api_endpoint", "backup_coverage")],
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Capped: a background endpoint pauses at most 15 minutes.
        assert!(
            end > now && end <= now + 15.0 * 60.0 + 1.0,
            "{end} vs {now}"
        );
        assert!(
            metrics
                .find(
                    "avepoint_api_backoff_end_timestamp_seconds",
                    &[("api_endpoint", "scan_profile")]
                )
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_chunked_bodies_do_not_hold_the_permits_the_others_need() {
    // 4 of 40 profiles trickle a 70 KB body (no Content-Length) at 2 KB/s:
    // they cannot finish within request_timeout, and must not take the
    // other 36 down with them (before: 2-3 of 40 up).
    let prepare: common::PrepareSim = Box::new(|sim| {
        for (_, profile) in sim.profile_ids().into_iter().take(4) {
            sim.set_fault(
                FaultAt::Report(&profile),
                Fault::Trickle {
                    bytes: 70_000,
                    per_second: 2_000,
                },
            );
        }
    });
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 4,
            profiles_per_customer: 10,
            ..SimulatorConfig::default()
        },
        // changes: large bodies come chunked, as the object lists stream.
        avepoint_extra: "  endpoint: changes\n  request_timeout: 3s\n  round_timeout: 5s\n".into(),
        prepare_sim: Some(prepare),
        ..Setup::default()
    })
    .await;
    for _ in 0..2 {
        let metrics = scrape_within(&harness, 6.0).await;
        let up = up_count(&metrics);
        assert!(up >= 36, "{up} of 40 up");
    }
}
