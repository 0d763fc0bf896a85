//! The HTTP client for AvePoint's Graph API: one authorized call, retried,
//! paced and bounded, that every typed call (`calls.rs`) and the report
//! fetch (`profile_path.rs`) go through; typed errors (`error.rs`), the `request-id` of every failure, and one token refresh
//! when the API answers 401.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use url::Url;

use super::body_decode::{StreamBudget, decode_streamed};
use super::destination::Destination;
use super::endpoint::ApiEndpoint;
use super::error::ApiError;
use super::http::{DECODE_SLOTS, read_body_limited};
use super::instrumentation::ApiMetrics;
use super::model::ScanProfileReport;
use super::pacing::{Backoffs, RateLimiter, backoff_family, jitter};
use super::response::{body_error, request_id, status_error};
use super::runs_to_end::RunsToEnd;
use super::scrub::json_error_text;
use super::token::{AccessToken, TokenSource};
use super::transport::{ClientError, Connection, Outgoing, Transport};
use crate::config::{AvePointSettings, ProfileEndpoint, ProfileTarget};
use crate::sync::lock;

/// The most of a body that is read whole before decoding (anything but a
/// profile report, which is decoded as it streams in): a discovery page of
/// 100 items or a profile's details are a few dozen KiB.
const MAX_BUFFERED_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The most idle keep-alive connections kept per host, whatever
/// `concurrency` is (`Connection::max_idle_per_host` says why).
const MAX_IDLE_CONNECTIONS: usize = 16;

/// Client for the scan profile endpoints.
///
/// A clone is another handle on the same client: every piece of state
/// (tokens, the concurrency bound, the rate limit, the back-off) sits
/// behind an `Arc`, so a request can go on in a task of its own (see
/// `call_to_end`). A new stateful field must be shared the
/// same way; `derive(Clone)` refuses a bare `Mutex` or `Semaphore`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    transport: Transport,
    base_url: Url,
    pub(super) endpoint: ProfileEndpoint,
    pub(super) tokens: Arc<TokenSource>,
    pub(super) metrics: ApiMetrics,
    pub(super) request_timeout: Duration,
    in_flight: Arc<Semaphore>,
    /// Reports whose bodies are being read (`http::DECODE_SLOTS`).
    decoding: Arc<Semaphore>,
    concurrency: usize,
    max_response_bytes: usize,
    rate_limit: Option<Arc<RateLimiter>>,
    /// Until when AvePoint asked for a pause, and the status that asked.
    backoff: Arc<Backoffs>,
    /// With `endpoint: auto`: whether `changes` answered where
    /// `scan-profiles-v2` said 404 or 405, so every profile now uses `changes`.
    pub(super) use_changes: Arc<std::sync::atomic::AtomicBool>,
    /// Profiles in a row that answered only on the other path (`auto`).
    pub(super) path_votes: Arc<std::sync::atomic::AtomicU32>,
    /// Profiles whose object lists disagreed with their counts, already
    /// warned about: once per profile, not once per scrape.
    list_mismatch_warned: Arc<std::sync::Mutex<std::collections::HashSet<ProfileTarget>>>,
    pub(super) report_urls: Arc<super::report_urls::ReportUrls>,
}

impl ApiClient {
    /// Build the HTTP client (rustls, keep-alive, HTTP/2 where offered).
    pub fn new(settings: &AvePointSettings, metrics: ApiMetrics) -> Result<Self, ClientError> {
        let connection = Connection {
            base_url: &settings.base_url,
            request_timeout: settings.limits.request_timeout,
            max_idle_per_host: settings.limits.concurrency.min(MAX_IDLE_CONNECTIONS),
            extra_roots: &settings.extra_root_certificates,
            extra_roots_pem: &settings.ca_pem,
        };
        let http = connection.reqwest_client()?;
        let tokens = TokenSource::new(http.clone(), settings, metrics.clone());
        let transport = Transport::new(&connection, http)?;
        let first_path = match settings.endpoint {
            ProfileEndpoint::Auto => ProfileEndpoint::ScanProfilesV2,
            explicit => explicit,
        };
        metrics.set_profile_path(first_path.name());
        Ok(Self {
            transport,
            base_url: settings.base_url.clone(),
            endpoint: settings.endpoint,
            tokens: Arc::new(tokens),
            metrics,
            request_timeout: settings.limits.request_timeout,
            in_flight: Arc::new(Semaphore::new(settings.limits.concurrency)),
            decoding: Arc::new(Semaphore::new(DECODE_SLOTS)),
            concurrency: settings.limits.concurrency,
            max_response_bytes: settings.limits.max_response_bytes,
            rate_limit: settings
                .limits
                .max_requests_per_second
                .map(|rate| Arc::new(RateLimiter::new(rate))),
            backoff: Arc::default(),
            use_changes: Arc::default(),
            path_votes: Arc::default(),
            list_mismatch_warned: Arc::default(),
            report_urls: Arc::default(),
        })
    }

