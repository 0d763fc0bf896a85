//! API economy (issue #21): what each refresh mode costs AvePoint and how
//! fresh the reports it serves are, over simulated days.
//!
//! ```sh
//! cargo bench --bench economy                                  # 1,000 profiles, 6-minute days, ~25 min
//! cargo bench --bench economy -- --profiles 200 --day 2m --days 2
//! cargo bench --bench economy -- --help
//! ```
//!
//! The simulator with its daily schedule (each profile scans at its own
//! time of the day, Running until its report appears) and the exporter
//! wired as `serve` does it, both in this process on 127.0.0.1; a
//! Prometheus-like scraper scrapes `/metrics` every scrape interval. Every
//! duration is scaled by one factor (a 24-hour day becomes `--day`): the
//! scrape interval (60 s), `cache_ttl` (5 m), `poll_interval` (5 m),
//! `max_age` (6 h), `report_grace` (2 h). Per mode it reports AvePoint
//! calls per profile per (simulated) day, counted by the simulator, and
//! the delay from a report's `lastUpdateTime` to the first scrape that
//! shows it (p50, p99), in real-day units. `every_scrape` and `cache_ttl`
//! cost the same every day and run for a quarter of one (`--steady-days`);
//! `report_schedule` runs for `--days`.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::simulator::{DEMO_CLIENT_SECRET, RunningSimulator, SimulatorConfig};
use avepoint_exporter::state::{AppState, StateOptions};
use avepoint_exporter::{serve, web};
use support::{flag, parse_duration, parse_number, percentile};

const USAGE: &str = "cargo bench --bench economy -- [options]

  --profiles N     profiles, 10 per customer (default 1000)
  --day D          length of a simulated day (default 6m: every duration / 240)
  --days N         simulated days of the report_schedule run (default 2)
  --modes LIST     every_scrape,cache_ttl,report_schedule (default: all three)
  --steady-days F  simulated days of the every_scrape and cache_ttl runs, whose
                   calls per day do not change from one day to the next (default 0.25)
";

const REAL_DAY: f64 = 86_400.0;

struct Outcome {
    mode: &'static str,
    calls_per_profile_day: f64,
    delays: Vec<Duration>,
    scrapes: usize,
    slowest_scrape: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("economy benchmark: skipped (run it with `cargo bench --bench economy`)");
        return;
    }
    let profiles: usize = flag(&args, "--profiles").map_or(1000, |n| parse_number(&n, "profiles"));
    let day = flag(&args, "--day").map_or(Duration::from_secs(360), |d| parse_duration(&d));
    let days: f64 = flag(&args, "--days").map_or(2.0, |n| parse_number(&n, "days"));
    let steady_days: f64 =
        flag(&args, "--steady-days").map_or(0.25, |n| parse_number(&n, "steady days"));
    let modes =
        flag(&args, "--modes").unwrap_or_else(|| "every_scrape,cache_ttl,report_schedule".into());
    let scale = day.as_secs_f64() / REAL_DAY;
    let scaled = |real_seconds: f64| Duration::from_secs_f64(real_seconds * scale);
    println!(
        "economy: {profiles} profiles, a day of {} (scale 1/{:.0}): scrape every {:?}, poll_interval {:?}, max_age {:?}",
        humantime::format_duration(day),
        1.0 / scale,
        scaled(60.0),
        scaled(300.0),
        scaled(6.0 * 3600.0),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut outcomes = Vec::new();
    for mode in modes.split(',') {
        let (collectors, cache_ttl, length): (String, Option<Duration>, f64) = match mode {
            "every_scrape" => (String::new(), None, steady_days),
            "cache_ttl" => (String::new(), Some(scaled(300.0)), steady_days),
            "report_schedule" => (
                format!(
                    "collectors:\n  scan_profiles:\n    refresh: report_schedule\n    poll_interval: {}ms\n    max_age: {}ms\n    report_interval: {}ms\n    report_grace: {}ms\n",
                    scaled(300.0).as_millis(),
                    scaled(6.0 * 3600.0).as_millis(),
                    day.as_millis(),
                    scaled(2.0 * 3600.0).as_millis(),
                ),
                None,
                days,
            ),
            other => panic!("unknown mode {other}"),
        };
        let mode: &'static str = Box::leak(mode.to_owned().into_boxed_str());
        let outcome = runtime.block_on(run_mode(
            mode,
            profiles,
            day,
            length,
            scaled(60.0),
            cache_ttl,
            &collectors,
        ));
        print_outcome(&outcome, scale);
        outcomes.push(outcome);
    }
    println!(
        "\n| mode | AvePoint calls per profile per day | delay p50 | delay p99 | reports seen | slowest scrape |"
    );
    println!("|---|---|---|---|---|---|");
    for o in &outcomes {
        let (p50, p99) = o.delay_percentiles(scale);
        println!(
            "| {} | {:.1} | {p50:.0} s | {p99:.0} s | {} | {:.0} ms |",
            o.mode,
            o.calls_per_profile_day,
            o.delays.len(),
            o.slowest_scrape.as_secs_f64() * 1e3,
        );
    }
}

