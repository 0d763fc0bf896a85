//! Serving: binding listeners, the plain and the TLS accept loops, and
//! graceful shutdown on SIGINT/SIGTERM.
//!
//! Takes any axum `Router`, so the exporter and the simulator serve the
//! same way. Imports only `web_config` (TLS settings, basic auth) from the
//! crate; never `web`, `state` or `app`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::web_config::WebConfigHandle;

/// Bind a Prometheus-style listen address (see [`resolve_listen_address`]).
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(resolve_listen_address(address).await?).await
}

/// Resolve a Prometheus-style listen address: `:10290` means every
/// interface, anything else is `host:port`.
pub async fn resolve_listen_address(address: &str) -> std::io::Result<SocketAddr> {
    let address = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    };
    tokio::net::lookup_host(&address)
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("listen address {address:?} resolves to nothing"),
            )
        })
}

/// Serve `router` on `listener` until `shutdown` completes, then let
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
    let Some(web_config) = web_config else {
        return serve(listener, router, shutdown).await;
    };
    let router = crate::web_config::protect(router, Arc::clone(&web_config));
    if web_config.tls_enabled() {
        serve_tls(listener, router, shutdown, web_config).await
    } else {
        serve(listener, router, shutdown).await
    }
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The HTTPS accept loop: each new connection takes the TLS settings in
/// force (re-reading the web config file and certificates if they changed),
/// then hyper serves the router on it. On `shutdown` the listener closes and
/// open connections finish their in-flight requests.
async fn serve_tls(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    web_config: Arc<WebConfigHandle>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let web_config = Arc::clone(&web_config);
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Some(stream) = refuse_plain_http(stream).await else {
                return;
            };
            let config = web_config.current();
            let Some(tls) = config.tls_server_config() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if !config.http2() {
                builder = builder.http1_only();
            }
            let connection = builder
                .serve_connection_with_upgrades(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(router),
                )
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answer a plain HTTP request on the TLS port with a 400 saying so (as Go's
/// servers do) instead of a confusing handshake failure; `None` when the
/// connection is done.
async fn refuse_plain_http(mut stream: tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
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
            "0.0.0.0:10290".parse().unwrap()
        );
        assert_eq!(
            resolve_listen_address("127.0.0.1:0").await.unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(resolve_listen_address("no-port").await.is_err());
    }
}
