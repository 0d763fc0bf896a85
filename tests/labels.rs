//! No exported label may be one that Prometheus, Kubernetes service
//! discovery or prometheus-operator put on targets: Prometheus would rename
//! ours to `exported_<name>` (unless `honor_labels` is set), and every rule,
//! alert and panel selecting on it would silently match nothing. This is
//! what made `AvepointAuthenticationFailing` unable to fire on the
//! Kubernetes base while the API metrics had a label named `endpoint`.

use crate::common;

use std::collections::BTreeSet;

use avepoint_exporter::simulator::{Fault, FaultAt, SimulatorConfig};
use common::{Exposition, Harness};

/// Target labels of Prometheus (`job`, `instance`), Kubernetes SD and
/// prometheus-operator's ServiceMonitor/PodMonitor relabelling.
const TARGET_LABELS: [&str; 8] = [
    "job",
    "instance",
    "endpoint",
    "namespace",
    "service",
    "pod",
    "container",
    "node",
];

fn clashes(exposition: &Exposition) -> BTreeSet<String> {
    exposition
        .samples
        .iter()
        .flat_map(|sample| {
            sample
                .labels
                .keys()
                .filter(|name| TARGET_LABELS.contains(&name.as_str()))
                .map(move |name| format!("{}{{{name}}}", sample.name))
        })
        .collect()
}

#[tokio::test]
async fn no_output_carries_a_label_that_prometheus_or_kubernetes_set_on_targets() {
    let harness = Harness::start_discovering(
        SimulatorConfig {
            customers: 2,
            profiles_per_customer: 3,
            ..SimulatorConfig::default()
        },
        "",
    )
    .await;
    // Every family with labels gets series: a retried 500, a throttle
    // that starts a back-off, skipped requests while it lasts.
    let ids = harness.sim.profile_ids();
    harness
        .sim
        .set_fault(FaultAt::Report(&ids[0].1), Fault::Status(500));
    harness.sim.set_fault(
        FaultAt::Report(&ids[1].1),
        Fault::Throttle(Some("30".into())),
    );
    let mut seen = BTreeSet::new();
    for accept in ["application/openmetrics-text;version=1.0.0", "text/plain"] {
        for _ in 0..2 {
            let response = harness.get("/metrics", &[("Accept", accept)]).await;
            assert_eq!(response.status, 200);
            let metrics = Exposition::parse(&response.body);
            assert_eq!(clashes(&metrics), BTreeSet::new(), "/metrics ({accept})");
            seen.extend(metrics.samples.iter().map(|s| s.name.clone()));
        }
        let customer = &ids[2].0;
        let response = harness
            .get(
                &format!("/probe?customer_id={customer}"),
                &[("Accept", accept)],
            )
            .await;
        assert_eq!(response.status, 200);
        let probe = Exposition::parse(&response.body);
        assert_eq!(clashes(&probe), BTreeSet::new(), "/probe ({accept})");
    }
    // The check saw the families that carry the API's labels.
    for family in [
        "avepoint_api_requests_total",
        "avepoint_api_retries_total",
        "avepoint_api_backoff_skipped_requests_total",
        "avepoint_api_request_duration_seconds_bucket",
        "avepoint_customer_info",
        "avepoint_scan_profile_info",
    ] {
        assert!(seen.contains(family), "{family} had no series to check");
    }
}
