//! The HTTP face: `/`, the telemetry path, `/-/healthy` and `/-/ready`.
//!
//! [`router`] is separate from binding and serving so tests can drive it
//! over a real socket on `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::collect::{Collector, scrape_budget};
use crate::config::ProfileTarget;
use crate::discovery::{Discovery, DiscoveryState};
use crate::metrics::{
    ApiMetrics, BuildInfo, Exposition, Format, ReloadMetrics, encode_probe, encode_scrape,
};
use crate::web_config::WebConfigHandle;

/// The header Prometheus sends with its scrape timeout in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// What the handlers share; built once at start.
pub struct AppState {
    /// What the config built; replaced whole by a reload.
    core: RwLock<Arc<Core>>,
    /// The config file, when the state came from one (a reload re-reads it).
    pub config_file: Option<PathBuf>,
    /// Outcome of the last config reload.
    pub reload_metrics: ReloadMetrics,
    /// The exporter's own API instrumentation (survives reloads).
    pub api_metrics: ApiMetrics,
    /// Version information.
    pub build: BuildInfo,
    /// Where metrics are served, e.g. `/metrics`.
    pub telemetry_path: String,
}

/// Everything built from one config: replaced whole by a reload, so a
/// scrape in flight finishes with the config it started with.
pub struct Core {
    /// Runs the collection rounds.
    pub collector: Arc<Collector>,
    /// Whether `/metrics` collects the profiles (else only `/probe` does).
    pub metrics_include_profiles: bool,
    /// Discovery, when enabled; dropping the core stops it.
    pub discovery: Option<Discovery>,
}

impl Core {
    /// Discovery's latest state, when discovery is enabled.
    pub fn discovery_state(&self) -> Option<Arc<DiscoveryState>> {
        self.discovery
            .as_ref()
            .map(|d| Arc::clone(&d.state.borrow()))
    }
}

impl AppState {
    /// State around `core`; `config_file` makes it reloadable.
    pub fn new(
        core: Core,
        config_file: Option<PathBuf>,
        api_metrics: ApiMetrics,
        telemetry_path: &str,
    ) -> Self {
        Self {
            core: RwLock::new(Arc::new(core)),
            config_file,
            reload_metrics: ReloadMetrics::started(),
            api_metrics,
            build: BuildInfo::default(),
            telemetry_path: telemetry_path.to_owned(),
        }
    }

