//! Issue #10, item 2: what AvePoint sees does not depend on how many
//! clients ask or which timeouts they send. Concurrent `/metrics` scrapes
//! share one round whatever their timeout headers, a caller whose own
//! deadline comes first gets what the round has so far, `/probe`s of the
//! same targets share rounds, rounds outlive callers that hang up, and no
//! more requests are in flight upstream than `avepoint.concurrency`.
//!
//! Everything runs on 127.0.0.1 against the simulator, whose
//! `profile_requests` and `max_api_in_flight` count what AvePoint would see
//! (with `finish_abandoned_requests`, including the requests the exporter
//! dropped but a real server would still be working on). Every client has
//! a timeout and every wait a limit, so a regression fails in seconds.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use avepoint_exporter::simulator::{
    DEMO_CLIENT_SECRET, Fault, FaultAt, RunningSimulator, SimStats, SimulatorConfig,
};
use common::{Exposition, Harness, Setup};
use tokio::io::AsyncWriteExt;

fn stats(harness: &Harness) -> &SimStats {
    harness.sim.stats()
}

fn profile_requests(harness: &Harness) -> u64 {
    stats(harness).profile_requests.load(Ordering::SeqCst)
}

/// `/metrics` with this scrape timeout header, answered within `client_timeout`
/// (`None` when it was not: the test then fails on its counts, not by hanging).
async fn scrape_with_header(
    addr: SocketAddr,
    timeout_header: &str,
    client_timeout: Duration,
) -> Option<Exposition> {
    let client = reqwest::Client::builder()
        .timeout(client_timeout)
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{addr}/metrics"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout_header)
        .send()
        .await
        .ok()?;
    assert_eq!(response.status(), 200);
    Some(Exposition::parse(&response.text().await.ok()?))
}

fn up(metrics: &Exposition) -> (usize, usize) {
    let samples = metrics.find("avepoint_scan_profile_up", &[]);
    let up = samples.iter().filter(|s| s.value == 1.0).count();
    (up, samples.len() - up)
}

/// A client that sends `GET path` and hangs up after `after`, whatever the
/// state of the answer: the socket is closed, as when a curl is interrupted
/// or Prometheus gives up, and the exporter's server drops the handler.
async fn hang_up_after(addr: SocketAddr, path: String, after: Duration) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    drop(stream);
}