    /// Whether calls to `endpoint` can be sent: an error when no token can
    /// be had, or when the token endpoint refused the permission they need
    /// (then they would all fail, and are not sent).
    pub async fn authorize(&self, endpoint: ApiEndpoint) -> Result<(), ApiError> {
        self.tokens.token_for(endpoint).await?;
        Ok(())
    }

    /// How many requests may be in flight at once (`avepoint.concurrency`):
    /// the client's own bound, which rounds also use to size their batches.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The latest daily report of one scan profile. At most one retry
    /// (after a 429/503 `Retry-After`, a 5xx or a dropped connection), and
    /// only when it can still finish before `deadline`.
    ///
    /// With `endpoint: auto`, a 404 or 405 on `scan-profiles-v2` asks `changes`
    /// for the same profile at once; if that answers, every profile uses
    /// `changes` from then on (until a new client: a restart, or a reload
    /// that changes the `avepoint:` section). If both say 404, the profile
    /// really does not exist, and the error says so.
    ///
    /// The body is decoded as it streams in, counting the `changes` object
    /// lists without keeping them. A list whose length disagrees with its
    /// count field is logged once per profile; the count field is what the
    /// report carries.
    pub async fn scan_profile(
        &self,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let report = self.scan_profile_report(target, deadline).await?;
        self.warn_once_on_list_mismatch(target, &report);
        Ok(report)
    }

    /// Say once per profile (per client and the clients a reload builds
    /// after it) that an object list disagrees with its count: the lists
    /// are AvePoint's, and a warning every scrape would drown the logs.
    fn warn_once_on_list_mismatch(&self, target: &ProfileTarget, report: &ScanProfileReport) {
        let mismatches = report.list_mismatches();
        if mismatches.is_empty() || !lock(&self.list_mismatch_warned).insert(target.clone()) {
            return;
        }
        let details: Vec<String> = mismatches
            .iter()
            .map(|m| {
                format!(
                    "{} holds {} items where {} says {}",
                    m.list_field, m.listed, m.count_field, m.count
                )
            })
            .collect();
        tracing::warn!(
            customer_id = %target.customer_id,
            profile_id = %target.profile_id,
            mismatch = %details.join("; "),
            "an object list of the changes report disagrees with its count; exporting the count (logged once per profile)"
        );
    }

    /// [`ApiClient::call_to_end`], and once more after a retryable failure
    /// if the wait fits before `deadline`.
    ///
    /// A 429 or 503 whose `Retry-After` does not fit starts a back-off
    /// instead: until it ends, calls fail at once without reaching AvePoint,
    /// so the next scrapes do not hammer an API that asked for a pause.
    pub(super) async fn call_with_retry<T: DeserializeOwned + Send + 'static>(
        &self,
        endpoint: ApiEndpoint,
        to: &Arc<Destination>,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<T, ApiError> {
        self.check_backoff(endpoint)?;
        let error = match self.call_to_end(endpoint, to, body, deadline).await {
            Err(error) => error,
            ok => return ok,
        };
        let Some(delay) = retry_delay(&error) else {
            return Err(error);
        };
        if Instant::now() + delay >= deadline {
            self.start_backoff(endpoint, &error, delay);
            return Err(error);
        }
        self.metrics.observe_retry(endpoint, &error.kind().label());
        tracing::debug!(url = %to.url, error = %error, ?delay, "retrying once");
        tokio::time::sleep(delay).await;
        self.check_backoff(endpoint)?;
        let result = self.call_to_end(endpoint, to, body, deadline).await;
        if let Err(error) = &result
            && let Some(delay) = retry_delay(error)
        {
            self.start_backoff(endpoint, error, delay);
        }
        result
    }