impl Outcome {
    /// The delay's p50 and p99, seconds in real-day units.
    fn delay_percentiles(&self, scale: f64) -> (f64, f64) {
        let mut delays = self.delays.clone();
        delays.sort();
        let real = |p| percentile(&delays, p).as_secs_f64() / scale;
        (real(0.5), real(0.99))
    }
}

fn print_outcome(o: &Outcome, scale: f64) {
    let (p50, p99) = o.delay_percentiles(scale);
    let (mode, calls, reports) = (o.mode, o.calls_per_profile_day, o.delays.len());
    println!(
        "\n== {mode}: {calls:.1} calls per profile per day; delay p50 {p50:.0} s, p99 {p99:.0} s (real-day units) over {reports} new reports; {} scrapes",
        o.scrapes
    );
}

async fn run_mode(
    mode: &'static str,
    profiles: usize,
    day: Duration,
    days: f64,
    scrape_every: Duration,
    cache_ttl: Option<Duration>,
    collectors: &str,
) -> Outcome {
    let sim = RunningSimulator::start(
        SimulatorConfig {
            customers: profiles.div_ceil(10),
            profiles_per_customer: profiles.min(10),
            day_length: day,
            daily_schedule: true,
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("simulator binds");
    let cache = cache_ttl.map_or(String::new(), |ttl| {
        format!("  cache_ttl: {}ms\n", ttl.as_millis())
    });
    let yaml = sim
        .exporter_config(None)
        .replacen("targets:", &format!("{cache}targets:"), 1)
        + "profile_details:\n  enabled: false\n"
        + collectors;
    let settings = Settings::from_yaml(&yaml, Path::new("economy.yml"), |name| {
        (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
    })
    .expect("config");
    let state = AppState::build(&settings, StateOptions::default()).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}/metrics", listener.local_addr().expect("address"));
    tokio::spawn(serve::serve(
        listener,
        web::router(Arc::clone(&state)),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();

    // Warm up: until every profile is up (the first reads), then count.
    let mut seen: HashMap<String, f64> = HashMap::new();
    loop {
        let body = scrape(&client, &url).await;
        if update_seen(&body, &mut seen, None) == profiles {
            break;
        }
        tokio::time::sleep(scrape_every).await;
    }
    let before: u64 = sim.requests_per_profile().values().sum();
    let started = Instant::now();
    let length = day.mul_f64(days);
    let (mut delays, mut scrapes, mut slowest) = (Vec::new(), 0, Duration::ZERO);
    let mut next = tokio::time::Instant::now();
    while started.elapsed() < length {
        next += scrape_every;
        tokio::time::sleep_until(next).await;
        let scrape_started = Instant::now();
        let body = scrape(&client, &url).await;
        slowest = slowest.max(scrape_started.elapsed());
        scrapes += 1;
        update_seen(&body, &mut seen, Some(&mut delays));
    }
    let calls = sim.requests_per_profile().values().sum::<u64>() - before;
    let elapsed_days = started.elapsed().as_secs_f64() / day.as_secs_f64();
    Outcome {
        mode,
        calls_per_profile_day: calls as f64 / profiles as f64 / elapsed_days,
        delays,
        scrapes,
        slowest_scrape: slowest,
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", "60")
        .send()
        .await
        .expect("exporter answers")
        .text()
        .await
        .expect("body")
}

/// Record each profile's `lastUpdateTime` as this scrape shows it; a new
/// one adds its delay (now - lastUpdateTime). Returns the profiles shown.
fn update_seen(
    body: &str,
    seen: &mut HashMap<String, f64>,
    delays: Option<&mut Vec<Duration>>,
) -> usize {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut new_delays = Vec::new();
    let mut shown = 0;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("avepoint_scan_last_update_timestamp_seconds{") else {
            continue;
        };
        let Some(profile) = rest
            .split("profile_id=\"")
            .nth(1)
            .and_then(|tail| tail.split('"').next())
        else {
            continue;
        };
        let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        shown += 1;
        let previous = seen.insert(profile.to_owned(), value);
        if previous.is_some_and(|previous| value > previous) {
            new_delays.push(Duration::from_secs_f64((now - value).max(0.0)));
        }
    }
    if let Some(delays) = delays {
        delays.extend(new_delays);
    }
    shown
}