/// Wait until the simulator has no API request in flight and has seen at
/// least `calls` profile requests, for at most `limit`.
async fn settle(stats: &SimStats, calls: u64, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if stats.api_in_flight.load(Ordering::SeqCst) == 0
            && stats.profile_requests.load(Ordering::SeqCst) >= calls
        {
            // A little longer: a request sent late would show up now.
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stats.api_in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (a) 20 scrapes with timeout headers 10, 12, ..., 48 s, sent in that
/// order 20 ms apart, and a real 10 s Prometheus scrape after them: one
/// round, one call per profile, and every profile up for everyone.
/// (Increasing headers are the worst case for a rule that lets a scrape
/// join only a round whose deadline is close to its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_timeout_headers_share_one_round_with_a_real_scrape() {
    // 20 profiles, 8 at a time, 800 ms each: the round takes about 2.4 s.
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 4,
            profiles_per_customer: 5,
            latency: Duration::from_millis(800),
            ..SimulatorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let profiles = harness.sim.profile_ids().len();
    assert_eq!(profiles, 20);
    let addr = harness.addr;
    let client_timeout = Duration::from_secs(15);
    let mut burst = Vec::new();
    for i in 0..20 {
        let header = (10 + 2 * i).to_string();
        burst.push(tokio::spawn(async move {
            scrape_with_header(addr, &header, client_timeout).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let real = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        scrape_with_header(addr, "10", client_timeout).await
    });
    let real = real.await.unwrap();
    let mut burst_up = Vec::new();
    for scrape in burst {
        burst_up.push(scrape.await.unwrap().map(|metrics| up(&metrics)));
    }

    assert_eq!(profile_requests(&harness), profiles as u64);
    let real = real.expect("the 10 s scrape answered within 15 s");
    assert_eq!(up(&real), (20, 0));
    for (i, outcome) in burst_up.iter().enumerate() {
        assert_eq!(*outcome, Some((20, 0)), "scrape with header {}", 10 + 2 * i);
    }
    // Nothing else was sent after the round.
    settle(stats(&harness), profiles as u64, Duration::from_secs(3)).await;
    assert_eq!(profile_requests(&harness), profiles as u64);
}

/// 9 profiles, 4 at a time, 1 s each: batches end at about 1 s, 2 s and
/// 3 s, so a caller with a 1.5 s budget sees exactly the first 4.
fn three_batches() -> Setup {
    Setup {
        sim: SimulatorConfig {
            latency: Duration::from_secs(1),
            ..SimulatorConfig::default()
        },
        avepoint_extra: "  concurrency: 4\n".into(),
        ..Setup::default()
    }
}

/// (b) A short caller joining a long one's round gets the profiles already
/// fetched and `deadline` for the rest, not all-down; the long caller gets
/// every profile; AvePoint sees one call per profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_caller_joining_gets_what_the_round_has_so_far() {
    let harness = Harness::start(three_batches()).await;
    let addr = harness.addr;
    let long =
        tokio::spawn(async move { scrape_with_header(addr, "10", Duration::from_secs(15)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let short = harness
        .state
        .rounds()
        .collect(Duration::from_millis(1500))
        .await;

    // The first batch, in target order; nothing of the second yet.
    let fetched: Vec<usize> = (0..9)
        .filter(|i| short.profiles[*i].outcome.is_ok())
        .collect();
    assert_eq!(fetched, [0, 1, 2, 3]);
    for result in short.profiles.iter().filter(|p| p.outcome.is_err()) {
        let error = result.outcome.as_ref().unwrap_err();
        assert_eq!(error.kind, "deadline");
        assert_eq!(
            error.message,
            "not fetched yet when this caller's deadline passed; the round goes on for the others"
        );
    }
    let long = long.await.unwrap().expect("the long scrape answered");
    assert_eq!(up(&long), (9, 0));
    assert_eq!(profile_requests(&harness), 9);
}

/// (b) The other way round: a short caller starts the round and leaves
/// with what it has; a long caller joining later gets every profile from
/// the same round, not a round cut short at the short caller's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_caller_first_does_not_cut_the_round_short() {
    let harness = Harness::start(three_batches()).await;
    let addr = harness.addr;
    let short =
        tokio::spawn(async move { scrape_with_header(addr, "2", Duration::from_secs(15)).await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let long = scrape_with_header(addr, "10", Duration::from_secs(15))
        .await
        .expect("the long scrape answered");
    let short = short.await.unwrap().expect("the short scrape answered");
    assert_eq!(up(&short), (4, 5));
    assert_eq!(up(&long), (9, 0));
    assert_eq!(profile_requests(&harness), 9);
}

/// (c) 50 probes of one customer whose clients hang up after 300 ms cost
/// one round, which stops starting fetches once nobody waits (issue #19):
/// the 2 calls already under way (probes share half of `concurrency` 4)
/// end, the third is never sent. A probe afterwards starts a new round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_hung_up_probes_of_one_customer_cost_one_round() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            latency: Duration::from_secs(1),
            ..SimulatorConfig::default()
        },
        avepoint_extra: "  concurrency: 4\n".into(),
        ..Setup::default()
    })
    .await;
    let customer = harness.sim.customers()[0].id.clone();
    let path = format!("/probe?customer_id={customer}");
    let probes: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(hang_up_after(
                harness.addr,
                path.clone(),
                Duration::from_millis(300),
            ))
        })
        .collect();
    for probe in probes {
        probe.await.unwrap();
    }
    settle(stats(&harness), 2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(profile_requests(&harness), 2);
    assert_eq!(stats(&harness).max_api_in_flight.load(Ordering::SeqCst), 2);

    let response = harness.get(&path, &[]).await;
    let probe = Exposition::parse(&response.body);
    assert_eq!(probe.value("avepoint_probe_success", &[]), 1.0);
    assert_eq!(up(&probe), (3, 0));
    assert_eq!(profile_requests(&harness), 5);
}

/// (c) 50 probes of 50 customers, one every 40 ms, each hanging up after
/// 100 ms while AvePoint takes 500 ms and, like a real server, finishes a
/// request whose client went away: AvePoint never has more than the
/// probes' share of `concurrency` (half of 4) in flight, and the rounds
/// whose callers left before their turn send nothing (issue #19).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_up_probes_never_exceed_the_concurrency_upstream() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 50,
            profiles_per_customer: 1,
            latency: Duration::from_millis(500),
            finish_abandoned_requests: true,
            ..SimulatorConfig::default()
        },
        avepoint_extra: "  concurrency: 4\n".into(),
        ..Setup::default()
    })
    .await;
    let customers: Vec<String> = harness.customer_ids();
    let mut probes = Vec::new();
    for customer in customers {
        probes.push(tokio::spawn(hang_up_after(
            harness.addr,
            format!("/probe?customer_id={customer}"),
            Duration::from_millis(100),
        )));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    for probe in probes {
        probe.await.unwrap();
    }
    // 50 calls, 4 at a time, 500 ms each: about 6.3 s after the first,
    // within every round's 9.5 s.
    settle(stats(&harness), 1, Duration::from_secs(10)).await;
    assert_eq!(stats(&harness).max_api_in_flight.load(Ordering::SeqCst), 2);
    // 2 at a time, 500 ms each, over the 2.1 s the probes keep coming.
    let sent = profile_requests(&harness);
    assert!(
        (2..=12).contains(&sent),
        "{sent} requests for abandoned probes"
    );
    assert_eq!(stats(&harness).api_in_flight.load(Ordering::SeqCst), 0);
}

