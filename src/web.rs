//! The HTTP face: `/`, the telemetry path, `/-/healthy` and `/-/ready`.
//!
//! [`router`] is separate from binding and serving so tests can drive it
//! over a real socket on `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::collect::{Collector, scrape_budget};
use crate::metrics::{ApiMetrics, BuildInfo, Format, encode_scrape};

/// The header Prometheus sends with its scrape timeout in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// What the handlers share; built once at start.
pub struct AppState {
    /// Runs the collection rounds.
    pub collector: Arc<Collector>,
    /// The exporter's own API instrumentation.
    pub api_metrics: ApiMetrics,
    /// Version information.
    pub build: BuildInfo,
    /// Where metrics are served, e.g. `/metrics`.
    pub telemetry_path: String,
}

/// The exporter's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing_page))
        .route(&state.telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let header_text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let budget = scrape_budget(header_text(SCRAPE_TIMEOUT_HEADER));
    let format = Format::negotiate(header_text(header::ACCEPT.as_str()));
    let snapshot = state.collector.collect(budget).await;
    match encode_scrape(snapshot, &state.api_metrics, &state.build, format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn landing_page(State(state): State<Arc<AppState>>) -> Html<String> {
    let path = html_escape(&state.telemetry_path);
    let version = html_escape(state.build.version);
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>AvePoint Exporter</title></head>\n<body>\n\
         <h1>AvePoint Exporter</h1>\n<p>Prometheus exporter for AvePoint Elements scan profiles, version {version}.</p>\n\
         <ul>\n<li><a href=\"{path}\">Metrics</a></li>\n<li><a href=\"/-/healthy\">Health</a></li>\n\
         <li><a href=\"/-/ready\">Readiness</a></li>\n\
         <li><a href=\"https://github.com/avepoint-exporter/avepoint-exporter#readme\">Documentation</a></li>\n</ul>\n</body>\n</html>\n"
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

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
