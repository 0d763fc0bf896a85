//! Slowloris and connection exhaustion against the real binary (issue #10):
//! under an open-files limit of 128, hundreds of connections that never
//! complete a request must neither starve a real scrape nor be held
//! forever, and the accept loop must not flood the log.
//!
//! Every connection goes to 127.0.0.1; counts and waits are bounded.

use crate::common::tls;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The open-files limit the binary runs under (soft and hard).
const OPEN_FILES_LIMIT: u32 = 128;
/// The server's header-read timeout, as documented in docs/web-config.md.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack on top of it for a loaded two-core CI machine.
const SLACK: Duration = Duration::from_secs(5);
/// When the last of a flood of 200 slowloris connections is closed: the
/// cap (64 under this limit) takes a new one only for one that has waited
/// `SHED_GRACE`, so the last 8 are accepted after three graces, then meet
/// the header timeout.
const FLOOD_CLOSED: Duration = HEADER_TIMEOUT
    .saturating_add(SLACK)
    .saturating_add(avepoint_exporter::serve::SHED_GRACE.saturating_mul(3));
/// The scrape's deadline, sent as Prometheus does.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// `avepoint-exporter demo` on 127.0.0.1:0 under `ulimit -n 128`, its
/// stderr collected; killed on drop.
struct Demo {
    child: Child,
    /// `http://…` or `https://…`, from the `demo listening` log line.
    base: String,
    log: Arc<Mutex<String>>,
}

