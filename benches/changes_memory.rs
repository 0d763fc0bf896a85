//! Peak memory of the exporter while it decodes huge `changes` bodies
//! (issue #11): every profile's body carries N objects in each of its three
//! lists (200,000 by default, about 50 MB a body), and all of them are in
//! flight at once. The bodies are decoded as they stream in, so the peak
//! should stay within a few MiB of the baseline, not grow by
//! profiles x body size.
//!
//! ```sh
//! cargo bench --bench changes_memory                      # 64 profiles, 200,000 objects per list
//! cargo bench --bench changes_memory -- --objects 50000 --rounds 5
//! ```
//!
//! Two processes on 127.0.0.1: this one runs the simulator
//! (`set_change_list_size`, counts pinned to match with `Fault::Report`)
//! and the scrapes; the exporter is the release binary, `serve` with
//! `avepoint.concurrency` = the number of profiles, so every body is in
//! flight at once. Memory is read from `/proc/PID/status` of the exporter:
//! VmHWM (the peak RSS) and VmRSS.

mod support;

use std::process::{Child, Command};
use std::time::Instant;

use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, FaultAt, RunningSimulator, SimulatorConfig,
};
use support::{EXPORTER, cpu_model, flag, follow_log, memory, parse_number, serve_command};

/// The exporter binary cargo built for this bench.
const PROFILES_PER_CUSTOMER: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("changes_memory: skipped (run it with `cargo bench --bench changes_memory`)");
        return;
    }
    let profiles: usize = flag(&args, "--profiles").map_or(64, |v| parse_number(&v, "--profiles"));
    let objects: usize =
        flag(&args, "--objects").map_or(200_000, |v| parse_number(&v, "--objects"));
    let rounds: usize = flag(&args, "--rounds").map_or(3, |v| parse_number(&v, "--rounds"));
    assert!(
        profiles.is_multiple_of(PROFILES_PER_CUSTOMER),
        "--profiles: a multiple of 8"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run(profiles, objects, rounds));
}

async fn run(profiles: usize, objects: usize, rounds: usize) {
    let sim = RunningSimulator::start(
        SimulatorConfig {
            customers: profiles / PROFILES_PER_CUSTOMER,
            profiles_per_customer: PROFILES_PER_CUSTOMER,
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("simulator binds");
    let config = tempfile::NamedTempFile::new().expect("config file");
    let yaml = sim.exporter_config(None).replacen(
        "targets:",
        &format!(
            "  endpoint: changes\n  concurrency: {profiles}\n  request_timeout: 5m\n  round_timeout: 5m\ntargets:"
        ),
        1,
    );
    std::fs::write(config.path(), yaml).expect("config written");
    let mut exporter = Exporter::start(config.path());
    let url = format!("http://{}/metrics", exporter.addr);
    let client = reqwest::Client::new();

    // Baseline: the same profiles with their everyday lists (a few items).
    for _ in 0..2 {
        scrape(&client, &url, profiles, None).await;
    }
    let (baseline_hwm, baseline_rss) = memory(exporter.pid);

    let started = Instant::now();
    for (customer, profile) in sim.profile_ids() {
        let mut report = sim.current_report(&customer, &profile).expect("report");
        report.new_registered_content_count = objects as i64;
        report.moved_to_another_container = objects as i64;
        report.removed_from_m365_or_out_of_policy = objects as i64;
        sim.set_fault(FaultAt::Report(&profile), Fault::Report(report));
        sim.set(Knob::ChangeListSize(&profile, Some(objects)));
    }
    let body_bytes = body_size(&sim).await;
    println!(
        "simulator: {profiles} bodies of {:.1} MB ({objects} objects per list) ready in {:.1?}",
        body_bytes as f64 / 1e6,
        started.elapsed()
    );
    let mut durations = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        scrape(&client, &url, profiles, Some(objects)).await;
        durations.push(started.elapsed());
    }
    let (peak_hwm, after_rss) = memory(exporter.pid);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "machine: {} ({} CPUs)",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "baseline (everyday bodies): VmHWM {:.1} MiB, VmRSS {:.1} MiB",
        mib(baseline_hwm),
        mib(baseline_rss)
    );
    println!(
        "{rounds} rounds of {profiles} x {:.1} MB in flight ({:.2} GB decoded): VmHWM {:.1} MiB (+{:.1} MiB over the baseline VmHWM), VmRSS after {:.1} MiB",
        body_bytes as f64 / 1e6,
        (rounds * profiles) as f64 * body_bytes as f64 / 1e9,
        mib(peak_hwm),
        mib(peak_hwm.saturating_sub(baseline_hwm)),
        mib(after_rss)
    );
    println!("round durations: {durations:.2?}");
    exporter.stop();
}

/// One `/metrics` scrape; every profile must be up, with `objects` as its
/// counts when given.
async fn scrape(client: &reqwest::Client, url: &str, profiles: usize, objects: Option<usize>) {
    let text = client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", "300")
        .send()
        .await
        .expect("exporter answers")
        .text()
        .await
        .expect("metrics body");
    let up = text
        .lines()
        .filter(|l| l.starts_with("avepoint_scan_profile_up{") && l.ends_with(" 1"))
        .count();
    assert_eq!(up, profiles, "every profile up");
    if let Some(objects) = objects {
        let counted = text
            .lines()
            .filter(|l| l.starts_with("avepoint_scan_new_registered_content{"))
            .filter(|l| l.ends_with(&format!(" {objects}")))
            .count();
        assert_eq!(counted, profiles, "every count is {objects}");
    }
}

/// The size of one huge `changes` body, fetched once by hand.
async fn body_size(sim: &RunningSimulator) -> usize {
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", avepoint_exporter::simulator::DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("scope", "elements.scanprofiles.read.all"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token body");
    let (customer, profile) = sim.profile_ids()[0].clone();
    let body = client
        .get(format!(
            "{}/partner/external/v3/general/customers/{customer}/scan-profiles/{profile}/changes",
            sim.base_url()
        ))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .expect("changes")
        .bytes()
        .await
        .expect("changes body");
    body.len()
}

struct Exporter {
    child: Child,
    pid: u32,
    addr: String,
}

impl Exporter {
    fn start(config: &std::path::Path) -> Exporter {
        let mut child = serve_command(Command::new(EXPORTER), config)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {EXPORTER}: {e}"));
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr");
        let addr = follow_log(stderr, |line| {
            if line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"") {
                eprintln!("exporter: {line}");
            }
        })
        .expect("the exporter logs `listening` within 30 s");
        Exporter { child, pid, addr }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}
