//! Bulkheads (issue #19): the background readers (discovery, profile
//! details, both backup collectors) together hold at most a quarter of
//! `avepoint.concurrency`, so however slow their endpoints are, a scrape
//! keeps permits for every scan profile.

use crate::common;

use std::time::Duration;

use avepoint_exporter::simulator::SimulatorConfig;
use common::{Harness, Setup};

const EVERY_READER: &str = "discovery:\n  enabled: true\ncollectors:\n  backup_jobs:\n    enabled: true\n  backup_coverage:\n    enabled: true\n";

#[tokio::test]
async fn slow_background_endpoints_leave_every_scan_profile_up() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 4,
            profiles_per_customer: 10,
            // Every answer takes a while: a round with one permit left
            // would read a quarter of the profiles before its timeout.
            latency: Duration::from_millis(200),
            // Lists, details, backup jobs and coverage hang for the whole
            // test.
            background_latency: Duration::from_secs(600),
            ..SimulatorConfig::default()
        },
        // The default concurrency (8), every background reader on.
        profile_details: true,
        avepoint_extra: "  round_timeout: 4s\n".to_owned(),
        config_tail: EVERY_READER.to_owned(),
        ..Setup::default()
    })
    .await;
    // Let every background reader start its first (hanging) read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for scrape in 0..3 {
        let metrics = harness.scrape().await;
        let up = metrics.find("avepoint_scan_profile_up", &[]);
        assert_eq!(up.len(), 40, "scrape {scrape}");
        let down: Vec<_> = up.iter().filter(|sample| sample.value != 1.0).collect();
        assert!(
            down.is_empty(),
            "scrape {scrape}: {} of 40 profiles down: {down:?}",
            down.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every reader runs on the refresher, which exports its panics.
    let metrics = harness.scrape().await;
    let panics = metrics.find("avepoint_background_panics_total", &[]);
    let mut readers: Vec<&str> = panics.iter().map(|s| s.labels["reader"].as_str()).collect();
    readers.sort_unstable();
    assert_eq!(
        readers,
        [
            "backup_coverage",
            "backup_jobs",
            "discovery",
            "profile_details"
        ]
    );
    assert!(panics.iter().all(|sample| sample.value == 0.0));
}
