//! One accepted connection's task: for a TLS listener the 400 for plain
//! HTTP and the handshake, then hyper serving the router, until it ends or
//! the tracker wants it closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::connections::Registration;
use super::responses::ResponseBound;
use super::tracked::Tracked;
use crate::web_config::WebConfigHandle;

/// How long a client may take to complete the TLS handshake (and to send
/// its first byte before it).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// hyper's HTTP/1.1 buffer, each way (its least is 8 KiB, its default about
/// 400 KiB): the request headers must fit (Prometheus sends well under
/// 1 KiB), and it is what hyper holds of a response its client does not
/// read, besides the chunk being encoded.
const HTTP1_BUFFER: usize = 16 * 1024;

/// HTTP/2 streams at once per connection (hyper's default is 200, each of
/// which could hold a response): Prometheus runs one scrape per target at a
/// time over its connection.
const HTTP2_MAX_STREAMS: u32 = 4;

/// What hyper buffers of one HTTP/2 stream's response before waiting for
/// its client's window (default about 400 KiB).
const HTTP2_SEND_BUFFER: usize = 64 * 1024;

/// What a connection's task needs.
pub(super) struct Connection {
    /// Its place in the tracker (removed when the task ends).
    pub registration: Registration,
    /// The routes, basic auth and headers already applied.
    pub router: Router,
    /// The web config, for a TLS listener.
    pub tls: Option<Arc<WebConfigHandle>>,
    /// hyper's own HTTP/1.1 header timeout.
    pub header_read_timeout: Duration,
    /// Holds graceful shutdown until the connection is done.
    pub watcher: Watcher,
    /// The bound on responses in progress, if any.
    pub responses: Option<Arc<ResponseBound>>,
}

/// The error a hyper connection ends with.
type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

impl Connection {
    /// Serve the connection until it ends or the tracker closes it.
    pub(super) async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let Connection {
            registration,
            router,
            tls,
            header_read_timeout,
            watcher,
            responses,
        } = self;
        let service =
            TowerToHyperService::new(Tracked::new(router, registration.slot(), peer, responses));
        let served = async move {
            let Some(web_config) = tls else {
                // Plain: HTTP/1.1 only. Prometheus speaks HTTP/2 only over
                // TLS; HTTP/2 with prior knowledge (h2c) served no scraper
                // and let one connection open 200 streams.
                return serve_io(stream, false, header_read_timeout, service, watcher).await;
            };
            let Some((stream, http2)) = handshake(stream, &web_config, peer).await else {
                return Ok(());
            };
            serve_io(stream, http2, header_read_timeout, service, watcher).await
        };
        tokio::select! {
            result = served => if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            },
            reason = registration.closed() => {
                tracing::debug!(%peer, reason = reason.as_str(), "connection closed by the server");
            }
        }
    }
}

/// hyper on `io`: HTTP/1.1 with its header-read timeout (which needs a
/// timer to take effect at all) and a small buffer, and HTTP/2 when
/// `http2`, with few streams and small send buffers.
async fn serve_io<I>(
    io: I,
    http2: bool,
    header_read_timeout: Duration,
    service: TowerToHyperService<Tracked<Router>>,
    watcher: Watcher,
) -> Result<(), ConnectionError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(HTTP1_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .max_send_buf_size(HTTP2_SEND_BUFFER);
    if !http2 {
        builder = builder.http1_only();
    }
    // Not `serve_connection_with_upgrades`: it ignores `http1_only` and
    // detects HTTP/2 anyway (hyper-util 0.1.21); nothing here upgrades.
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    watcher.watch(connection).await
}

/// The TLS handshake with the settings in force now (the web config and
/// certificates re-read if they changed); the stream and whether HTTP/2 is
/// on, or `None` when the connection is done.
async fn handshake(
    stream: TcpStream,
    web_config: &WebConfigHandle,
    peer: SocketAddr,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, bool)> {
    let stream = refuse_plain_http(stream).await?;
    let config = web_config.current();
    let tls = config.tls_server_config()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some((stream, config.http2())),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Answer a plain HTTP request on the TLS port with a 400 saying so (as Go's
/// servers do) instead of a confusing handshake failure; `None` when the
/// connection is done.
async fn refuse_plain_http(mut stream: TcpStream) -> Option<TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut first = [0u8; 1];
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => Some(stream),
        Ok(Ok(1)) => {
            let _ = stream
                .write_all(
                    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                      Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                )
                .await;
            let _ = stream.shutdown().await;
            None
        }
        _ => None,
    }
}