    /// The current core.
    pub fn core(&self) -> Arc<Core> {
        Arc::clone(
            &self
                .core
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The current collector.
    pub fn collector(&self) -> Arc<Collector> {
        Arc::clone(&self.core().collector)
    }

    /// Swap in a core built from a new config.
    pub fn replace_core(&self, core: Core) {
        *self
            .core
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(core);
    }
}

/// The exporter's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing_page))
        .route(&state.telemetry_path, get(metrics))
        .route("/probe", get(probe))
        .route("/sd", get(service_discovery))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let header_text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let budget = scrape_budget(header_text(SCRAPE_TIMEOUT_HEADER));
    let format = Format::negotiate(header_text(header::ACCEPT.as_str()));
    let core = state.core();
    let snapshot = if core.metrics_include_profiles {
        core.collector.collect(budget).await
    } else {
        Arc::new(crate::collect::Snapshot::default())
    };
    metrics_response(
        encode_scrape(
            snapshot,
            core.collector.targets().len(),
            core.discovery_state(),
            &state.api_metrics,
            &state.reload_metrics,
            &state.build,
            format,
        ),
        format,
    )
}

/// Stream an exposition chunk by chunk, so a large scrape never sits in
/// memory whole.
fn metrics_response(encoded: Result<Exposition, std::fmt::Error>, format: Format) -> Response {
    match encoded {
        Ok(exposition) => {
            let chunks =
                futures_util::stream::iter(exposition.map(Ok::<_, std::convert::Infallible>));
            (
                [(header::CONTENT_TYPE, format.content_type())],
                Body::from_stream(chunks),
            )
                .into_response()
        }
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

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// A UUID query parameter, normalised to lower case; `Err` is the 400 text.
fn uuid_parameter(query: &HashMap<String, String>, name: &str) -> Result<Option<String>, String> {
    match query.get(name) {
        None => Ok(None),
        Some(value) => uuid::Uuid::parse_str(value.trim())
            .map(|id| Some(id.to_string()))
            .map_err(|_| format!("{name} {value:?} is not a UUID")),
    }
}

/// `/probe?customer_id=...[&profile_id=...]`: one customer's profiles in a
/// fresh registry, blackbox_exporter style. Caller mistakes answer 400 in
/// plain text; an upstream failure is a 200 with `avepoint_probe_success 0`.
async fn probe(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let customer_id = match uuid_parameter(&query, "customer_id") {
        Ok(Some(id)) => id,
        Ok(None) => return bad_request("customer_id parameter is missing".into()),
        Err(message) => return bad_request(message),
    };
    let profile_id = match uuid_parameter(&query, "profile_id") {
        Ok(id) => id,
        Err(message) => return bad_request(message),
    };
    let core = state.core();
    let targets: Arc<[ProfileTarget]> = core
        .collector
        .targets()
        .iter()
        .filter(|t| t.customer_id == customer_id)
        .filter(|t| profile_id.as_ref().is_none_or(|p| t.profile_id == *p))
        .cloned()
        .collect();
    if targets.is_empty() {
        return bad_request(match profile_id {
            Some(profile_id) => format!(
                "profile {profile_id} of customer {customer_id} is not a configured or discovered target"
            ),
            None => format!("customer {customer_id} has no configured or discovered scan profiles"),
        });
    }
    let header_text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let budget = scrape_budget(header_text(SCRAPE_TIMEOUT_HEADER));
    let format = Format::negotiate(header_text(header::ACCEPT.as_str()));
    let snapshot = Arc::new(core.collector.collect_targets(targets, budget).await);
    let customer = core.discovery_state().and_then(|discovery| {
        discovery
            .customers
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(&customer_id))
            .cloned()
    });
    metrics_response(encode_probe(snapshot, customer, format), format)
}

/// One entry of Prometheus' HTTP service discovery format.
#[derive(Serialize)]
struct SdTarget {
    targets: [String; 1],
    labels: SdLabels,
}

#[derive(Serialize)]
struct SdLabels {
    customer_id: String,
    organization: String,
}

/// `/sd`: Prometheus `http_sd_configs` JSON, one target per customer (the
/// target is the customer id; relabel it into `/probe`'s `customer_id`).
async fn service_discovery(State(state): State<Arc<AppState>>) -> Json<Vec<SdTarget>> {
    let core = state.core();
    let customers = core
        .discovery_state()
        .map(|d| Arc::clone(&d.customers))
        .unwrap_or_default();
    let organizations: HashMap<&str, &str> = customers
        .iter()
        .map(|c| (c.id.as_str(), c.organization.as_str()))
        .collect();
    let mut entries: Vec<SdTarget> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for target in core.collector.targets().iter() {
        if !seen.insert(target.customer_id.clone()) {
            continue;
        }
        // Both sides hold canonical (lower-case) UUIDs.
        let organization = organizations
            .get(target.customer_id.as_str())
            .map(|org| (*org).to_owned())
            .unwrap_or_default();
        entries.push(SdTarget {
            targets: [target.customer_id.clone()],
            labels: SdLabels {
                customer_id: target.customer_id.clone(),
                organization,
            },
        });
    }
    Json(entries)
}

/// `POST /-/reload`: re-read the config file; the old config stays in
/// force when the new one is invalid.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    match crate::reload::reload(&state) {
        Ok(()) => "Config reloaded\n".into_response(),
        Err(error @ crate::reload::ReloadError::NoConfigFile) => {
            (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response()
        }
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {error}\n"),
        )
            .into_response(),
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let waiting = state
        .core()
        .discovery_state()
        .is_some_and(|discovery| !discovery.attempted);
    if waiting {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the first discovery has not finished\n",
        )
            .into_response()
    } else {
        "Ready\n".into_response()
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
