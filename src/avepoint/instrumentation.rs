//! The exporter's own instrumentation of its calls to AvePoint
//! (`avepoint_api_*`): counters that live as long as the process and are
//! shared by the token source, the API client and every reload.
//!
//! Lives with the client rather than in `metrics/` because the client
//! writes it on every request; `metrics/` only registers it for encoding.
//! Imports only `endpoint` (the `api_endpoint` label values).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use reqwest::StatusCode;

use super::endpoint::ApiEndpoint;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api_endpoint: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    api_endpoint: &'static str,
    field: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PermissionLabels {
    permission: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    api_endpoint: &'static str,
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
    /// Pauses in token requests after the API refused a fresh token.
    pub auth_backoffs: Counter,
    backoff_skips: Family<EndpointLabels, Counter>,
    /// When each endpoint family's latest back-off ends, Unix seconds.
    backoff_until: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    unreadable_fields: Family<FieldLabels, Counter>,
    /// The path profiles are fetched from (`avepoint_api_profile_path_info`).
    profile_path: Family<PathLabels, Gauge>,
    /// Expiry of the current token, Unix seconds.
    pub token_expiry: Gauge<f64, AtomicU64>,
    /// Each permission asked for: 1 granted, 0 refused.
    granted_permissions: Family<PermissionLabels, Gauge>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            retries: Family::default(),
            request_duration: Family::new_with_constructor(request_duration_histogram),
            token_refreshes: Counter::default(),
            backoffs: Counter::default(),
            auth_backoffs: Counter::default(),
            profile_path: Family::default(),
            backoff_skips: Family::default(),
            backoff_until: Family::default(),
            unreadable_fields: Family::default(),
            token_expiry: Gauge::default(),
            granted_permissions: Family::default(),
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
                api_endpoint: endpoint.label(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels {
                api_endpoint: endpoint.label(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Count one retry after a failure with `code` (HTTP status or `error`).
    pub fn observe_retry(&self, endpoint: ApiEndpoint, code: &str) {
        self.retries
            .get_or_create(&RequestLabels {
                api_endpoint: endpoint.label(),
                code: code.to_owned(),
            })
            .inc();
    }

    /// Count a back-off of `endpoint`'s family that lasts `pause` from now.
    pub fn observe_backoff(&self, endpoint: ApiEndpoint, pause: Duration) {
        self.backoffs.inc();
        let until = std::time::SystemTime::now() + pause;
        let seconds = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.backoff_until
            .get_or_create(&EndpointLabels {
                api_endpoint: endpoint.label(),
            })
            .set(seconds);
    }

    /// Count a request not sent because a back-off was in force.
    pub fn observe_backoff_skip(&self, endpoint: ApiEndpoint) {
        self.backoff_skips
            .get_or_create(&EndpointLabels {
                api_endpoint: endpoint.label(),
            })
            .inc();
    }

    /// Count one field of an item that AvePoint sent in a form that could
    /// not be read (the field is unknown; the item is kept). `field` is the
    /// wire name from the exporter's own list, never from the network.
    pub fn observe_unreadable_field(&self, endpoint: ApiEndpoint, field: &'static str) {
        self.unreadable_fields
            .get_or_create(&FieldLabels {
                api_endpoint: endpoint.label(),
                field,
            })
            .inc();
    }

    /// Say which path profiles are fetched from now (`scan-profiles-v2` or
    /// `changes`); the previous one's series goes.
    pub fn set_profile_path(&self, path: &'static str) {
        self.profile_path.clear();
        self.profile_path.get_or_create(&PathLabels { path }).set(1);
    }

    /// Say what the last token refresh was granted: every permission of
    /// `asked` is 1, but those of `missing`, which are 0; permissions no
    /// longer asked for (a reload changed the scope) go, and all of them
    /// when `asked` is empty (a refresh that failed).
    pub fn set_granted_permissions(&self, asked: &[String], missing: &[String]) {
        self.granted_permissions.clear();
        for permission in asked {
            let granted = !missing.contains(permission);
            self.granted_permissions
                .get_or_create(&PermissionLabels {
                    permission: permission.clone(),
                })
                .set(i64::from(granted));
        }
    }

    /// Register every `avepoint_api_*` family into a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "avepoint_api_requests",
            "Requests sent to the AvePoint API, by API endpoint and HTTP status code (code=\"error\" when no HTTP answer came)",
            self.requests.clone(),
        );
        registry.register(
            "avepoint_api_retries",
            "Requests to the AvePoint API retried, by API endpoint and the status code of the failed attempt",
            self.retries.clone(),
        );
        registry.register_with_unit(
            "avepoint_api_request_duration",
            "Duration of requests to the AvePoint API, by API endpoint",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        registry.register(
            "avepoint_api_backoffs",
            "Back-off periods started because AvePoint answered 429 or 503 with a Retry-After too long for the scrape",
            self.backoffs.clone(),
        );
        registry.register_with_unit(
            "avepoint_api_backoff_end_timestamp",
            "When the latest back-off of this API endpoint (and its family: customers_batch stands for both discovery lists) ends, as a Unix timestamp; in the past once it is over. A back-off pauses only its own endpoint",
            Unit::Seconds,
            self.backoff_until.clone(),
        );
        registry.register(
            "avepoint_api_backoff_skipped_requests",
            "Requests not sent to AvePoint because a back-off was in force, by API endpoint",
            self.backoff_skips.clone(),
        );
        registry.register(
            "avepoint_api_unreadable_fields",
            "Fields of items AvePoint sent in a form the exporter cannot read (the field is then unknown, the item kept), by API endpoint and field",
            self.unreadable_fields.clone(),
        );
        registry.register(
            "avepoint_api_profile_path_info",
            "The path scan profile reports are fetched from: scan-profiles-v2 or changes (with avepoint.endpoint: auto, changes once scan-profiles-v2 answered 404 or 405 where changes answered); constant 1",
            self.profile_path.clone(),
        );
        registry.register(
            "avepoint_api_auth_backoffs",
            "Pauses in token requests (one minute each) because the API refused a token issued a moment ago",
            self.auth_backoffs.clone(),
        );
        registry.register(
            "avepoint_api_granted_permission",
            "Each permission of the token's scope at the last token refresh: 1 granted, 0 asked for but refused (the collectors that need it are down until it is granted in Elements > API app registration)",
            self.granted_permissions.clone(),
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
