//! The exposition as real consumers read it: promtool, the reference
//! OpenMetrics parser (client_python), and content negotiation.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use avepoint_exporter::avepoint::ScanProfileReport;
use avepoint_exporter::simulator::{Fault, FaultAt};
use common::{Exposition, Harness, Setup, tool_available};

const WEIRD_NAME: &str =
    "Finance \"Q4\" \\ backup\nsecond line – Ünïcødé 档案 🚀 {a=\"b\"} # not a comment";

/// A harness whose data has every awkward case at once: a name that needs
/// escaping, an undocumented status, and a failing profile.
async fn awkward_harness() -> (Harness, String) {
    let harness = Harness::start(Setup::default()).await;
    let targets = harness.sim.profile_ids();
    let (_, weird) = targets[0].clone();
    let mut report: ScanProfileReport = harness.sim.current_report(&targets[0].0, &weird).unwrap();
    report.profile_name = WEIRD_NAME.into();
    report.tenant_domain = "tenant\\with\"quotes".into();
    report.last_scan_status = 42;
    harness
        .sim
        .set_fault(FaultAt::Report(&weird), Fault::Report(report));
    harness
        .sim
        .set_fault(FaultAt::Report(&targets[1].1), Fault::Status(500));
    (harness, weird)
}

fn run_with_stdin(command: &mut Command, input: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn prometheus_text_passes_promtool_check_metrics() {
    if !tool_available(
        Command::new("promtool").arg("--version"),
        "promtool (Debian package prometheus)",
    ) {
        return;
    }
    let (harness, _) = awkward_harness().await;
    let response = harness.get("/metrics", &[]).await;
    assert_eq!(
        response.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let output = run_with_stdin(
        Command::new("promtool").args(["check", "metrics"]),
        &response.body,
    );
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool failed: {complaints}");
    assert_eq!(complaints, "", "promtool complained");
}

const PARSE_SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic
parse = openmetrics if sys.argv[1] == "openmetrics" else classic
out = {}
for family in parse(sys.stdin.read()):
    for sample in family.samples:
        if sample.name == "avepoint_scan_profile_info":
            out[sample.labels["profile_id"]] = sample.labels
        out.setdefault("_families", {})[family.name] = family.type
print(json.dumps(out))
"#;

fn python_has_prometheus_client() -> bool {
    tool_available(
        Command::new("python3").args(["-c", "import prometheus_client"]),
        "python3 with prometheus-client (pip install prometheus-client)",
    )
}

async fn parse_with_client_python(format: &str, accept: &str, content_type: &str) {
    if !python_has_prometheus_client() {
        return;
    }
    let (harness, weird) = awkward_harness().await;
    let response = harness.get("/metrics", &[("Accept", accept)]).await;
    assert_eq!(response.content_type, content_type);
    let output = run_with_stdin(
        Command::new("python3").args(["-c", PARSE_SCRIPT, format]),
        &response.body,
    );
    assert!(
        output.status.success(),
        "parser rejected the exposition: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(parsed[&weird]["profile_name"], WEIRD_NAME);
    assert_eq!(parsed[&weird]["tenant_domain"], "tenant\\with\"quotes");
    assert_eq!(
        parsed[&weird]["scan_mode"]
            .as_str()
            .map(|m| m == "express" || m == "advanced"),
        Some(true)
    );
    let families = &parsed["_families"];
    assert_eq!(families["avepoint_scan_last_status"], "gauge");
    assert_eq!(families["avepoint_api_requests"], "counter");
    assert_eq!(
        families["avepoint_api_request_duration_seconds"],
        "histogram"
    );
}

#[tokio::test]
async fn openmetrics_parses_with_the_reference_parser() {
    parse_with_client_python(
        "openmetrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
    .await;
}

#[tokio::test]
async fn prometheus_text_parses_with_the_reference_parser() {
    parse_with_client_python(
        "text",
        "text/plain",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .await;
}

#[tokio::test]
async fn openmetrics_ends_with_eof_and_text_does_not() {
    let harness = Harness::start(Setup::default()).await;
    let openmetrics = harness
        .get(
            "/metrics",
            &[("Accept", "application/openmetrics-text; version=1.0.0")],
        )
        .await;
    assert!(openmetrics.body.ends_with("# EOF\n"));
    assert!(
        openmetrics
            .body
            .contains("# UNIT avepoint_scan_last_update_timestamp_seconds seconds\n")
    );
    let text = harness.get("/metrics", &[]).await;
    assert!(!text.body.contains("# EOF"));
    assert!(!text.body.contains("# UNIT"));
    assert!(
        text.body
            .contains("# TYPE avepoint_api_requests_total counter\n")
    );
}

#[tokio::test]
async fn landing_page_and_health_endpoints() {
    let harness = Harness::start(Setup::default()).await;
    let landing = harness.get("/", &[]).await;
    assert_eq!(landing.status, 200);
    assert!(landing.content_type.starts_with("text/html"));
    assert!(landing.body.contains("<h1>AvePoint Exporter</h1>"));
    assert!(landing.body.contains(env!("CARGO_PKG_VERSION")));
    assert!(landing.body.contains("<a href=\"/metrics\">Metrics</a>"));
    assert_eq!(harness.get("/-/healthy", &[]).await.body, "Healthy\n");
    assert_eq!(harness.get("/-/ready", &[]).await.body, "Ready\n");
    assert_eq!(harness.get("/nope", &[]).await.status, 404);
    // The landing page does not fetch anything upstream.
    assert_eq!(harness.profile_requests(), 0);
}

/// A raw GET: status, `Content-Encoding` and the body's bytes as sent.
async fn get_raw(harness: &Harness, path: &str, accept_encoding: &str) -> (u16, String, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", harness.addr))
        .header("Accept-Encoding", accept_encoding)
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .expect("exporter answers");
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status().as_u16();
    (status, encoding, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn metrics_and_probe_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read;
    let harness = Harness::start(Setup::default()).await;
    let (customer, profile) = harness.sim.profile_ids()[0].clone();
    for path in [
        "/metrics".to_owned(),
        format!("/probe?customer_id={customer}"),
    ] {
        let (status, encoding, plain) = get_raw(&harness, &path, "identity").await;
        assert_eq!((status, encoding.as_str()), (200, ""), "{path}");
        // What Prometheus sends.
        let (status, encoding, gzipped) = get_raw(&harness, &path, "gzip").await;
        assert_eq!((status, encoding.as_str()), (200, "gzip"), "{path}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_string(&mut text)
            .expect("valid gzip");
        assert!(
            gzipped.len() * 3 < plain.len(),
            "{path}: {} bytes gzipped, {} plain",
            gzipped.len(),
            plain.len()
        );
        let metrics = Exposition::parse(&text);
        assert!(text.ends_with("# EOF\n"), "{path}");
        assert_eq!(
            metrics.profile_value("avepoint_scan_profile_up", &customer, &profile),
            1.0,
            "{path}"
        );
    }
    // The small pages stay as they are.
    let (_, encoding, _) = get_raw(&harness, "/-/healthy", "gzip").await;
    assert_eq!(encoding, "");
}