impl Demo {
    fn start(extra: &[&str]) -> Demo {
        let mut child = Command::new("bash")
            .args([
                "-c",
                &format!("ulimit -n {OPEN_FILES_LIMIT}; exec \"$0\" \"$@\""),
            ])
            .arg(env!("CARGO_BIN_EXE_avepoint-exporter"))
            .args(["demo", "--web.listen-address", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let (base_tx, base_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("message=\"demo listening\"")
                    && let Some(base) = line
                        .split_whitespace()
                        .find_map(|field| field.strip_prefix("address="))
                {
                    let _ = base_tx.send(base.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = base_rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("demo did not listen:\n{}", log.lock().unwrap()));
        Demo { child, base, log }
    }

    fn address(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Error lines about failing to accept connections (EMFILE and the like).
    fn accept_error_lines(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains("level=error"))
            .filter(|line| line.to_ascii_lowercase().contains("accept"))
            .count()
    }

    /// CPU time the process has used so far.
    fn cpu_time(&self) -> Duration {
        let stat = procfs::process::Process::new(self.child.id() as i32)
            .and_then(|process| process.stat())
            .expect("the process's /proc/<pid>/stat");
        Duration::from_secs_f64(
            (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64,
        )
    }

    /// SIGTERM; the process must exit cleanly within `within`.
    fn terminate(mut self, within: Duration) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit {status:?}\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {within:?} of SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Wait until `/-/ready` answers, each try on a fresh connection.
async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the demo never became ready");
}

/// A real scrape with Prometheus' deadline header, on a fresh connection;
/// the status, or why there was none.
async fn scrape(client: &reqwest::Client, base: &str) -> Result<u16, String> {
    let response = client
        .get(format!("{base}/metrics"))
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            SCRAPE_TIMEOUT.as_secs().to_string(),
        )
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status().as_u16();
    response
        .bytes()
        .await
        .map_err(|error| format!("{error:?}"))?;
    Ok(status)
}

/// Read until the server closes `stream` (EOF or a reset); how long after
/// `opened` that was, or `None` if it still held the connection at `limit`.
async fn closed_after<S>(mut stream: S, opened: Instant, limit: Duration) -> Option<Duration>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut buffer = [0u8; 1024];
    let wait = limit.saturating_sub(opened.elapsed());
    tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                // A 408 or the like before the close is fine.
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Assert that every hostile connection was closed by the server in time.
/// The demo over plain HTTP started with `args`, and a client that opens
/// a new connection per request, once the demo is ready.
async fn ready_plain_demo(args: &[&str]) -> (Demo, reqwest::Client) {
    let demo = Demo::start(args);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_ready(&client, &demo.base).await;
    (demo, client)
}

/// `count` connections to the demo that each send half a request line and
/// then nothing; each task says when the server closed it (see
/// [`closed_after`], with `limit`).
async fn half_requests(
    demo: &Demo,
    count: usize,
    limit: Duration,
) -> Vec<tokio::task::JoinHandle<Option<Duration>>> {
    let mut holders = Vec::new();
    for _ in 0..count {
        let opened = Instant::now();
        let mut stream = TcpStream::connect(demo.address()).await.unwrap();
        // Half a request line: the server can never answer it.
        let _ = stream.write_all(b"GET /metr").await;
        holders.push(tokio::spawn(closed_after(stream, opened, limit)));
    }
    holders
}

/// During a connection flood: a real scrape (`scrape_what` in the
/// message) still succeeds, every flooding connection (`holders`, called
/// `holders_what`) is closed by the server, and the accept loop logged no
/// more than 2 accept errors.
async fn assert_flood_survived(
    demo: &Demo,
    client: &reqwest::Client,
    holders: Vec<tokio::task::JoinHandle<Option<Duration>>>,
    scrape_what: &str,
    holders_what: &str,
) {
    let started = Instant::now();
    let scraped = scrape(client, &demo.base).await;
    assert_eq!(
        scraped,
        Ok(200),
        "{scrape_what}, after {:?}\n{}",
        started.elapsed(),
        demo.log()
    );
    assert_all_closed(holders, holders_what).await;
    let accept_errors = demo.accept_error_lines();
    assert!(
        accept_errors <= 2,
        "{accept_errors} accept error lines:\n{}",
        demo.log()
    );
}

async fn assert_all_closed(holders: Vec<tokio::task::JoinHandle<Option<Duration>>>, what: &str) {
    let total = holders.len();
    let mut still_open = 0;
    let mut slowest = Duration::ZERO;
    for holder in holders {
        match holder.await.unwrap() {
            Some(after) => slowest = slowest.max(after),
            None => still_open += 1,
        }
    }
    assert_eq!(
        still_open, 0,
        "{still_open} of {total} {what} were still open when they should have been closed"
    );
    eprintln!("all {total} {what} closed by the server, the last after {slowest:?}");
}

/// The reproduction over plain HTTP: 200 connections that send half
/// a request line and then nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_does_not_starve_a_scrape_under_an_open_files_limit() {
    let (demo, client) = ready_plain_demo(&["--log.level", "info"]).await;

    let holders = half_requests(&demo, 200, FLOOD_CLOSED).await;
    // Let the server take in (and run out of descriptors for, before the fix)
    // the whole flood before the scrape arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The accept loop logs no flood (before the fix: one line a second).
    assert_flood_survived(
        &demo,
        &client,
        holders,
        "a real scrape during the flood",
        "slowloris connections",
    )
    .await;

    // Graceful shutdown is not held up by connections waiting for a request.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(demo.address()).await.unwrap();
        let _ = stream.write_all(b"GET /metr").await;
        waiting.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    demo.terminate(Duration::from_secs(5));
}

/// A TLS client config trusting only the CA in `ca_file`.
fn tls_client_config(ca_file: &std::path::Path) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Over TLS: connections that complete the handshake and then send nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_do_not_starve_a_scrape_under_an_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let files = tls::write_tls_files(dir.path());
    let demo = Demo::start(&[
        "--log.level",
        "info",
        "--web.config.file",
        files.web_config.to_str().unwrap(),
    ]);
    assert!(demo.base.starts_with("https://"), "{}", demo.base);
    let ca = std::fs::read(&files.ca_file).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    wait_ready(&client, &demo.base).await;

    let connector = tokio_rustls::TlsConnector::from(tls_client_config(&files.ca_file));
    let mut holders = Vec::new();
    for _ in 0..150 {
        let opened = Instant::now();
        let stream = TcpStream::connect(demo.address()).await.unwrap();
        let connector = connector.clone();
        holders.push(tokio::spawn(async move {
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let limit = HEADER_TIMEOUT + SLACK;
            match tokio::time::timeout(limit, connector.connect(name, stream)).await {
                // Handshake done; now idle until the server gives up on us.
                Ok(Ok(tls)) => closed_after(tls, opened, limit).await,
                // The server closed it during the handshake (shed at the cap).
                Ok(Err(_)) => Some(opened.elapsed()),
                Err(_) => None,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert_flood_survived(
        &demo,
        &client,
        holders,
        "a real scrape over TLS during the flood",
        "idle TLS connections",
    )
    .await;
    demo.terminate(Duration::from_secs(5));
}

/// More connections allowed than descriptors exist (`--web.max-connections
/// 1000` under `ulimit -n 128`): accepting fails with "Too many open files"
/// and the loop must neither spin nor flood the log, and still let the
/// scrape in (it sheds a waiting connection to get a descriptor back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_survives_running_out_of_descriptors() {
    let (demo, client) =
        ready_plain_demo(&["--log.level", "info", "--web.max-connections", "1000"]).await;
    let holders = half_requests(&demo, 200, HEADER_TIMEOUT + SLACK).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let scraped = scrape(&client, &demo.base).await;
    assert_eq!(scraped, Ok(200), "{}", demo.log());

    // While the slowloris connections are held, the process idles: no
    // accept loop spinning on a readable listener.
    let before = demo.cpu_time();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = demo.cpu_time() - before;
    assert!(used < Duration::from_millis(800), "{used:?} of CPU in 2 s");

    assert_all_closed(holders, "slowloris connections").await;
    let log = demo.log();
    assert!(
        log.contains("Too many open files"),
        "EMFILE never happened:\n{log}"
    );
    // One line per 10 s at most: the first, maybe one more.
    let accept_errors = demo.accept_error_lines();
    assert!(
        (1..=2).contains(&accept_errors),
        "{accept_errors} accept error lines:\n{log}"
    );
    demo.terminate(Duration::from_secs(5));
}
