//! The soak's figures, its report and its verdict: what `run` measured,
//! printed as the timeline, the load summary and the targets table.

use std::time::Duration;

use avepoint_exporter::simulator::RunningSimulator;
use std::sync::atomic::Ordering;

use super::{
    FD_GROWTH_LIMIT, LogTally, Options, RSS_GROWTH_LIMIT, Sample, THREAD_GROWTH_LIMIT, Tally, mib,
    ms,
};
use crate::support::percentile;

/// What the load phase left behind, for the report.
pub(super) struct Outcome {
    pub(super) before_load: Sample,
    /// One `/proc` sample a second during the load.
    pub(super) samples: Vec<Sample>,
    pub(super) tally: Tally,
    pub(super) load_time: Duration,
    pub(super) crashed_during_load: Option<std::process::ExitStatus>,
    pub(super) end_sample: Option<Sample>,
    /// 3 s after the load.
    pub(super) idle_sample: Option<Sample>,
    /// The exporter's own `/metrics` after the load.
    pub(super) final_metrics: Option<String>,
}

/// A figure of the warm-up window and of the end window (each one fault
/// cycle long), to compare.
struct Growth<T> {
    warm: T,
    end: T,
}

/// The windows the targets compare.
struct Windows {
    warm_from: f64,
    warm_to: f64,
    end_from: f64,
    total: f64,
    scrapes_at_warm: u64,
    rss: Growth<f64>,
    fds: Growth<i64>,
    fds_metric: Growth<i64>,
    threads: Growth<i64>,
    peak_rss: u64,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

impl Windows {
    fn of(options: &Options, outcome: &Outcome) -> Windows {
        let total = outcome.load_time.as_secs_f64();
        let cycle = options.fault_cycle().as_secs_f64();
        let warm_from = (0.1 * total).max(cycle).min(total - cycle).max(0.0);
        let warm_to = warm_from + cycle;
        let end_from = (total - cycle).max(0.0);
        let window = |from: f64, to: f64| -> Vec<Sample> {
            outcome
                .samples
                .iter()
                .filter(|s| s.t >= from && s.t < to + 0.5)
                .copied()
                .collect()
        };
        let (warm, end) = (window(warm_from, warm_to), window(end_from, total));
        let max =
            |samples: &[Sample], of: fn(&Sample) -> i64| samples.iter().map(of).max().unwrap_or(0);
        let fds_metric = |from: f64, to: f64| {
            outcome
                .tally
                .open_fds_metric
                .iter()
                .filter(|(t, _)| *t >= from && *t < to + 0.5)
                .map(|(_, v)| *v as i64)
                .max()
                .unwrap_or(0)
        };
        Windows {
            warm_from,
            warm_to,
            end_from,
            total,
            scrapes_at_warm: warm.first().map_or(0, |s| s.scrapes),
            rss: Growth {
                warm: mean(warm.iter().map(|s| s.rss as f64)),
                end: mean(end.iter().map(|s| s.rss as f64)),
            },
            fds: Growth {
                warm: max(&warm, |s| s.fds as i64),
                end: max(&end, |s| s.fds as i64),
            },
            fds_metric: Growth {
                warm: fds_metric(warm_from, warm_to),
                end: fds_metric(end_from, total),
            },
            threads: Growth {
                warm: max(&warm, |s| s.threads as i64),
                end: max(&end, |s| s.threads as i64),
            },
            peak_rss: outcome.samples.iter().map(|s| s.hwm).max().unwrap_or(0),
        }
    }
}

/// The sum of the samples of `name` in a text exposition.
fn final_value(final_metrics: Option<&str>, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in final_metrics?.lines().filter(|l| !l.starts_with('#')) {
        let series = line.split([' ', '{']).next().unwrap_or("");
        if series == name {
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

fn timeline_row(t: &str, scrapes: &str, s: &Sample) {
    println!(
        "| {t} | {scrapes} | {} | {} | {} | {} |",
        mib(s.rss as f64),
        mib(s.hwm as f64),
        s.fds,
        s.threads
    );
}

/// The exporter's RSS, fds and threads over the run, every ~10 %.
pub(super) fn print_timeline(outcome: &Outcome) {
    println!("\n== timeline (exporter, from /proc; every ~10 % of the run)");
    println!("| t | /metrics done | RSS | peak RSS | open fds | threads |");
    println!("|---|---|---|---|---|---|");
    timeline_row("before load", "0", &outcome.before_load);
    let samples = &outcome.samples;
    let step = (samples.len() / 10).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step == 0 || i + 1 == samples.len() {
            timeline_row(&format!("{:.0} s", s.t), &s.scrapes.to_string(), s);
        }
    }
    if let Some(s) = &outcome.idle_sample {
        timeline_row("idle, 3 s after the load", "-", s);
    }
}

/// What the load did and what every party counted.
pub(super) fn print_load(
    outcome: &Outcome,
    log: &LogTally,
    sim: &RunningSimulator,
    log_bytes: u64,
) {
    let tally = &outcome.tally;
    let total = outcome.load_time.as_secs_f64();
    let metrics_total = tally.metrics_ok + tally.metrics_errors;
    let probes: u64 = tally.probe_status.values().sum::<u64>() + tally.probe_errors;
    println!("\n== load ({:.0} s)", total);
    println!(
        "  /metrics: {metrics_total} scrapes ({:.1}/s), {} HTTP 200, {} errors, {} late; latency p50 {}, p90 {}, p99 {}, max {}",
        metrics_total as f64 / total,
        tally.metrics_ok,
        tally.metrics_errors,
        tally.metrics_late,
        ms(percentile(&tally.metrics_latencies, 0.5)),
        ms(percentile(&tally.metrics_latencies, 0.9)),
        ms(percentile(&tally.metrics_latencies, 0.99)),
        ms(tally.metrics_latencies.last().copied().unwrap_or_default()),
    );
    let profile_series = tally.profiles_up + tally.profiles_down;
    println!(
        "            profile results: {} up, {} down ({:.2} %); {} scrapes with every profile down (a global back-off), {} without profiles (just after a reload)",
        tally.profiles_up,
        tally.profiles_down,
        100.0 * tally.profiles_down as f64 / profile_series.max(1) as f64,
        tally.all_down_scrapes,
        tally.blank_scrapes
    );
    println!(
        "  /probe:   {probes} requests, status {:?}, {} transport errors; latency of the 200s p50 {}, p99 {}",
        tally.probe_status,
        tally.probe_errors,
        ms(percentile(&tally.probe_latencies, 0.5)),
        ms(percentile(&tally.probe_latencies, 0.99)),
    );
    println!("  /sd:      {} ok, {} errors", tally.sd_ok, tally.sd_errors);
    let reload_max = tally.reload_latencies.iter().max().copied();
    println!(
        "  reloads:  {} ok, {} failed (slowest {})",
        tally.reloads_ok,
        tally.reloads_failed,
        ms(reload_max.unwrap_or_default())
    );
    println!("  fault phases: {:?}", tally.fault_phases);
    print_counters(outcome, log, sim, log_bytes);
}

/// The simulator's, the exporter's and the log's counts.
fn print_counters(outcome: &Outcome, log: &LogTally, sim: &RunningSimulator, log_bytes: u64) {
    let stats = sim.stats();
    println!(
        "  simulator: {} token requests, {} profile requests, {} discovery requests",
        stats.token_requests.load(Ordering::Relaxed),
        stats.profile_requests.load(Ordering::Relaxed),
        stats.discovery_requests.load(Ordering::Relaxed),
    );
    let show = |name: &str| {
        final_value(outcome.final_metrics.as_deref(), name)
            .map_or("-".to_owned(), |v| format!("{v:.0}"))
    };
    println!(
        "  exporter's own counters at the end: avepoint_api_requests_total {}, retries {}, backoffs {}, backoff-skipped {}, token refreshes {}, process_open_fds {}",
        show("avepoint_api_requests_total"),
        show("avepoint_api_retries_total"),
        show("avepoint_api_backoffs_total"),
        show("avepoint_api_backoff_skipped_requests_total"),
        show("avepoint_api_token_refreshes_total"),
        show("process_open_fds"),
    );
    println!(
        "  exporter log: {} lines by level {:?} ({} of them a profile skipped during a back-off), {}; panics {}",
        log.by_level.values().sum::<u64>(),
        log.by_level,
        log.backoff_lines,
        mib(log_bytes as f64),
        log.panics
    );
    if let Some(panic) = &log.first_panic {
        println!("    first panic: {panic}");
    }
    for error in &outcome.tally.first_errors {
        println!("  error: {error}");
    }
}

/// Prints the targets table; returns the names of the targets missed.
pub(super) fn targets(
    options: &Options,
    outcome: &Outcome,
    log: &LogTally,
    termination: &Result<std::process::ExitStatus, String>,
) -> Vec<String> {
    let w = Windows::of(options, outcome);
    let mut missed = Vec::new();
    let mut verdict = |name: String, figure: String, ok: bool| {
        println!(
            "| {name} | {figure} | {} |",
            if ok { "met" } else { "**MISSED**" }
        );
        if !ok {
            missed.push(name);
        }
    };
    println!(
        "\n== targets (warm-up window {:.0}-{:.0} s, after {} scrapes; end window {:.0}-{:.0} s; each one fault cycle)",
        w.warm_from, w.warm_to, w.scrapes_at_warm, w.end_from, w.total
    );
    println!("| target | figure | verdict |");
    println!("|---|---|---|");
    let crash = crash(outcome, termination);
    verdict(
        "the exporter never crashed; clean exit on SIGTERM".into(),
        match (&crash, log.panics) {
            (None, 0) => "alive throughout, exit 0, no panic logged".into(),
            (crash, panics) => format!(
                "{}; {panics} panics logged",
                crash.clone().unwrap_or_default()
            ),
        },
        crash.is_none() && log.panics == 0,
    );
    for (name, figure, ok) in answers(options, &outcome.tally) {
        verdict(name, figure, ok);
    }
    for (name, figure, ok) in growth(&w) {
        verdict(name, figure, ok);
    }
    missed
}

/// Why the exporter is not alive and cleanly stopped, if it is not.
fn crash(
    outcome: &Outcome,
    termination: &Result<std::process::ExitStatus, String>,
) -> Option<String> {
    match (&outcome.crashed_during_load, termination) {
        (Some(status), _) => Some(format!("exited during the load: {status}")),
        (None, Err(error)) => Some(format!("at SIGTERM: {error}")),
        (None, Ok(status)) if !status.success() => {
            Some(format!("exit status after SIGTERM: {status}"))
        }
        _ => None,
    }
}

/// The targets on what the exporter answered: (name, figure, met).
fn answers(options: &Options, tally: &Tally) -> [(String, String, bool); 2] {
    let metrics_total = tally.metrics_ok + tally.metrics_errors;
    [
        (
            format!(
                "every /metrics a 200 within {} s",
                options.scrape_timeout.as_secs_f64()
            ),
            format!(
                "{} of {metrics_total} (errors {}, late {})",
                tally.metrics_ok, tally.metrics_errors, tally.metrics_late
            ),
            tally.metrics_errors == 0 && tally.metrics_late == 0 && metrics_total > 0,
        ),
        (
            "/probe, /sd and /-/reload answer (no 5xx, no transport error)".into(),
            format!(
                "probes {:?}, {} errors; /sd {} ok, {} errors; reloads {} ok, {} failed",
                tally.probe_status,
                tally.probe_errors,
                tally.sd_ok,
                tally.sd_errors,
                tally.reloads_ok,
                tally.reloads_failed
            ),
            tally.probe_errors == 0
                && tally.probe_status.keys().all(|s| *s < 500)
                && tally.sd_errors == 0
                && tally.reloads_failed == 0,
        ),
    ]
}

/// The targets on growth from the warm-up window to the end window.
fn growth(w: &Windows) -> [(String, String, bool); 4] {
    let rise = |g: &Growth<i64>| format!("max {} -> {} ({:+})", g.warm, g.end, g.end - g.warm);
    [
        (
            format!(
                "RSS at the end within {:.0} % of after warm-up",
                RSS_GROWTH_LIMIT * 100.0
            ),
            format!(
                "{} -> {} ({:+.1} %), mean of the windows; peak {}",
                mib(w.rss.warm),
                mib(w.rss.end),
                100.0 * (w.rss.end / w.rss.warm.max(1.0) - 1.0),
                mib(w.peak_rss as f64)
            ),
            w.rss.end <= w.rss.warm * (1.0 + RSS_GROWTH_LIMIT),
        ),
        (
            format!("open fds (/proc/PID/fd) grow by at most {FD_GROWTH_LIMIT}"),
            rise(&w.fds),
            w.fds.end - w.fds.warm <= FD_GROWTH_LIMIT,
        ),
        (
            format!("exporter's process_open_fds grows by at most {FD_GROWTH_LIMIT}"),
            rise(&w.fds_metric),
            w.fds_metric.end - w.fds_metric.warm <= FD_GROWTH_LIMIT,
        ),
        (
            format!("threads grow by at most {THREAD_GROWTH_LIMIT}"),
            rise(&w.threads),
            w.threads.end - w.threads.warm <= THREAD_GROWTH_LIMIT,
        ),
    ]
}

/// The closing lines: every target met, or a loud list of those missed.
pub(super) fn verdict(outcome: &Outcome, missed: &[String], log_path: &std::path::Path) -> bool {
    if let Some(end) = &outcome.end_sample {
        println!(
            "\n(at the end of the load: RSS {}, {} fds, {} threads)",
            mib(end.rss as f64),
            end.fds,
            end.threads
        );
    }
    if missed.is_empty() {
        println!("\nsoak: every target met");
        return false;
    }
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("SOAK FAILED: {} target(s) missed:", missed.len());
    for name in missed {
        eprintln!("  - {name}");
    }
    eprintln!("exporter log: {}", log_path.display());
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    true
}
