//! The HTTP face: the routes and their handlers (`/`, the telemetry path,
//! `/probe`, `/sd`, `/-/healthy`, `/-/ready`, `/-/reload`).
//!
//! [`router`] is separate from binding and serving (`crate::serve`) so
//! tests can drive it over a real socket on `127.0.0.1:0`. Handlers read the
//! shared [`AppState`], hand plain data to `metrics` for encoding, and
//! stream the result. Imports `state`, `metrics`, `collect`, `config`;
//! never `serve` or `app`.

mod timeout;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::compression::CompressionLayer;

use crate::collect::Snapshot;
use crate::config::canonical_uuid;
use crate::metrics::{Encoding, Exposition, Format, SharedBodies, encode_probe, encode_scrape};
use crate::state::{AppState, ProbeError, ReloadError, ReloadOutcome};
pub use timeout::{SCRAPE_TIMEOUT_HEADER, request_budget};

/// The exporter's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing_page))
        .route(state.telemetry_path(), get(metrics).layer(compression()))
        .route("/probe", get(probe).layer(compression()))
        .route("/sd", get(service_discovery))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state)
}

/// gzip for the expositions when the client accepts it (Prometheus
/// always does): the text compresses about sixfold, and the body stays
/// streamed, chunk by chunk. Only `/metrics` and `/probe`: the other pages
/// are a few bytes.
///
/// The fastest level: at 10,000 profiles the default level cost 570 ms of
/// CPU per scrape for a 3.98 MB body, the fastest 182 ms for 4.27 MB
/// (BENCHMARKS.md, "Compression").
fn compression() -> CompressionLayer {
    CompressionLayer::new()
        .gzip(true)
        .quality(tower_http::CompressionLevel::Fastest)
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let budget = request_budget(&headers);
    let format = negotiated_format(&headers);
    let pipeline = state.pipeline();
    let snapshot = if pipeline.settings.metrics_include_profiles {
        // The header bounds how long this scrape waits, never the round it
        // shares with the others (`avepoint.round_timeout` does).
        pipeline.rounds.collect(budget).await
    } else {
        Arc::new(Snapshot::default())
    };
    let sources = pipeline.scrape_sources(&state.background_panics);
    let (api, reload, build) = (&state.api_metrics, &state.reload_metrics, &state.build);
    let encoded = encode_scrape(snapshot, sources, api, reload, build, format);
    metrics_response(encoded, format, &state.scrape_bodies, &headers)
}

/// The exposition format the `Accept` header asks for.
fn negotiated_format(headers: &HeaderMap) -> Format {
    Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    )
}

/// Stream an exposition chunk by chunk, so a large scrape never sits in
/// memory whole. The request's own head is encoded here; the round's body
/// comes from `bodies`, encoded (and gzipped, when the client accepts it)
/// once for every caller of the round (`metrics/shared.rs`). A gzipped
/// response carries its `Content-Encoding`, so the compression layer
/// leaves it alone.
fn metrics_response(
    encoded: Result<Exposition, std::fmt::Error>,
    format: Format,
    bodies: &SharedBodies,
    headers: &HeaderMap,
) -> Response {
    match encoded {
        Ok(exposition) => {
            let encoding = Encoding::negotiate(
                headers
                    .get(header::ACCEPT_ENCODING)
                    .and_then(|value| value.to_str().ok()),
            );
            let (head, body) = exposition.into_parts();
            let reader = bodies.reader(body, encoding, head);
            let chunks = futures_util::stream::iter(
                reader.map(|chunk| Ok::<_, std::convert::Infallible>(Bytes::from_owner(chunk))),
            );
            let mut response = (
                [(header::CONTENT_TYPE, format.content_type())],
                Body::from_stream(chunks),
            )
                .into_response();
            if encoding == Encoding::Gzip {
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            }
            response
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

/// A UUID query parameter, normalised to lower case.
fn uuid_parameter(
    query: &HashMap<String, String>,
    name: &'static str,
) -> Result<Option<String>, ProbeError> {
    match query.get(name) {
        None => Ok(None),
        Some(value) => canonical_uuid(value)
            .map(Some)
            .ok_or_else(|| ProbeError::NotUuid {
                name,
                value: value.clone(),
            }),
    }
}

/// A caller's mistake: 400, in plain text.
impl IntoResponse for ProbeError {
    fn into_response(self) -> Response {
        bad_request(self.to_string())
    }
}

/// `/probe?customer_id=...[&profile_id=...]`: one customer's profiles in a
/// fresh registry, blackbox_exporter style. Caller mistakes answer 400 in
/// plain text; an upstream failure is a 200 with `avepoint_probe_success 0`.
async fn probe(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ProbeError> {
    let customer_id = uuid_parameter(&query, "customer_id")?.ok_or(ProbeError::MissingCustomer)?;
    let profile_id = uuid_parameter(&query, "profile_id")?;
    let pipeline = state.pipeline();
    let inputs = pipeline.probe_inputs(customer_id, profile_id)?;
    let budget = request_budget(&headers);
    let format = negotiated_format(&headers);
    // Probes of the same targets share a round, as scrapes do.
    let snapshot = match inputs.targets.is_empty() {
        true => Arc::new(Snapshot::default()),
        false => {
            let targets = Arc::clone(&inputs.targets);
            pipeline.rounds.collect_targets(targets, budget).await
        }
    };
    let encoded = encode_probe(snapshot, inputs.sources, format);
    Ok(metrics_response(
        encoded,
        format,
        &state.probe_bodies,
        &headers,
    ))
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
    let pipeline = state.pipeline();
    let customers = pipeline
        .discovery_state()
        .map(|d| Arc::clone(&d.customers))
        .unwrap_or_default();
    let organizations: HashMap<&str, &str> = customers
        .iter()
        .map(|c| (c.id.as_str(), c.organization.as_str()))
        .collect();
    // Customers with scan profiles first, then those only the backup
    // collectors read.
    let backup_customers = pipeline.backup_snapshot().customers();
    let profile_customers = pipeline
        .rounds
        .targets()
        .iter()
        .map(|target| target.customer_id.clone())
        .collect::<Vec<_>>();
    let mut entries: Vec<SdTarget> = Vec::new();
    let mut seen = HashSet::new();
    for customer_id in profile_customers.into_iter().chain(backup_customers) {
        if !seen.insert(customer_id.clone()) {
            continue;
        }
        // Both sides hold canonical (lower-case) UUIDs.
        let organization = organizations
            .get(customer_id.as_str())
            .map(|org| (*org).to_owned())
            .unwrap_or_default();
        entries.push(SdTarget {
            targets: [customer_id.clone()],
            labels: SdLabels {
                customer_id,
                organization,
            },
        });
    }
    Json(entries)
}

/// `POST /-/reload`: re-read the config file; the old config stays in
/// force when the new one is invalid. Only with `--web.enable-lifecycle`,
/// answering as Prometheus does without it.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    if !state.options.enable_lifecycle {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled. Start with --web.enable-lifecycle, or send SIGHUP.\n",
        )
            .into_response();
    }
    match state.reload().await {
        Ok(ReloadOutcome::Reloaded) => "Config reloaded\n".into_response(),
        Ok(ReloadOutcome::Unchanged) => "Config unchanged\n".into_response(),
        Err(error) if matches!(*error, ReloadError::NoConfigFile) => {
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
        .pipeline()
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
    let path = html_escape(state.telemetry_path());
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
}
