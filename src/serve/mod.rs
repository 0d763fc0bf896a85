//! Serving: binding listeners, one accept loop for plain HTTP and TLS,
//! connection limits against slowloris and descriptor exhaustion, and
//! graceful shutdown on SIGINT/SIGTERM.
//!
//! Takes any axum `Router`, so the exporter and the simulator serve the
//! same way. Imports only `sync` and `web_config` (TLS settings, basic
//! auth) from the crate; never `web`, `state` or `app`.
//!
//! - `connections`: which connections are open, busy or waiting; the cap,
//!   the deadlines and which one to shed.
//! - `connection`: one connection's task: TLS, hyper, its deadline.
//! - `tracked`: the service marking each request until its body is
//!   written, and taking its place under the response bound.
//! - `responses`: the bound on responses in progress.
//! - `limits`: the cap from the open-files limit; accept back-off.
//! - `listen`: binding the listen addresses, or taking systemd's sockets.

mod closing;
mod connection;
mod connections;
mod limits;
mod listen;
mod responses;
mod tracked;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::web_config::WebConfigHandle;
pub use closing::SHED_GRACE;
use closing::Timeouts;
use connection::Connection;
use connections::Tracker;
use limits::AcceptErrors;
pub use listen::{ListenError, bind, bind_all, overlap, resolve_listen_address, systemd_listeners};
pub use responses::{MAX_RESPONSES, MAX_RESPONSES_PER_ADDRESS, ResponseLimits};

/// How a listener treats its connections. `Default` is what the exporter
/// runs with; docs/web-config.md ("Connection limits") explains the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// The most connections kept open at once (`--web.max-connections`);
    /// 0 derives it from the open-files limit: the soft `RLIMIT_NOFILE`
    /// minus a quarter of it (at least 64), between 8 and 1024.
    pub max_connections: usize,
    /// How long a connection may take, from its accept (TLS handshake
    /// included) or from its previous HTTP/1.1 response, to complete a
    /// request's headers.
    pub header_read_timeout: Duration,
    /// How long a connection may go without a new request after its last
    /// response was written: an idle HTTP/2 connection. (HTTP/1.1
    /// keep-alive connections meet the header timeout first: hyper restarts
    /// it once a response is written.)
    pub idle_timeout: Duration,
    /// How long a response may take from being handed to hyper to its last
    /// byte written; then its connection is closed (a client that asks and
    /// does not read).
    pub write_timeout: Duration,
    /// The bound on responses in progress (every path but `/-/...`), a 503
    /// beyond it; `None`: unbounded.
    pub response_limits: Option<ResponseLimits>,
}

/// Default [`ServeOptions::header_read_timeout`]: a scraper sends its
/// headers within milliseconds of connecting; 10 s leaves room for a slow
/// network and a TLS handshake.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`ServeOptions::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default [`ServeOptions::write_timeout`]: the largest scrape (about 4 MB
/// gzipped at 10,000 profiles) takes a second or two over a slow link.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 0,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            response_limits: Some(ResponseLimits::default()),
        }
    }
}

/// [`ServeOptions::default`] without the response bound: for the simulator
/// and the tests, whose clients (the exporter, a test firing many scrapes
/// at once) may rightly hold more responses from one address.
fn unbounded_responses() -> ServeOptions {
    ServeOptions {
        response_limits: None,
        ..ServeOptions::default()
    }
}

/// Serve `router` on `listener` until `shutdown` completes, then let
/// in-flight requests finish. Plain HTTP/1.1, with
/// [`ServeOptions::default`] but no bound on responses in progress.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_options(listener, router, shutdown, None, unbounded_responses()).await
}

/// Like [`serve`], under a `--web.config.file` when there is one: basic
/// authentication and response headers around `router`, and TLS (with the
/// certificates re-read when they change) when the file configures it.
pub async fn serve_with_web_config(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    web_config: Option<Arc<WebConfigHandle>>,
) -> std::io::Result<()> {
    serve_with_options(
        listener,
        router,
        shutdown,
        web_config,
        unbounded_responses(),
    )
    .await
}

/// Like [`serve_with_web_config`], with the connection limits of `options`.
pub async fn serve_with_options(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    web_config: Option<Arc<WebConfigHandle>>,
    options: ServeOptions,
) -> std::io::Result<()> {
    serve_listeners(vec![listener], router, shutdown, web_config, options).await
}

