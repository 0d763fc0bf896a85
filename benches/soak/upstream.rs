//! `cargo bench --bench soak -- --upstream ATTACK`: the exporter's memory
//! and output while AvePoint itself misbehaves (issue #20), at default
//! settings and 2,000 profiles (200 customers of 10), with legitimate
//! `/metrics` scrapes going on. Attacks:
//!
//! * `customer-flood`: the customer list answers 15,000 customers never
//!   sent before on every page (100 asked), promising more forever;
//!   discovery refreshes every 15 s;
//! * `fresh-modules`: the job lists of 10 customers give every job a
//!   module never seen before, pages without end; the backup jobs
//!   collector reads every customer every minute (its shortest interval);
//! * `huge-name`: one profile's report carries a 20 MB `profileName`;
//! * `all`: the three, one after the other.
//!
//! Targets (exit 1 when missed): the exporter's RSS stays under 128 MiB
//! (`MemoryMax=128M` of the systemd unit), every scrape answers 200 within
//! its timeout with all 2,000 profiles up, `/metrics` stays under 24 MiB
//! (2,000 profiles alone make 9.6 MiB).

use std::time::{Duration, Instant};

use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{Fault, FaultAt, RunningSimulator, SimulatorConfig};

use super::{Exporter, PROMETHEUS_ACCEPT, mib, ms, proc_sample, write_config};
use crate::support::{flag, parse_duration, percentile};
use avepoint_exporter::web::SCRAPE_TIMEOUT_HEADER;

const RSS_LIMIT: u64 = 128 * 1024 * 1024;
/// 2,000 profiles alone make 9.6 MiB (details on, the default); the
/// bounds add at most 10,000 customers (about 5 MiB) or 64 rows per
/// flooded customer. Without them: 401 MB from one customer (issue #20).
const BODY_LIMIT: usize = 24 * 1024 * 1024;
const CUSTOMERS: usize = 200;
const PROFILES_PER_CUSTOMER: usize = 10;
const ATTACKS: [&str; 3] = ["customer-flood", "fresh-modules", "huge-name"];

pub const USAGE: &str = "
  --upstream ATTACK    instead of the soak above: one upstream attack of issue #20
                       (customer-flood, fresh-modules, huge-name, or all), 2,000
                       profiles, default exporter settings; see benches/soak/upstream.rs
  --attack-for D       how long each attack runs (default 70s)
  --scrape-every D     least time between the starts of a scraper's scrapes (default 2s;
                       two scrapers, scrape timeout 10 s)
";

/// What one attack measured.
struct Outcome {
    attack: &'static str,
    rss_peak: u64,
    rss_end: u64,
    scrapes: usize,
    failed: Vec<String>,
    latencies: Vec<Duration>,
    body_max: usize,
    notes: String,
}

/// Runs the attacks `--upstream` names; `true` when a target was missed.
pub fn run(args: &[String]) -> bool {
    let which = flag(args, "--upstream").unwrap_or_else(|| "all".to_owned());
    let attacks: Vec<&'static str> = match which.as_str() {
        "all" => ATTACKS.to_vec(),
        name => match ATTACKS.iter().find(|a| **a == name) {
            Some(attack) => vec![*attack],
            None => panic!("--upstream: one of {} or all", ATTACKS.join(", ")),
        },
    };
    let length = flag(args, "--attack-for").map_or(Duration::from_secs(70), |d| parse_duration(&d));
    let every = flag(args, "--scrape-every").map_or(Duration::from_secs(2), |d| parse_duration(&d));
    println!(
        "avepoint-exporter upstream soak: {} cores; {} profiles; each attack {} s; 2 scrapers, one scrape per {} at most, timeout 10 s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        CUSTOMERS * PROFILES_PER_CUSTOMER,
        length.as_secs(),
        ms(every),
    );
    let mut failed = false;
    for attack in attacks {
        let outcome = run_one(attack, length, every);
        failed |= report(&outcome);
    }
    failed
}

