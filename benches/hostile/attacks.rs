//! The client-side attacks of issue #20, one at a time (`--attack NAME`),
//! each from 127.0.0.2: another client address on the loopback (Linux
//! routes all of 127/8 there), as an attacker is another host than the
//! Prometheus it competes with.
//!
//! * `unread`: connections that send `GET /metrics` (gzip accepted, valid
//!   credentials) and never read a byte; each holds its connection until the
//!   exporter closes it (or 40 s), then asks again;
//! * `unread-h2` (with `--tls`): HTTP/2 connections with a zero receive
//!   window, as many streams each as the exporter allows, never read;
//! * `keepalive`: more kept-alive connections than the cap, each asking
//!   `/-/healthy` every 2 s, reconnecting at once when closed;
//! * `passwords`: wrong passwords under the scraper's name and under
//!   made-up names, as fast as they are answered.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{PASSWORD, Tally, USER};

/// Where the attackers come from (the first of `--attack-addresses`).
pub const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// How many addresses from [`ATTACKER`] on the raw-socket attacks use
/// (`--attack-addresses`): more than the places per address allow fills
/// the bound on responses in all, to measure what a full bound costs.
pub static ADDRESSES: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// A TCP connection to `addr` from one of the attack's addresses, in turn.
async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let count = ADDRESSES.load(Ordering::Relaxed).max(1);
    let turn = NEXT.fetch_add(1, Ordering::Relaxed) % count;
    let socket = tokio::net::TcpSocket::new_v4()?;
    let source = Ipv4Addr::new(127, 0, 0, 2 + turn);
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(addr).await
}

fn credentials(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// `count` connections asking `/metrics` and never reading.
pub async fn unread(addr: SocketAddr, count: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: exporter\r\nAuthorization: Basic {}\r\n\
         Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
        credentials(USER, PASSWORD)
    );
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (request, stop, tally) = (request.clone(), Arc::clone(&stop), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                if stream.write_all(request.as_bytes()).await.is_err() {
                    continue;
                }
                // The status line without taking it: peeked bytes stay in the
                // socket buffer, which stays full.
                let mut status = [0u8; 12];
                let peeked =
                    tokio::time::timeout(Duration::from_secs(20), stream.peek(&mut status)).await;
                let key = match peeked {
                    Ok(Ok(12)) => format!("unread {}", String::from_utf8_lossy(&status[9..12])),
                    Ok(_) => "unread connection closed".to_owned(),
                    Err(_) => "unread no answer in 20 s".to_owned(),
                };
                tally.count(&key);
                // Held until the exporter gives up on it; then ask again.
                held_until_closed(&stream, Duration::from_secs(40), &stop).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Wait (without reading) until the peer resets `stream`, `limit` passes
/// or `stop`. A FIN queued behind unread data cannot be seen without
/// reading; the exporter's write timeout (30 s) has freed its side by the
/// time `limit` (40 s) passes.
async fn held_until_closed(stream: &TcpStream, limit: Duration, stop: &AtomicBool) {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
        if matches!(stream.take_error(), Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What each attacking task holds: its client, the exporter's base URL,
/// the stop flag and the tally.
#[derive(Clone)]
struct Attacker {
    http: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl Attacker {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// `connections` HTTP/2 connections over TLS with a zero window, each
/// asking `/metrics` on `streams` streams at once and never reading.
pub async fn unread_h2(
    base: String,
    ca: reqwest::Certificate,
    connections: usize,
    streams: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let http = reqwest::Client::builder()
            .add_root_certificate(ca.clone())
            .http2_prior_knowledge()
            .http2_initial_stream_window_size(Some(0))
            .http2_initial_connection_window_size(Some(65_535))
            .http2_adaptive_window(false)
            .local_address(ATTACKER)
            .build()
            .expect("h2 client");
        let attacker = Attacker {
            http,
            base: base.clone(),
            stop: Arc::clone(&stop),
            tally: Arc::clone(&tally),
        };
        for _ in 0..streams {
            let Attacker {
                http,
                base,
                stop,
                tally,
            } = attacker.clone();
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = http
                        .get(format!("{base}/metrics"))
                        .basic_auth(USER, Some(PASSWORD))
                        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
                        .send();
                    match tokio::time::timeout(Duration::from_secs(30), sent).await {
                        Ok(Ok(response)) => {
                            tally.count(&format!("unread h2 {}", response.status().as_u16()));
                            // Held, unread, for 40 s (or until the end).
                            let _held = response;
                            let until = tokio::time::Instant::now() + Duration::from_secs(40);
                            while tokio::time::Instant::now() < until
                                && !stop.load(Ordering::Relaxed)
                            {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                        Ok(Err(_)) => {
                            tally.count("unread h2 error");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(_) => tally.count("unread h2 no stream in 30 s"),
                    }
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// `count` kept-alive connections, each asking `/-/healthy` every 2 s and
/// reconnecting at once when the exporter closes it.
pub async fn keepalive(addr: SocketAddr, count: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut stream) = connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let mut buffer = [0u8; 1024];
                while !stop.load(Ordering::Relaxed) {
                    let asked = stream
                        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: exporter\r\n\r\n")
                        .await;
                    let answered = tokio::time::timeout(Duration::from_secs(10), async {
                        let mut seen = Vec::new();
                        while !seen.ends_with(b"Healthy\n") {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return false,
                                Ok(read) => seen.extend_from_slice(&buffer[..read]),
                            }
                        }
                        true
                    })
                    .await;
                    if asked.is_err() || !matches!(answered, Ok(true)) {
                        tally.count("keep-alive closed by the exporter");
                        break;
                    }
                    tally.count("keep-alive 200");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// `count` clients sending wrong credentials back to back: every other one
/// under the scraper's name, the rest under a new made-up name each.
pub async fn passwords(base: String, count: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::builder()
        .local_address(ATTACKER)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let attacker = Attacker {
        http,
        base,
        stop,
        tally,
    };
    let mut tasks = Vec::new();
    for task in 0..count {
        let attacker = attacker.clone();
        tasks.push(tokio::spawn(async move {
            let Attacker {
                http, base, tally, ..
            } = &attacker;
            let mut turn = 0u64;
            while !attacker.stopped() {
                turn += 1;
                let user = if task % 2 == 0 {
                    USER.to_owned()
                } else {
                    format!("nobody-{task}-{turn}")
                };
                let kind = if task % 2 == 0 { "known" } else { "made-up" };
                let sent = http
                    .get(format!("{base}/metrics"))
                    .basic_auth(user, Some(format!("guess-{turn}")))
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        tally.count(&format!("wrong password, {kind} name {status}"));
                        if status == 429 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Err(_) => tally.count(&format!("wrong password, {kind} name error")),
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
