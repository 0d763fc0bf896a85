//! Issue #11: `avepoint.endpoint: auto` (the default) finds the path
//! AvePoint serves. The seed path `scan-profiles-v2` is asked first; when
//! it answers 404 (or 405), `changes` is asked for the same profile at
//! once, and once three profiles in a row answered only there, every
//! profile asks `changes` first; and back again (issue #19).

use crate::common;
use avepoint_exporter::simulator::Knob;

use std::sync::atomic::Ordering;

use common::{Exposition, Harness, Setup};

fn v2_requests(harness: &Harness) -> u64 {
    harness
        .sim
        .stats()
        .v2_profile_requests
        .load(Ordering::Relaxed)
}

fn all_requests(harness: &Harness) -> u64 {
    harness.profile_requests()
}

/// The name of the path the client reads profiles from now.
fn profile_path(harness: &Harness) -> &'static str {
    harness.state.pipeline().client.profile_path().name()
}

/// `metrics` say the client reads profiles from `path`.
fn assert_path_info(metrics: &Exposition, path: &str) {
    assert_eq!(
        metrics.value("avepoint_api_profile_path_info", &[("path", path)]),
        1.0
    );
}

#[tokio::test]
async fn auto_moves_to_changes_when_the_seed_path_is_not_served() {
    let harness = Harness::start(Setup::default()).await;
    harness.sim.set(Knob::V2PathAbsent(true));
    let profiles = harness.sim.profile_ids().len() as u64;

    let first = harness.scrape().await;
    assert_eq!(
        first.up_count() as u64,
        profiles,
        "every profile is up on the first scrape"
    );
    assert_path_info(&first, "changes");
    assert!(
        first
            .find(
                "avepoint_api_profile_path_info",
                &[("path", "scan-profiles-v2")]
            )
            .is_empty()
    );
    // At most the profiles in flight (concurrency 8) before three agreed
    // asked the seed path.
    let seed = v2_requests(&harness);
    assert!(
        (3..=10).contains(&seed),
        "{seed} requests on scan-profiles-v2"
    );
    assert_eq!(all_requests(&harness), profiles + seed);

    let second = harness.scrape().await;
    assert_eq!(v2_requests(&harness), seed, "the seed path was asked again");
    assert_eq!(all_requests(&harness), 2 * profiles + seed);
    assert_eq!(second.up_count() as u64, profiles);
}

/// A gateway in front of AvePoint may answer an unknown route 405 rather
/// than 404: `auto` moves to `changes` all the same.
#[tokio::test]
async fn auto_moves_to_changes_when_the_seed_path_answers_405() {
    let harness = Harness::start(Setup::default()).await;
    harness.sim.set(Knob::V2PathStatus(Some(405)));
    let profiles = harness.sim.profile_ids();
    let metrics = harness.scrape().await;
    for (customer, profile) in &profiles {
        let report = harness.sim.current_report(customer, profile).unwrap();
        assert_eq!(
            metrics.profile_value("avepoint_scan_profile_up", customer, profile),
            1.0
        );
        assert_eq!(
            metrics.profile_value("avepoint_scan_new_registered_content", customer, profile),
            report.new_registered_content_count as f64
        );
    }
    assert_path_info(&metrics, "changes");
    let seed = v2_requests(&harness);
    assert!(
        (3..=10).contains(&seed),
        "{seed} requests on scan-profiles-v2"
    );
    assert_eq!(all_requests(&harness), profiles.len() as u64 + seed);
    assert_eq!(profile_path(&harness), "changes");
}

#[tokio::test]
async fn auto_keeps_the_seed_path_while_it_answers() {
    let harness = Harness::start(Setup::default()).await;
    let profiles = harness.sim.profile_ids().len() as u64;
    let metrics = harness.scrape().await;
    assert_path_info(&metrics, "scan-profiles-v2");
    assert_eq!(v2_requests(&harness), profiles);
    assert_eq!(all_requests(&harness), profiles);
}

#[tokio::test]
async fn a_profile_neither_path_knows_is_reported_as_not_existing() {
    let (harness, _) = common::start_with_unknown_target(
        "",
        "HTTP 404 Not Found: customer or scan profile not found: neither the scan-profiles-v2 nor the changes path knows it; check the ids",
    )
    .await;
    // The seed path answers for the real profiles, so no switch happened.
    assert_eq!(profile_path(&harness), "scan-profiles-v2");
}

/// `auto` goes both ways: after moving to `changes`, a `changes` that
/// answers 404 again while `scan-profiles-v2` answers brings every profile
/// back within three scrapes (at once, per profile), and the default moves
/// back once several profiles agree.
#[tokio::test]
async fn auto_moves_back_when_changes_goes_away() {
    let harness = Harness::start(Setup::default()).await;
    let profiles = harness.sim.profile_ids().len();
    harness.sim.set(Knob::V2PathAbsent(true));
    let up = |metrics: &Exposition| metrics.up_count();
    assert_eq!(up(&harness.scrape().await), profiles);
    assert_eq!(profile_path(&harness), "changes");

    harness.sim.set(Knob::V2PathAbsent(false));
    harness.sim.set(Knob::ChangesPathStatus(Some(404)));
    let mut scrapes = Vec::new();
    for _ in 0..3 {
        scrapes.push(up(&harness.scrape().await));
    }
    assert_eq!(
        scrapes[0], profiles,
        "every profile up at once: {scrapes:?}"
    );
    assert_eq!(scrapes, vec![profiles; 3]);
    assert_eq!(profile_path(&harness), "scan-profiles-v2");
    let metrics = harness.scrape().await;
    assert_path_info(&metrics, "scan-profiles-v2");
    // Once moved back, a scrape asks each profile once.
    let before = all_requests(&harness);
    harness.scrape().await;
    assert_eq!(all_requests(&harness), before + profiles as u64);
}

/// One profile missing on the current path does not move the default.
#[tokio::test]
async fn one_profile_answering_404_does_not_move_the_default() {
    let harness = Harness::start(Setup {
        extra_targets: vec![(
            "caf90000-2cc6-4000-b04b-794c00005ea3".into(),
            "00000000-0000-4000-8000-000000000000".into(),
        )],
        ..Setup::default()
    })
    .await;
    for _ in 0..3 {
        harness.scrape().await;
    }
    assert_eq!(profile_path(&harness), "scan-profiles-v2");
}