    /// Take over `previous`'s back-offs (a config reload builds a new
    /// client): AvePoint's request for a pause outlives our config. The
    /// profiles already warned about carry over too, so a reload does not
    /// repeat every once-per-profile warning.
    pub fn inherit_backoff(&self, previous: &ApiClient) {
        self.backoff.inherit(&previous.backoff);
        let warned = lock(&previous.list_mismatch_warned).clone();
        lock(&self.list_mismatch_warned).extend(warned);
    }

    /// Fail fast while a back-off of this endpoint's family lasts.
    fn check_backoff(&self, endpoint: ApiEndpoint) -> Result<(), ApiError> {
        match self.backoff.current(endpoint) {
            Some((remaining, status)) => {
                self.metrics.observe_backoff_skip(endpoint);
                Err(ApiError::BackingOff { status, remaining })
            }
            None => Ok(()),
        }
    }

    /// Remember a 429/503's `Retry-After` (only those ask for a pause; a
    /// plain 5xx or a dropped connection does not), for the family of the
    /// endpoint that answered so: the others go on.
    fn start_backoff(&self, endpoint: ApiEndpoint, error: &ApiError, delay: Duration) {
        let ApiError::Status { status, .. } = error else {
            return;
        };
        if *status != StatusCode::TOO_MANY_REQUESTS && *status != StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        if let Some(pause) = self.backoff.start(endpoint, *status, delay) {
            self.metrics
                .observe_backoff(backoff_family(endpoint), pause);
            tracing::warn!(
                api_endpoint = endpoint.label(),
                status = status.as_u16(),
                seconds = pause.as_secs_f64(),
                "AvePoint asked to back off; requests to this endpoint pause until then (the others go on)"
            );
        }
    }

