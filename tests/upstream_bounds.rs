//! Issue #20, the upstream side: what AvePoint sends is bounded before it
//! is kept. Pages hold at most the page size asked for, lists and
//! customers are capped (with a metric), a customer's backup rows fold
//! into `other`, report strings are cut, counts saturate or are refused by
//! name, decode errors never quote values, and the client secret never
//! reaches an error in any of its wire forms.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use avepoint_exporter::avepoint::{ApiClient, ApiMetrics};
use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::discovery::{self, DiscoveryState, LimitHits};
use avepoint_exporter::refresher::Permits;
use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, FaultAt, RunningSimulator, SimulatorConfig,
};
use common::{Harness, Setup};
use serde_json::json;

const BOUNDS: &str = "  page_size: 100\n  max_items_per_list: 250\n  max_customers: 5\n";

fn settings(sim: &RunningSimulator, discovery_yaml: &str) -> Settings {
    let yaml = sim.exporter_config(Some(&[])) + "discovery:\n  enabled: true\n" + discovery_yaml;
    Settings::from_yaml(&yaml, Path::new("test.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
    })
    .unwrap()
}

/// A tracing writer that keeps what is written.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for Captured {
    type Writer = Captured;
    fn make_writer(&self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn a_customer_list_of_fresh_floods_is_read_to_the_page_size_and_cut_at_the_bounds() {
    let sim = RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    sim.set(Knob::CustomerFlood(Some(15_000)));
    let settings = settings(
        &sim,
        &BOUNDS.replace("max_customers: 5", "max_customers: 8"),
    );
    let client = ApiClient::new(&settings.avepoint, ApiMetrics::default()).unwrap();
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let state = discovery::refresh(
        &client,
        settings.discovery.as_ref().unwrap(),
        &[],
        &DiscoveryState::default(),
        &Permits::share_of(client.concurrency()),
    )
    .await;
    drop(guard);
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    // One line per bound hit in the refresh, five failed listings one by
    // one and the other three in one line: never a line per customer.
    assert_eq!(
        log.matches("AvePoint listed more than the exporter keeps")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("listing a customer's profiles failed").count(),
        5,
        "{log}"
    );
    assert_eq!(
        log.matches("listing more customers' profiles failed")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("more=3"), "{log}");
    // 100 + 100 + 50 of the 45,000 sent: the list stops at 250 items,
    // then the first 8 by id are kept.
    assert_eq!(state.customers.len(), 8);
    assert_eq!(
        state.customers[0].id,
        "f1000000-0000-4000-8000-000000000000"
    );
    assert_eq!(
        state.limit_hits,
        LimitHits {
            page_size: 3,
            max_items_per_list: 1,
            max_customers: 1,
            max_rows_per_customer: 0,
        }
    );
    // Three pages of customers and one profile list per kept customer
    // (which the simulator does not know: 404, a partial failure).
    assert_eq!(
        sim.stats().discovery_requests.load(Ordering::Relaxed),
        3 + 8
    );
    assert_eq!(state.errors_total, 1);
}

#[tokio::test]
async fn the_bounds_hit_are_counted_in_the_metrics() {
    let harness = Harness::start(Setup {
        static_targets: false,
        config_tail: format!("discovery:\n  enabled: true\n{BOUNDS}"),
        prepare_sim: Some(Box::new(|sim| sim.set(Knob::CustomerFlood(Some(15_000))))),
        ..Setup::default()
    })
    .await;
    for _ in 0..100 {
        if harness.get("/-/ready", &[]).await.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = harness.scrape().await;
    let hits =
        |limit: &str| metrics.value("avepoint_discovery_limit_hits_total", &[("limit", limit)]);
    assert_eq!(hits("page_size"), 3.0);
    assert_eq!(hits("max_items_per_list"), 1.0);
    assert_eq!(hits("max_customers"), 1.0);
    assert_eq!(metrics.find("avepoint_customer_info", &[]).len(), 5);
}

#[test]
fn the_bounds_are_config_keys_checked_like_the_others() {
    let yaml = |tail: &str| {
        format!(
            "avepoint:\n  client_id: 00000000-0000-0000-0000-000000000001\n  base_url: http://127.0.0.1:1\n  token_url: http://127.0.0.1:1/connect/token\ndiscovery:\n  enabled: true\n{tail}"
        )
    };
    let parse = |text: &str| {
        Settings::from_yaml(text, Path::new("test.yml"), |name| {
            (name == CLIENT_SECRET_ENV).then(|| "s".to_owned())
        })
    };
    let settings = parse(&yaml("")).unwrap();
    let limits = settings.discovery.unwrap().limits;
    assert_eq!(
        (limits.max_customers, limits.max_items_per_list),
        (10_000, 10_000)
    );
    let error = parse(&yaml("  max_items_per_list: 0\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("discovery.max_items_per_list: must be between 1 and 1000000, got 0"),
        "{error}"
    );
    let error = parse(&yaml("  max_customers: 2000000\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("discovery.max_customers: must be between 1 and 1000000, got 2000000"),
        "{error}"
    );
}

#[tokio::test]
async fn a_job_list_of_fresh_modules_is_cut_and_folds_into_other() {
    let harness = Harness::start(Setup {
        config_tail: "collectors:\n  backup_jobs:\n    enabled: true\ndiscovery:\n  enabled: false\n  max_items_per_list: 1000\n".into(),
        prepare_sim: Some(Box::new(|sim| {
            let customer = sim.customers()[0].id.clone();
            sim.set_fault(FaultAt::BackupJobs(&customer), Fault::FreshModules);
        })),
        ..Setup::default()
    })
    .await;
    let customer = harness.sim.customers()[0].id.clone();
    let mut metrics = harness.scrape().await;
    for _ in 0..200 {
        if metrics.find("avepoint_backup_collector_up", &[]).len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        metrics = harness.scrape().await;
    }
    let rows = metrics.find("avepoint_backup_job_status", &[("customer_id", &customer)]);
    assert_eq!(rows.len(), 64);
    let other = metrics.find(
        "avepoint_backup_job_status",
        &[("customer_id", &customer), ("job_module", "other")],
    );
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].labels["job_type"], "other");
    let hits = |limit: &str| {
        metrics.value(
            "avepoint_backup_limit_hits_total",
            &[("collector", "backup_jobs"), ("limit", limit)],
        )
    };
    assert_eq!(hits("max_items_per_list"), 1.0);
    assert_eq!(hits("max_rows_per_customer"), 1.0);
    assert_eq!(hits("page_size"), 0.0);
    // The other customers are untouched: four modules each.
    let second = harness.sim.customers()[2].id.clone();
    let rows = metrics.find("avepoint_backup_job_status", &[("customer_id", &second)]);
    assert_eq!(rows.len(), 4);
}

/// The one failed profile's error, after a round with `fault` on it.
async fn profile_error(harness: &Harness, profile: &str) -> String {
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    let result = snapshot
        .profiles
        .iter()
        .find(|p| p.target.profile_id == profile)
        .expect("the profile is a target");
    result.outcome.as_ref().unwrap_err().message.clone()
}

#[tokio::test]
async fn a_huge_profile_name_is_cut_before_it_is_kept() {
    let harness = Harness::start(Setup::default()).await;
    let (_, profile) = harness.sim.profile_ids()[0].clone();
    let name = "N".repeat(20 * 1024 * 1024);
    harness.sim.set_fault(
        FaultAt::Report(&profile),
        Fault::Field("profileName".into(), json!(name)),
    );
    let snapshot = harness
        .state
        .rounds()
        .collect(Duration::from_secs(10))
        .await;
    let report = snapshot.profiles[0].outcome.as_ref().unwrap();
    assert_eq!(report.profile_name, "N".repeat(128));
    let body = harness.get("/metrics", &[]).await.body;
    assert!(body.len() < 64 * 1024, "{} bytes", body.len());
}

#[tokio::test]
async fn counts_saturate_and_negative_counts_are_refused_by_name() {
    let harness = Harness::start(Setup::default()).await;
    let ids = harness.sim.profile_ids();
    let (huge_customer, huge) = ids[0].clone();
    let (_, negative) = ids[1].clone();
    let (_, personal) = ids[2].clone();
    let field = |name: &str, value: serde_json::Value| Fault::Field(name.into(), value);
    harness.sim.set_fault(
        FaultAt::Report(&huge),
        field("newRegisteredContentCount", json!(u64::MAX)),
    );
    harness.sim.set_fault(
        FaultAt::Report(&negative),
        field("movedToAnotherContainer", json!(-1)),
    );
    harness.sim.set_fault(
        FaultAt::Report(&personal),
        field(
            "removedFromMicrosoft365OrOutofPolicy",
            json!("jane.doe@contoso.example"),
        ),
    );
    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.profile_value(
            "avepoint_scan_new_registered_content",
            &huge_customer,
            &huge
        ),
        i64::MAX as f64
    );
    assert!(
        metrics
            .text
            .contains(&format!("profile_id=\"{huge}\"}} 9223372036854775807\n")),
        "the saturated count is not exported as i64::MAX"
    );
    assert!(
        !metrics.text.contains("} -1\n"),
        "a negative count was exported"
    );
    assert!(!metrics.text.contains("-9223372036854775808"));
    let error = profile_error(&harness, &negative).await;
    assert!(
        error.starts_with("invalid response body: not a scan profile report: movedToAnotherContainer: expected a count (an integer of at least 0), got a negative number (line 1 column "),
        "{error}"
    );
    let error = profile_error(&harness, &personal).await;
    assert!(
        error.starts_with("invalid response body: not a scan profile report: removedFromMicrosoft365OrOutofPolicy: expected a count (an integer of at least 0), got a string (line 1 column "),
        "{error}"
    );
    assert!(!error.contains("jane"), "{error}");
}

#[tokio::test]
async fn a_token_endpoint_echoing_the_form_never_gets_the_secret_into_an_error() {
    let secret = "Sec~ret/with+odd chars";
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            client_secret: secret.into(),
            ..SimulatorConfig::default()
        },
        secret: secret.into(),
        ..Setup::default()
    })
    .await;
    harness.sim.set(Knob::TokenEcho(true));
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    let error = &snapshot.profiles[0].outcome.as_ref().unwrap_err().message;
    assert!(
        error.contains("request: client_secret=<secret>&"),
        "{error}"
    );
    for form in [
        "Sec~ret",
        "Sec%7Eret",
        "Sec%7eret",
        "with+odd",
        "with%2Bodd",
    ] {
        assert!(!error.contains(form), "{form} in {error}");
    }
}