fn run_one(attack: &'static str, length: Duration, every: Duration) -> Outcome {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sim = runtime
        .block_on(RunningSimulator::start(
            SimulatorConfig {
                customers: CUSTOMERS,
                profiles_per_customer: PROFILES_PER_CUSTOMER,
                latency: Duration::from_millis(2),
                permissions: "elements.scanprofiles.read.all elements.customers.read.all elements.jobs.read.all elements.cbprotected.read.all".into(),
                ..SimulatorConfig::default()
            },
            ([127, 0, 0, 1], 0).into(),
        ))
        .expect("simulator binds");
    let mut yaml = sim.exporter_config(None);
    match attack {
        "customer-flood" => {
            yaml.push_str("discovery:\n  enabled: true\n  refresh_interval: 15s\n");
            sim.set(Knob::CustomerFlood(Some(15_000)));
        }
        "fresh-modules" => {
            yaml.push_str(
                "collectors:\n  backup_jobs:\n    enabled: true\n    refresh_interval: 1m\n",
            );
            for customer in sim.customers().iter().take(10) {
                sim.set_fault(FaultAt::BackupJobs(&customer.id), Fault::FreshModules);
            }
        }
        _ => {
            let (_, profile) = sim.profile_ids()[0].clone();
            let name = "N".repeat(20 * 1024 * 1024);
            sim.set_fault(
                FaultAt::Report(&profile),
                Fault::Field("profileName".into(), name.into()),
            );
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("avepoint-upstream-soak-")
        .tempdir()
        .expect("temp dir");
    let config = dir.path().join("avepoint.yml");
    write_config(&config, &yaml);
    let log = std::env::temp_dir().join(format!(
        "avepoint-upstream-soak-{attack}-{}.log",
        std::process::id()
    ));
    let mut exporter = Exporter::start(&config, log);
    let pid = exporter.pid;
    let base = format!("http://{}", exporter.addr);
    let started = Instant::now();
    let until = started + length;
    let results = runtime.block_on(async {
        let sampler = tokio::spawn(async move {
            let (mut peak, mut last) = (0, 0);
            while Instant::now() < until {
                if let Some(sample) = proc_sample(pid, 0.0, 0) {
                    peak = peak.max(sample.rss);
                    last = sample.rss;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (peak, last)
        });
        let scrapers: Vec<_> = (0..2)
            .map(|_| tokio::spawn(scraper(base.clone(), until, every)))
            .collect();
        let mut scrapes = Vec::new();
        for scraper in scrapers {
            scrapes.extend(scraper.await.expect("scraper"));
        }
        let rss = sampler.await.expect("sampler");
        let notes = notes(&base, attack, &sim).await;
        (rss, scrapes, notes)
    });
    let ((rss_peak, rss_end), scrapes, notes) = results;
    let _ = exporter.terminate();
    let mut outcome = Outcome {
        attack,
        rss_peak,
        rss_end,
        scrapes: scrapes.len(),
        failed: Vec::new(),
        latencies: Vec::new(),
        body_max: 0,
        notes,
    };
    for scrape in scrapes {
        match scrape {
            Ok((latency, bytes, up)) if up == CUSTOMERS * PROFILES_PER_CUSTOMER => {
                outcome.latencies.push(latency);
                outcome.body_max = outcome.body_max.max(bytes);
            }
            Ok((latency, bytes, up)) => {
                outcome.latencies.push(latency);
                outcome.body_max = outcome.body_max.max(bytes);
                outcome.failed.push(format!("only {up} profiles up"));
            }
            Err(error) => outcome.failed.push(error),
        }
    }
    outcome
}

type Scrape = Result<(Duration, usize, usize), String>;

/// Legitimate scrapes, as Prometheus sends them, until `until`.
async fn scraper(base: String, until: Instant, every: Duration) -> Vec<Scrape> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut results = Vec::new();
    while Instant::now() < until {
        let next = tokio::time::Instant::now() + every;
        let started = Instant::now();
        let sent = client
            .get(format!("{base}/metrics"))
            .header(reqwest::header::ACCEPT, PROMETHEUS_ACCEPT)
            .header(SCRAPE_TIMEOUT_HEADER, "10")
            .send()
            .await;
        let result = match sent {
            Ok(response) if response.status() == 200 => match response.text().await {
                Ok(body) => {
                    let up = body
                        .lines()
                        .filter(|l| l.starts_with("avepoint_scan_profile_up{") && l.ends_with(" 1"))
                        .count();
                    Ok((started.elapsed(), body.len(), up))
                }
                Err(error) => Err(format!("body: {error}")),
            },
            Ok(response) => Err(format!("HTTP {}", response.status())),
            Err(error) => Err(format!("{error}")),
        };
        results.push(result);
        tokio::time::sleep_until(next).await;
    }
    results
}

/// What the attack left in the exposition: the bound it hit, the rows.
async fn notes(base: &str, attack: &str, sim: &RunningSimulator) -> String {
    let Ok(response) = reqwest::get(format!("{base}/metrics")).await else {
        return String::new();
    };
    let body = response.text().await.unwrap_or_default();
    let lines = |prefix: &str| -> Vec<String> {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    };
    match attack {
        "customer-flood" => lines("avepoint_discovery_limit_hits_total").join("; "),
        "fresh-modules" => {
            let flooded = &sim.customers()[0].id;
            let rows = lines("avepoint_backup_job_status{")
                .iter()
                .filter(|l| l.contains(flooded.as_str()))
                .count();
            let mut hits = lines("avepoint_backup_limit_hits_total{collector=\"backup_jobs\"");
            hits.push(format!("{rows} job rows of a flooded customer"));
            hits.join("; ")
        }
        _ => {
            let longest = body.lines().map(str::len).max().unwrap_or(0);
            format!("longest /metrics line {longest} bytes")
        }
    }
}

/// Print one attack's figures; `true` when a target was missed.
fn report(outcome: &Outcome) -> bool {
    let mut latencies = outcome.latencies.clone();
    latencies.sort();
    let p = |q: f64| ms(percentile(&latencies, q));
    println!(
        "\n{}: RSS peak {}, at the end {}; {} scrapes, {} failed; latency p50 {} p99 {} max {}; /metrics at most {}",
        outcome.attack,
        mib(outcome.rss_peak as f64),
        mib(outcome.rss_end as f64),
        outcome.scrapes,
        outcome.failed.len(),
        p(0.5),
        p(0.99),
        latencies.last().map_or("-".to_owned(), |d| ms(*d)),
        mib(outcome.body_max as f64),
    );
    println!("  {}", outcome.notes);
    let mut missed = Vec::new();
    if outcome.rss_peak >= RSS_LIMIT {
        missed.push("RSS reached 128 MiB".to_owned());
    }
    if outcome.body_max >= BODY_LIMIT {
        missed.push("/metrics reached 24 MiB".to_owned());
    }
    if outcome.scrapes == 0 {
        missed.push("no scrape answered".to_owned());
    }
    missed.extend(outcome.failed.iter().take(5).cloned());
    if missed.is_empty() {
        println!("  PASS");
        false
    } else {
        println!("  SOAK FAILED: {}", missed.join("; "));
        true
    }
}