/// `avepoint.round_timeout`, not the caller's header, bounds a round: with
/// a hanging profile and a 1 s round, a scrape asking for 30 s answers
/// after about 1 s with the hanging profile down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_timeout_bounds_the_round_whatever_the_header() {
    let harness = Harness::start(Setup {
        avepoint_extra: "  round_timeout: 1s\n".into(),
        ..Setup::default()
    })
    .await;
    let (_, hung) = harness.sim.profile_ids()[0].clone();
    harness.sim.set_fault(FaultAt::Report(&hung), Fault::Hang);
    let started = Instant::now();
    let metrics = scrape_with_header(harness.addr, "30", Duration::from_secs(10))
        .await
        .expect("answered");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
    assert_eq!(up(&metrics), (8, 1));
    assert_eq!(
        metrics.value("avepoint_scan_profile_up", &[("profile_id", hung.as_str())]),
        0.0
    );
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    let error = snapshot.profiles[0].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, "deadline");
    assert_eq!(
        error.message,
        "no answer within avepoint.round_timeout (1s)"
    );
}

/// `check` runs one round of its own with the long budget it always had
/// (three request timeouts), not `avepoint.round_timeout`: with a 1 s
/// round and AvePoint taking 1.5 s, every profile is still fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_not_bound_by_round_timeout() {
    let sim = RunningSimulator::start(
        SimulatorConfig {
            latency: Duration::from_millis(1500),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let targets = sim.profile_ids()[..2].to_vec();
    let config = sim.exporter_config(Some(&targets)).replacen(
        "targets:",
        "  round_timeout: 1s\ntargets:",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("avepoint.yml");
    std::fs::write(&path, config).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"))
        .args(["check", "--config.file", path.to_str().unwrap()])
        .env_remove("AVEPOINT_CLIENT_ID")
        .env("AVEPOINT_CLIENT_SECRET", DEMO_CLIENT_SECRET)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .expect("check ends within 20 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.ends_with("\n2 profiles: 2 ok, 0 failed\n"),
        "{stdout}"
    );
}

/// A flood of probes over distinct target sets (each profile, each
/// customer), whose clients hang up at once, does not starve `/metrics`:
/// probes hold at most half of `concurrency`, and their rounds stop once
/// nobody waits (issue #19; before, 4-8 of 20 were up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_flood_does_not_starve_metrics() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 2,
            profiles_per_customer: 10,
            latency: Duration::from_millis(400),
            finish_abandoned_requests: true,
            ..SimulatorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let mut paths: Vec<String> = harness
        .sim
        .profile_ids()
        .into_iter()
        .map(|(customer, profile)| format!("/probe?customer_id={customer}&profile_id={profile}"))
        .collect();
    paths.extend(
        harness
            .sim
            .customers()
            .iter()
            .map(|c| format!("/probe?customer_id={}", c.id)),
    );
    let addr = harness.addr;
    let flood = tokio::spawn(async move {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            let wave: Vec<_> = paths
                .iter()
                .map(|path| {
                    tokio::spawn(hang_up_after(addr, path.clone(), Duration::from_millis(20)))
                })
                .collect();
            for probe in wave {
                probe.await.unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let metrics = scrape_with_header(addr, "2.5", Duration::from_secs(5))
            .await
            .expect("/metrics answers");
        let (up, down) = up(&metrics);
        assert!(up >= 18, "{up} up, {down} down under a probe flood");
    }
    flood.await.unwrap();
}

/// Issue #20: a caller whose budget ends before the round gets pointers to
/// the results fetched so far, not copies (2,000 impatient callers each
/// copied every finished report: +1.9 GiB in 6 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impatient_caller_shares_the_results_so_far_with_the_round() {
    let harness = Harness::start(three_batches()).await;
    let rounds = harness.state.rounds();
    let whole = {
        let rounds = std::sync::Arc::clone(&rounds);
        tokio::spawn(async move { rounds.collect(Duration::from_secs(15)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let early = rounds.collect(Duration::from_millis(1500)).await;
    let whole = whole.await.unwrap();
    let shared: Vec<usize> = (0..9)
        .filter(|i| std::sync::Arc::ptr_eq(&early.profiles[*i], &whole.profiles[*i]))
        .collect();
    assert_eq!(
        shared,
        [0, 1, 2, 3],
        "the first batch is the same allocation"
    );
}

/// One round, eight concurrent callers: the round's exposition is encoded
/// (and gzipped) once, and every caller gets the same bytes of it. Only
/// the head (process and API metrics, different per request) is each
/// caller's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_one_round_share_one_encoding() {
    use std::io::Read;
    // 20 profiles, 8 at a time, 500 ms each: the round takes about 1.5 s,
    // long enough for all eight requests to join it.
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 4,
            profiles_per_customer: 5,
            latency: Duration::from_millis(500),
            ..SimulatorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    for (encoding, plain) in [("gzip", false), ("identity", true)] {
        let before = harness.state.scrape_bodies.encodings();
        let addr = harness.addr;
        let burst: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(async move {
                    let response = reqwest::Client::new()
                        .get(format!("http://{addr}/metrics"))
                        .header("Accept-Encoding", encoding)
                        .header("Accept", "application/openmetrics-text;version=1.0.0")
                        .timeout(Duration::from_secs(15))
                        .send()
                        .await
                        .expect("exporter answers");
                    assert_eq!(response.status().as_u16(), 200);
                    let content_encoding = response
                        .headers()
                        .get("content-encoding")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let bytes = response.bytes().await.unwrap().to_vec();
                    if plain {
                        assert_eq!(content_encoding, None);
                        return String::from_utf8(bytes).unwrap();
                    }
                    assert_eq!(content_encoding.as_deref(), Some("gzip"));
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(bytes.as_slice())
                        .read_to_string(&mut text)
                        .expect("one valid gzip stream");
                    text
                })
            })
            .collect();
        let mut bodies = Vec::new();
        for caller in burst {
            let text = caller.await.unwrap();
            let start = text
                .find("# HELP avepoint_scan_profile_up ")
                .expect("the per-profile families");
            assert!(text.ends_with("# EOF\n"), "{encoding}");
            assert_eq!(Exposition::parse(&text).up_count(), 20);
            bodies.push(text[start..].to_owned());
        }
        assert_eq!(
            harness.state.scrape_bodies.encodings() - before,
            1,
            "{encoding}: one encoding for the round"
        );
        assert!(bodies.iter().all(|body| *body == bodies[0]), "{encoding}");
    }
}
