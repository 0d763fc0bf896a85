//! Every metric family the exporter exposes, and the encoding of a scrape.
//!
//! Two kinds of metrics live here: the per-profile gauges, encoded straight
//! from a [`Snapshot`] (plain data, nothing stateful survives the scrape), and
//! the exporter's own instrumentation ([`ApiMetrics`]), which accumulates for
//! the life of the process. Each scrape builds a fresh registry from both.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use reqwest::StatusCode;

use crate::avepoint::model::Customer;
use crate::collect::Snapshot;
use crate::discovery::DiscoveryState;

mod process;
pub mod profiles;

use process::ProcessCollector;
use profiles::ProfileFamilies;

/// Exposition format chosen by content negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0, when the scraper asks for it (Prometheus does).
    OpenMetrics,
    /// Prometheus text format 0.0.4: the default for everyone else.
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// Pick the format from an `Accept` header: OpenMetrics only when it is
    /// asked for explicitly with a quality at least that of plain text.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let mut openmetrics_quality: f32 = 0.0;
        let mut text_quality: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut quality = 1.0_f32;
            let mut version = None;
            for parameter in parts {
                if let Some((key, value)) = parameter.split_once('=') {
                    match key.trim().to_ascii_lowercase().as_str() {
                        "q" => quality = value.trim().parse().unwrap_or(0.0),
                        "version" => version = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
            }
            match media_type.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    openmetrics_quality = openmetrics_quality.max(quality);
                }
                "text/plain" | "text/*" | "*/*" => text_quality = text_quality.max(quality),
                _ => {}
            }
        }
        if openmetrics_quality > 0.0 && openmetrics_quality >= text_quality {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// Which AvePoint endpoint a request went to (the `endpoint` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiEndpoint {
    /// The OAuth2 token endpoint.
    Token,
    /// A profile's daily report (either path).
    ScanProfile,
    /// Customer discovery.
    CustomersBatch,
    /// Profile discovery.
    ScanProfilesBatch,
}

impl ApiEndpoint {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ApiEndpoint::Token => "token",
            ApiEndpoint::ScanProfile => "scan_profile",
            ApiEndpoint::CustomersBatch => "customers_batch",
            ApiEndpoint::ScanProfilesBatch => "scan_profiles_batch",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

fn request_duration_histogram() -> Histogram {
    Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// The exporter's own instrumentation of its calls to AvePoint.
/// Cheap to clone: every clone shares the same counters.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    retries: Family<RequestLabels, Counter>,
    request_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// Successful token fetches.
    pub token_refreshes: Counter,
    /// Back-off periods started after a 429/503 `Retry-After`.
    pub backoffs: Counter,
    backoff_skips: Family<EndpointLabels, Counter>,
    /// Expiry of the current token, Unix seconds.
    pub token_expiry: Gauge<f64, AtomicU64>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            retries: Family::default(),
            request_duration: Family::new_with_constructor(request_duration_histogram),
            token_refreshes: Counter::default(),
            backoffs: Counter::default(),
            backoff_skips: Family::default(),
            token_expiry: Gauge::default(),
        }
    }
}

impl ApiMetrics {
    /// Count one request; `status` is `None` when no HTTP answer came.
    pub fn observe_request(
        &self,
        endpoint: ApiEndpoint,
        status: Option<StatusCode>,
        elapsed: Duration,
    ) {
        let code = status.map_or_else(|| "error".to_owned(), |status| status.as_u16().to_string());
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.label(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.label(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Count one retry after a failure with `code` (HTTP status or `error`).
    pub fn observe_retry(&self, endpoint: ApiEndpoint, code: &str) {
        self.retries
            .get_or_create(&RequestLabels {
                endpoint: endpoint.label(),
                code: code.to_owned(),
            })
            .inc();
    }

    /// Count a request not sent because a back-off was in force.
    pub fn observe_backoff_skip(&self, endpoint: ApiEndpoint) {
        self.backoff_skips
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.label(),
            })
            .inc();
    }

    /// How many requests went to `endpoint` with `code` (for tests and `check`).
    pub fn request_count(&self, endpoint: ApiEndpoint, code: &str) -> u64 {
        self.requests
            .get(&RequestLabels {
                endpoint: endpoint.label(),
                code: code.to_owned(),
            })
            .map_or(0, |counter| counter.get())
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "avepoint_api_requests",
            "Requests sent to the AvePoint API, by endpoint and HTTP status code (code=\"error\" when no HTTP answer came)",
            self.requests.clone(),
        );
        registry.register(
            "avepoint_api_retries",
            "Requests to the AvePoint API retried, by endpoint and the status code of the failed attempt",
            self.retries.clone(),
        );
        registry.register_with_unit(
            "avepoint_api_request_duration",
            "Duration of requests to the AvePoint API, by endpoint",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        registry.register(
            "avepoint_api_backoffs",
            "Back-off periods started because AvePoint answered 429 or 503 with a Retry-After too long for the scrape",
            self.backoffs.clone(),
        );
        registry.register(
            "avepoint_api_backoff_skipped_requests",
            "Requests not sent to AvePoint because a back-off was in force, by endpoint",
            self.backoff_skips.clone(),
        );
        registry.register(
            "avepoint_api_token_refreshes",
            "Access tokens fetched from the OAuth2 token endpoint",
            self.token_refreshes.clone(),
        );
        registry.register_with_unit(
            "avepoint_api_token_expiry_timestamp",
            "When the current access token expires, as a Unix timestamp",
            Unit::Seconds,
            self.token_expiry.clone(),
        );
    }
}

/// Outcome of config reloads, as Prometheus and blackbox_exporter report it.
#[derive(Debug, Clone, Default)]
pub struct ReloadMetrics {
    successful: Gauge,
    last_success: Gauge<f64, AtomicU64>,
}

impl ReloadMetrics {
    /// The state at start: the config loaded, now.
    pub fn started() -> Self {
        let metrics = Self::default();
        metrics.record(true);
        metrics
    }