    /// [`ApiClient::call`] under a concurrency permit held from before the
    /// request is sent until it has ended, wherever the caller went.
    ///
    /// The caller's future may be dropped at any time: a scraper hangs up,
    /// a deadline passes. A request dropped mid-flight still costs AvePoint
    /// its work, so were the permit dropped with the caller's future, it
    /// would be released while AvePoint is still busy, and the next request
    /// would start beside it: `concurrency` would bound only the callers
    /// still waiting. So a call whose caller leaves once it is under way
    /// goes on in a task of its own ([`RunsToEnd`]), within
    /// `request_timeout`, and the permit with it. A caller that leaves
    /// while it waits for the permit, or that comes after its `deadline`,
    /// costs nothing: nothing is sent.
    ///
    /// Every call needs a permit, across `/metrics` rounds, probes and
    /// discovery alike: `concurrency` bounds what AvePoint sees.
    async fn call_to_end<T>(
        &self,
        endpoint: ApiEndpoint,
        to: &Arc<Destination>,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<T, ApiError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
            return Err(ApiError::Transport {
                message: "request cancelled: the exporter is shutting down".into(),
                timeout: false,
            });
        };
        // A fetch first polled after its deadline (a round's queue at its
        // end) must not send what nobody will wait for.
        if Instant::now() >= deadline {
            return Err(ApiError::Transport {
                message: "not sent: its deadline had passed while it waited for a permit".into(),
                timeout: true,
            });
        }
        let client = self.clone();
        let (to, body) = (Arc::clone(to), body.cloned());
        RunsToEnd::new(async move { client.call(endpoint, &to, body.as_ref(), permit).await }).await
    }

    /// One authorized call under `permit`: GET, or POST with a JSON body;
    /// one token refresh and retry on 401; a report's body decoded as it
    /// streams in (giving the permit back while it waits for a decode
    /// slot), any other read whole; both within `max_response_bytes`.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        endpoint: ApiEndpoint,
        to: &Destination,
        body: Option<&serde_json::Value>,
        permit: OwnedSemaphorePermit,
    ) -> Result<T, ApiError> {
        let token = self.tokens.token_for(endpoint).await?;
        let ((response, sent), token) = match self.send(endpoint, to, body, &token).await? {
            // The token may have been revoked or expired early: one fresh
            // token and one retry, never a loop.
            (response, _) if response.status() == StatusCode::UNAUTHORIZED => {
                self.tokens.invalidate(&token).await;
                let token = self.tokens.token_for(endpoint).await?;
                let response = self.send(endpoint, to, body, &token).await?;
                if response.0.status() == StatusCode::UNAUTHORIZED {
                    // A token issued after the first 401 is refused too:
                    // pause token requests instead of one per profile.
                    self.tokens.api_rejected(&token).await;
                }
                (response, token)
            }
            response => (response, token),
        };
        let status = response.status();
        let request_id = request_id(&response);
        if !status.is_success() {
            return Err(status_error(endpoint, self.endpoint, response, request_id, &token).await);
        }
        if endpoint == ApiEndpoint::SCAN_PROFILE {
            let budget = StreamBudget {
                slots: &self.decoding,
                permit: Some((permit, Arc::clone(&self.in_flight))),
                timeout: self.request_timeout,
                sent,
            };
            return decode_streamed(response, self.max_response_bytes, budget)
                .await
                .map_err(|error| body_error(error, &request_id, "avepoint.max_response_bytes"))?
                .map_err(|error| ApiError::Decode {
                    message: format!(
                        "not {}: {}",
                        endpoint.description(),
                        json_error_text(&error, None)
                    ),
                    request_id,
                });
        }
        let limit = self.max_response_bytes.min(MAX_BUFFERED_BODY_BYTES);
        let body = read_body_limited(response, limit).await.map_err(|error| {
            let setting = if limit == self.max_response_bytes {
                "avepoint.max_response_bytes"
            } else {
                "the limit for a discovery page or profile details"
            };
            body_error(error, &request_id, setting)
        })?;
        decode_with_path(&body).map_err(|message| ApiError::Decode {
            message: format!("not {}: {message}", endpoint.description()),
            request_id,
        })
    }

    async fn send(
        &self,
        endpoint: ApiEndpoint,
        to: &Destination,
        body: Option<&serde_json::Value>,
        token: &AccessToken,
    ) -> Result<(Response, Instant), ApiError> {
        if let Some(limiter) = &self.rate_limit {
            limiter.acquire().await;
        }
        let Some(authorization) = token.authorization() else {
            return Err(ApiError::Transport {
                message: "not sent: the access token AvePoint issued is not a valid header value"
                    .into(),
                timeout: false,
            });
        };
        let started = Instant::now();
        // A report's body may wait for a decode slot, which must not count
        // against request_timeout (`decode_streamed` bounds the body): the
        // transport's clock, which cannot pause, is only a backstop there.
        let (headers_bound, total_timeout) = if endpoint == ApiEndpoint::SCAN_PROFILE {
            (self.request_timeout, self.request_timeout.saturating_mul(2))
        } else {
            (Duration::MAX, self.request_timeout)
        };
        let sending = self.transport.send(Outgoing {
            json: body,
            to,
            authorization,
            total_timeout,
        });
        let result = tokio::time::timeout(headers_bound, sending).await;
        let status = result
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref().ok())
            .map(Response::status);
        self.metrics
            .observe_request(endpoint, status, started.elapsed());
        match result {
            Ok(Ok(response)) => Ok((response, started)),
            Ok(Err(error)) => Err(ApiError::Transport {
                message: error.message,
                timeout: error.timeout,
            }),
            Err(_) => Err(ApiError::Transport {
                message: format!(
                    "no response within avepoint.request_timeout ({}s)",
                    self.request_timeout.as_secs_f64()
                ),
                timeout: true,
            }),
        }
    }

    pub(super) fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }
}

/// Decode a body read whole; the error names the path of the field that
/// failed (`data[3].organization`) and never its value.
fn decode_with_path<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let path = error.path().to_string();
        json_error_text(error.inner(), Some(&path))
    })?;
    json.end().map_err(|error| json_error_text(&error, None))?;
    Ok(value)
}

/// How long to wait before the one retry an error deserves, if any.
fn retry_delay(error: &ApiError) -> Option<Duration> {
    match error {
        ApiError::Status {
            status,
            retry_after,
            ..
        } if *status == StatusCode::TOO_MANY_REQUESTS
            || *status == StatusCode::SERVICE_UNAVAILABLE =>
        {
            Some(retry_after.unwrap_or(Duration::from_secs(1)))
        }
        ApiError::Status { status, .. } if status.is_server_error() => Some(jitter(100, 300)),
        ApiError::Transport { timeout: false, .. } => Some(jitter(100, 300)),
        _ => None,
    }
}