/// Like [`serve_with_options`], on every one of `listeners` (the addresses
/// of a repeated `--web.listen-address`, or systemd's sockets).
///
/// One accept loop for all listeners, plain and TLS: each connection is
/// tracked (see `connections.rs`) so that one waiting for a request is
/// closed at its deadline, the cap (one for the process, as the open-files
/// limit it guards is) sheds the connection that has waited longest, and
/// every connection gets a fresh look at the web config (certificate
/// rotation). On `shutdown` the listeners close, connections without a
/// request in progress close at once, and the others finish their requests.
/// Accept errors are handled here (backed off and logged), so this returns
/// `Ok` once shut down.
pub async fn serve_listeners(
    listeners: Vec<TcpListener>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    web_config: Option<Arc<WebConfigHandle>>,
    options: ServeOptions,
) -> std::io::Result<()> {
    let (router, tls) = match web_config {
        Some(handle) => (
            crate::web_config::protect(router, Arc::clone(&handle)),
            handle.tls_enabled().then_some(handle),
        ),
        None => (router, None),
    };
    let tracker = Tracker::new(
        connection_limit(options.max_connections),
        Timeouts {
            header_read: options.header_read_timeout,
            idle: options.idle_timeout,
            write: options.write_timeout,
        },
    );
    let responses = options.response_limits.map(responses::ResponseBound::new);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut errors = AcceptErrors::default();
    let mut next = 0;
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = accept(&listeners, &mut next, &tracker, &mut errors) => accepted,
        };
        let connection = Connection {
            registration: tracker.register(),
            router: router.clone(),
            tls: tls.clone(),
            header_read_timeout: options.header_read_timeout,
            watcher: graceful.watcher(),
            responses: responses.clone(),
        };
        tokio::spawn(connection.run(stream, peer));
    }
    drop(listeners);
    tracker.close_waiting();
    graceful.shutdown().await;
    Ok(())
}

/// The cap for `--web.max-connections` (0: derived), logged once.
fn connection_limit(configured: usize) -> usize {
    let open_files = limits::open_files_limit();
    let limit = limits::max_connections(configured, open_files);
    if configured > 0 && limits::exceeds_open_files_limit(configured, open_files) {
        tracing::warn!(
            max_connections = configured,
            open_files_limit = open_files,
            derived = limits::derived_max_connections(open_files),
            "--web.max-connections leaves too few open files for AvePoint and the config files; \
             accepting may fail with \"Too many open files\""
        );
    }
    tracing::debug!(
        max_connections = limit,
        open_files_limit = open_files,
        "connection limit"
    );
    limit
}

/// "Too many open files" (the process's limit) and "Too many open files in
/// system", the same numbers on Linux, the BSDs and macOS (std has no
/// `ErrorKind` for them; `libc` is not a dependency for two constants).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The next connection, once there is room for it under the cap.
///
/// Running out of descriptors (EMFILE, ENFILE) or memory leaves the
/// listener readable, so a retry at once would spin: pause (10 ms doubling
/// to 1 s) and log at most one line per 10 s with the count; out of
/// descriptors, also shed the connection that has waited longest, which
/// gives one back. An error about one connection (it was reset before we
/// took it) is not the listener's: the next accept goes ahead at once.
async fn accept(
    listeners: &[TcpListener],
    next: &mut usize,
    tracker: &Tracker,
    errors: &mut AcceptErrors,
) -> (tokio::net::TcpStream, SocketAddr) {
    use std::io::ErrorKind;
    loop {
        tracker.wait_for_room().await;
        match accept_any(listeners, next).await {
            Ok(accepted) => {
                if let Some(unlogged_failures) = errors.succeeded() {
                    tracing::info!(unlogged_failures, "accepting connections again");
                }
                return accepted;
            }
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ConnectionAborted
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionRefused
                ) =>
            {
                tracing::debug!(%error, "a connection was gone before it was accepted");
            }
            Err(error) => {
                // Out of descriptors: closing a connection gives one back.
                let shed = matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
                    && tracker.shed_oldest_waiting();
                let failure = errors.failed(std::time::Instant::now());
                if let Some(failures) = failure.log {
                    tracing::error!(
                        %error,
                        failures,
                        shed,
                        pause = ?failure.pause,
                        "accepting connections failed; backing off"
                    );
                }
                tokio::time::sleep(failure.pause).await;
            }
        }
    }
}

/// The next connection on any of `listeners`. They are asked in turn from
/// `next` (then moved past the one that answered), so that one flooded
/// listener cannot starve the others. With no listeners, never completes.
async fn accept_any(
    listeners: &[TcpListener],
    next: &mut usize,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        let count = listeners.len();
        for offset in 0..count {
            let index = (*next + offset) % count;
            if let Some(listener) = listeners.get(index)
                && let Poll::Ready(result) = listener.poll_accept(cx)
            {
                *next = (index + 1) % count;
                return Poll::Ready(result);
            }
        }
        Poll::Pending
    })
    .await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_addresses() {
        assert_eq!(
            resolve_listen_address(":10290").await.unwrap(),
            "[::]:10290".parse().unwrap()
        );
        assert_eq!(
            resolve_listen_address("127.0.0.1:0").await.unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(resolve_listen_address("no-port").await.is_err());
    }

    #[tokio::test]
    async fn a_bare_port_listens_on_ipv4_and_ipv6() {
        let listener = bind(":0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            for _ in 0..2 {
                let _ = listener.accept().await.unwrap();
            }
        });
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("IPv4 connects");
        // Where the host has no IPv6 loopback, bind fell back to IPv4 only.
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            tokio::net::TcpStream::connect(("::1", port))
                .await
                .expect("IPv6 connects");
        } else {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), accepting)
            .await
            .unwrap()
            .unwrap();
    }
}