    /// Record a reload attempt.
    pub fn record(&self, success: bool) {
        self.successful.set(i64::from(success));
        if success {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// Whether the last reload worked.
    pub fn last_successful(&self) -> bool {
        self.successful.get() == 1
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "avepoint_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            self.successful.clone(),
        );
        registry.register_with_unit(
            "avepoint_exporter_config_last_reload_success_timestamp",
            "Timestamp of the last successful configuration load or reload",
            Unit::Seconds,
            self.last_success.clone(),
        );
    }
}

/// Version and source revision, for `avepoint_exporter_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git revision the binary was built from, or `unknown`.
    pub revision: &'static str,
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            revision: option_env!("AVEPOINT_EXPORTER_REVISION").unwrap_or("unknown"),
        }
    }
}

/// An encoded scrape, handed out in chunks: the small families encoded by
/// prometheus-client, then the per-profile families written straight from
/// the snapshot (see [`profiles`]), then OpenMetrics' `# EOF`.
#[derive(Debug)]
pub struct Exposition {
    head: Option<String>,
    profiles: ProfileFamilies,
    eof: Option<&'static str>,
}

impl Exposition {
    fn new(
        registry: &Registry,
        snapshot: Arc<Snapshot>,
        format: Format,
    ) -> Result<Self, std::fmt::Error> {
        let mut head = String::with_capacity(16 * 1024);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode_registry(&mut head, registry)?
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut head, registry)?
            }
        }
        Ok(Self {
            head: Some(head),
            profiles: ProfileFamilies::new(snapshot, format),
            eof: (format == Format::OpenMetrics).then_some("# EOF\n"),
        })
    }

    /// The whole exposition as one string (tests, benchmarks, small outputs).
    pub fn into_string(self) -> String {
        self.collect()
    }
}

impl Iterator for Exposition {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        self.profiles
            .next()
            .or_else(|| self.eof.take().map(str::to_owned))
    }
}

/// Encode a scrape: the snapshot's profiles, discovery and customer
/// metrics, the exporter's own metrics and the process metrics.
pub fn encode_scrape(
    snapshot: Arc<Snapshot>,
    targets: usize,
    discovery: Option<Arc<DiscoveryState>>,
    api: &ApiMetrics,
    reload: &ReloadMetrics,
    build: &BuildInfo,
    format: Format,
) -> Result<Exposition, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ExporterCollector {
        collect_duration: snapshot.collect_duration,
        targets,
        build: build.clone(),
    }));
    if let Some(discovery) = discovery {
        registry.register_collector(Box::new(DiscoveryCollector(discovery)));
    }
    api.register(&mut registry);
    reload.register(&mut registry);
    registry.register_collector(Box::new(ProcessCollector));
    Exposition::new(&registry, snapshot, format)
}

/// Encode one `/probe`: in a fresh registry, only the probed customer's
/// profiles (and its customer metrics, when discovery knows it), plus
/// `avepoint_probe_success` and `avepoint_probe_duration_seconds`.
pub fn encode_probe(
    snapshot: Arc<Snapshot>,
    customer: Option<Customer>,
    format: Format,
) -> Result<Exposition, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProbeCollector {
        success: snapshot.failures() == 0,
        duration: snapshot.collect_duration,
    }));
    if let Some(customer) = customer {
        registry.register_collector(Box::new(CustomerCollector(vec![customer].into())));
    }
    Exposition::new(&registry, snapshot, format)
}

/// Encode one gauge family from rows of (labels, value); families without
/// rows are left out.
fn encode_gauges<L, V, I>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: I,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    V: prometheus_client::encoding::EncodeGaugeValue,
    I: IntoIterator<Item = (L, V)>,
{
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// `avepoint_probe_*`: did the probe fetch every profile, and how long it took.
#[derive(Debug)]
struct ProbeCollector {
    success: bool,
    duration: Duration,
}

impl Collector for ProbeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_probe_success",
            "1 when every scan profile of the probed customer was fetched, else 0.",
            None,
            [(NO_LABELS, i64::from(self.success))],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_probe_duration",
            "How long the probe took.",
            Some(&Unit::Seconds),
            [(NO_LABELS, self.duration.as_secs_f64())],
        )
    }
}

