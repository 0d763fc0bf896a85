//! Clients that ask and do not read, and the connection cap under them
//! (issue #20): a response being written is never shed, one nobody reads
//! is closed at the write timeout, responses in progress are bounded (503
//! beyond), a connection accepted a moment ago keeps its place, and the
//! plain port speaks HTTP/1.1 only.
//!
//! The server is `serve::serve_with_options` in this process with a small
//! router (a large streamed body, a page under `/-/`), on 127.0.0.1; every
//! wait is bounded.

use std::time::{Duration, Instant};

use avepoint_exporter::serve::{self, ResponseLimits, ServeOptions};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The streamed body: 128 chunks of 64 KiB, far more than the socket
/// buffers and hyper's hold, so a client that does not read stalls it.
const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 128;
const BIG: usize = CHUNK * CHUNKS;

/// Requests the `/big` handler has run for.
static HANDLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn router() -> Router {
    Router::new()
        .route(
            "/counted",
            get(|| async {
                HANDLED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let chunks = (0..CHUNKS).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK]));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/big",
            get(|| async {
                let chunks = (0..CHUNKS).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK]));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route("/-/healthy", get(|| async { "Healthy\n" }))
}

/// The server on 127.0.0.1:0 with `options`; its address.
async fn start(options: ServeOptions) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve::serve_with_options(
        listener,
        router(),
        std::future::pending(),
        None,
        options,
    ));
    address
}

/// A connection that has sent `GET path` (HTTP/1.1, keep-alive).
async fn ask(address: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// Everything the server sends on `stream` until it closes it or `limit`
/// passes; the bytes and whether it was closed.
async fn read_all(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; CHUNK];
    let until = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buffer)).await {
            Err(_) => return (received, false),
            Ok(Ok(0) | Err(_)) => return (received, true),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Read one response of `/big` (headers and a chunked body of [`BIG`]
/// bytes); the body's length (the chunk framing taken out roughly: the
/// payload bytes are all `x`).
async fn read_big(stream: &mut TcpStream, limit: Duration) -> usize {
    let mut payload = 0;
    let mut buffer = vec![0u8; CHUNK];
    let until = tokio::time::Instant::now() + limit;
    while payload < BIG {
        match tokio::time::timeout_at(until, stream.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => {
                payload += buffer[..read].iter().filter(|b| **b == b'x').count();
            }
            _ => break,
        }
    }
    payload
}

fn options(max_connections: usize) -> ServeOptions {
    ServeOptions {
        max_connections,
        response_limits: None,
        ..ServeOptions::default()
    }
}

/// Before: a response handed to hyper counted as idle, and the cap shed
/// its connection mid-body (a 7.8 MB scrape cut at 4.1 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_still_being_written_is_never_shed_at_the_cap() {
    let address = start(options(2)).await;
    let mut slow = ask(&address, "/big").await;
    // The body stalls in the buffers while the cap fills and more come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut holder = TcpStream::connect(&address).await.unwrap();
    let newcomer = tokio::spawn({
        let address = address.clone();
        async move { TcpStream::connect(&address).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let payload = read_big(&mut slow, Duration::from_secs(20)).await;
    assert_eq!(payload, BIG, "the whole body, not cut by the cap");
    // The idle holder was the one shed once it had waited the grace.
    let (_, closed) = read_all(&mut holder, Duration::from_secs(5)).await;
    assert!(closed, "the idle connection was shed for the newcomer");
    let mut newcomer = newcomer.await.unwrap();
    newcomer
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), newcomer.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
}

/// Before: shed the moment the cap was reached, with its request still
/// unread (5 of 8 real scrapes reset under a keep-alive flood).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_accepted_a_moment_ago_keeps_its_place() {
    let address = start(options(2)).await;
    let mut fresh = TcpStream::connect(&address).await.unwrap();
    let _other = TcpStream::connect(&address).await.unwrap();
    // The cap is full of connections younger than the grace: the third
    // waits in the backlog instead of pushing out the first.
    let _third = TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fresh
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), fresh.read(&mut answer))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 200 OK"),
        "answered, not shed: {:?}",
        String::from_utf8_lossy(&answer[..read])
    );
}

/// Before: an unread response held its connection for the 60 s idle
/// timeout, and was closed only if nothing else came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_nobody_reads_is_cut_at_the_write_timeout() {
    let address = start(ServeOptions {
        write_timeout: Duration::from_secs(1),
        ..options(16)
    })
    .await;
    let mut unread = ask(&address, "/big").await;
    let asked = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (received, closed) = read_all(&mut unread, Duration::from_secs(10)).await;
    assert!(closed, "closed by the server");
    assert!(
        received.len() < BIG,
        "cut short: {} of {BIG} bytes",
        received.len()
    );
    assert!(asked.elapsed() < Duration::from_secs(10));
}

/// Before: no bound at all; 1,000 unread scrapes held +505 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_in_progress_are_bounded_with_a_503_beyond() {
    let address = start(ServeOptions {
        response_limits: Some(ResponseLimits {
            total: 2,
            per_address: 2,
        }),
        ..ServeOptions::default()
    })
    .await;
    let unread = [ask(&address, "/big").await, ask(&address, "/big").await];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = ask(&address, "/big").await;
    let (answer, _) = read_all(&mut third, Duration::from_secs(2)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nToo many responses in progress; retry later\n"),
        "{answer}"
    );
    // The small pages under /-/ take no place.
    let mut health = ask(&address, "/-/healthy").await;
    let (answer, _) = read_all(&mut health, Duration::from_secs(1)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
    // The places come back when the responses' connections are gone.
    drop(unread);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = ask(&address, "/big").await;
    assert_eq!(read_big(&mut again, Duration::from_secs(20)).await, BIG);
}

/// Before: a request from a client whose share was full ran its handler
/// (for `/metrics`: auth, the round and the encoding) before its 503, so
/// 1,000 unread scrapes cost enough CPU to slow a real scrape past its
/// deadline (9.86 s of 9.5, BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_at_its_share_is_refused_before_its_handler_runs() {
    use std::sync::atomic::Ordering;
    let address = start(ServeOptions {
        response_limits: Some(ResponseLimits {
            total: 8,
            per_address: 2,
        }),
        ..ServeOptions::default()
    })
    .await;
    let _unread = [
        ask(&address, "/counted").await,
        ask(&address, "/counted").await,
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(HANDLED.load(Ordering::SeqCst), 2);
    for _ in 0..5 {
        let mut more = ask(&address, "/counted").await;
        let (answer, _) = read_all(&mut more, Duration::from_secs(2)).await;
        assert!(answer.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
    }
    assert_eq!(
        HANDLED.load(Ordering::SeqCst),
        2,
        "no handler ran for the 503s"
    );
}

/// Prometheus speaks HTTP/2 only over TLS; h2c on the plain port let one
/// connection hold 200 responses at once (+774 MiB with zero windows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_port_speaks_http1_only() {
    let address = start(options(16)).await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let error = h2c
        .get(format!("http://{address}/-/healthy"))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout(), "{error}");
    let http1 = reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = http1
        .get(format!("http://{address}/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
