//! Micro-benchmark (issue #6): encoding a snapshot of 10,000 scan profiles
//! in both exposition formats, without any I/O.
//!
//! ```sh
//! cargo bench --bench encode
//! ```
//!
//! The snapshot is built directly from `ProfileResult`s carrying the
//! simulator's generated `ScanProfileReport`s (realistic names, ids and
//! timestamps), all profiles up.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use avepoint_exporter::avepoint::ApiMetrics;
use avepoint_exporter::collect::{ProfileResult, Snapshot};
use avepoint_exporter::config::ProfileTarget;
use avepoint_exporter::metrics::{
    BuildInfo, Format, ProbeSources, ReloadMetrics, ScrapeSources, encode_probe, encode_scrape,
};
use avepoint_exporter::simulator::data;
use time::OffsetDateTime;

const PROFILES: usize = 10_000;
/// The customer a probe asks for (none of the snapshot's: only the
/// per-profile families are measured).
const CUSTOMER: &str = "00000000-0000-4000-8000-000000000000";

fn snapshot(customers: usize, per_customer: usize) -> Arc<Snapshot> {
    let now = OffsetDateTime::now_utc();
    let generated = data::generate(1, customers, per_customer, now);
    let profiles = generated
        .iter()
        .flat_map(|customer| {
            customer
                .profiles
                .iter()
                .enumerate()
                .map(move |(index, profile)| ProfileResult {
                    target: ProfileTarget {
                        customer_id: customer.id.clone(),
                        profile_id: profile.id.clone(),
                    },
                    fetch_duration: Duration::from_micros(51_234 + index as u64),
                    outcome: Ok(data::report(
                        1,
                        customer,
                        profile,
                        index as u64,
                        1,
                        now,
                        now - Duration::from_secs(50 * 3600),
                    )),
                    cache_age: None,
                    read: None,
                })
        })
        .map(Arc::new)
        .collect();
    Arc::new(Snapshot {
        profiles,
        collect_duration: Duration::from_millis(812),
        schedule: None,
    })
}

static SNAPSHOT: LazyLock<Arc<Snapshot>> = LazyLock::new(|| {
    let snapshot = snapshot(PROFILES / 100, 100);
    assert_eq!(snapshot.profiles.len(), PROFILES);
    snapshot
});

fn main() {
    // Built once, outside the timings.
    LazyLock::force(&SNAPSHOT);
    divan::main();
}

const FORMATS: [Format; 2] = [Format::OpenMetrics, Format::PrometheusText];

/// `encode_probe` without a customer: the per-profile families plus the
/// probe's two gauges (what `encode_profiles` was before issue #5).
#[divan::bench(args = FORMATS, sample_count = 30)]
fn profiles_10k(bencher: divan::Bencher, format: Format) {
    bencher
        .counter(divan::counter::ItemsCount::new(PROFILES))
        .bench(|| {
            // Every chunk, as the server streams them, without keeping them.
            let sources = ProbeSources {
                customer_id: CUSTOMER.to_owned(),
                ..Default::default()
            };
            encode_probe(Arc::clone(&SNAPSHOT), sources, format)
                .expect("encodes")
                .map(|chunk| chunk.len())
                .sum::<usize>()
        });
}

/// `encode_scrape`: what one `/metrics` request encodes (profiles, the
/// exporter's own metrics and the process metrics from /proc).
#[divan::bench(args = FORMATS, sample_count = 30)]
fn scrape_10k(bencher: divan::Bencher, format: Format) {
    let api = ApiMetrics::default();
    let reload = ReloadMetrics::started();
    let build = BuildInfo::default();
    bencher
        .counter(divan::counter::ItemsCount::new(PROFILES))
        .bench(|| {
            encode_scrape(
                Arc::clone(&SNAPSHOT),
                ScrapeSources {
                    targets: SNAPSHOT.profiles.len(),
                    ..Default::default()
                },
                &api,
                &reload,
                &build,
                format,
            )
            .expect("encodes")
            .map(|chunk| chunk.len())
            .sum::<usize>()
        });
}