/// Discovery's health and the customers it found.
#[derive(Debug)]
struct DiscoveryCollector(Arc<DiscoveryState>);

impl Collector for DiscoveryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        encode_gauges(
            &mut encoder,
            "avepoint_discovery_last_success_timestamp",
            "End of the last discovery refresh that read every list without error, as a Unix timestamp.",
            Some(&Unit::Seconds),
            state.last_success.map(|at| {
                let seconds = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                (NO_LABELS, seconds)
            }),
        )?;
        let errors = prometheus_client::metrics::counter::ConstCounter::new(state.errors_total);
        let metric = encoder.encode_descriptor(
            "avepoint_discovery_errors",
            "Discovery refreshes that failed in whole or in part (the last known targets were kept).",
            None,
            MetricType::Counter,
        )?;
        errors.encode(metric)?;
        encode_gauges(
            &mut encoder,
            "avepoint_discovery_targets",
            "Scan profiles found by discovery after the include/exclude rules.",
            None,
            [(NO_LABELS, state.discovered_profiles as i64)],
        )?;
        CustomerCollector(Arc::clone(&state.customers)).encode(encoder)
    }
}

/// Customer-level metrics from discovery data. `ownerEmail` is personal
/// data and is never decoded, let alone exported.
#[derive(Debug)]
struct CustomerCollector(Arc<[Customer]>);

/// Help text of `avepoint_customer_job_status`: the documented codes.
const JOB_STATUS_HELP: &str = "Raw jobStatus code of the customer: 0=N/A, 1=Working, 2=Failed, 3=Waiting for configuration, 4=Multiple issues found, 5=Finished with exception, 6=No backup updates.";

fn management_mode_label(code: Option<i64>) -> &'static str {
    match code {
        Some(0) => "customer_managed",
        Some(1) => "partner_managed",
        Some(2) => "to_be_configured",
        _ => "unknown",
    }
}

impl Collector for CustomerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_customer_info",
            "Customer metadata from discovery; constant 1. management_mode is customer_managed, partner_managed, to_be_configured or unknown.",
            None,
            self.0.iter().map(|customer| {
                (
                    [
                        ("customer_id", customer.id.as_str()),
                        ("organization", customer.organization.as_str()),
                        (
                            "management_mode",
                            management_mode_label(customer.management_mode),
                        ),
                        (
                            "country_or_region",
                            customer.country_or_region.as_deref().unwrap_or(""),
                        ),
                    ],
                    1_i64,
                )
            }),
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_customer_job_status",
            JOB_STATUS_HELP,
            None,
            self.0.iter().filter_map(|customer| {
                customer
                    .job_status
                    .map(|code| ([("customer_id", customer.id.as_str())], code))
            }),
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_customer_tenants",
            "Microsoft 365 tenants of the customer.",
            None,
            self.0.iter().map(|customer| {
                (
                    [("customer_id", customer.id.as_str())],
                    customer.tenants.len() as i64,
                )
            }),
        )
    }
}

/// Exporter-level gauges that describe the round itself.
#[derive(Debug)]
struct ExporterCollector {
    collect_duration: Duration,
    targets: usize,
    build: BuildInfo,
}

impl Collector for ExporterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            &mut encoder,
            "avepoint_exporter_build_info",
            "A metric with a constant '1' value labeled by the version and revision of avepoint-exporter.",
            None,
            [(
                [
                    ("version", self.build.version),
                    ("revision", self.build.revision),
                ],
                1_i64,
            )],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_exporter_collect_duration",
            "Wall time of the collection round that produced this scrape.",
            Some(&Unit::Seconds),
            [(NO_LABELS, self.collect_duration.as_secs_f64())],
        )?;
        encode_gauges(
            &mut encoder,
            "avepoint_exporter_targets",
            "Scan profiles the exporter knows (configured and discovered).",
            None,
            [(NO_LABELS, self.targets as i64)],
        )?;
        Ok(())
    }
}

const NO_LABELS: [(&str, &str); 0] = [];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::ScanStatus;

    #[test]
    fn negotiation_follows_prometheus_accept_headers() {
        // Prometheus 2.x default scrape Accept header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        // Prometheus 3.x with the default scrape_protocols.
        let prometheus3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus3)), Format::OpenMetrics);
        // Configured to prefer the classic text format.
        let text_first =
            "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5";
        assert_eq!(Format::negotiate(Some(text_first)), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=2.0.0")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
    }

    #[test]
    fn last_status_help_lists_every_code() {
        for status in ScanStatus::ALL {
            let entry = format!("{}={}", status.code(), status.description());
            assert!(profiles::LAST_STATUS_HELP.contains(&entry), "{entry}");
        }
    }
}
