//! The HTTP client for AvePoint's Graph API: one typed call per endpoint,
//! typed errors (`error.rs`), the `request-id` of every failure, and one token refresh
//! when the API answers 401.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use url::Url;

use super::auth::{AccessToken, TokenSource};
use super::error::ApiError;
use super::http::{BodyError, error_chain, read_body_limited, redirect_target, sanitize};
use super::instrumentation::{ApiEndpoint, ApiMetrics};
use super::model::{ApiErrorBody, Customer, Page, ScanProfileReport, ScanProfileSummary};
use super::pacing::{RateLimiter, jitter, parse_retry_after};
use crate::config::{AvePointSettings, ProfileEndpoint, ProfileTarget};
use crate::sync::lock;

/// Client for the scan profile endpoints.
///
/// A clone is another handle on the same client: every piece of state
/// (tokens, the concurrency bound, the rate limit, the back-off) sits
/// behind an `Arc`, so each request can run in a task of its own (see
/// `call_in_task`). A new stateful field must be shared the
/// same way; `derive(Clone)` refuses a bare `Mutex` or `Semaphore`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: Url,
    endpoint: ProfileEndpoint,
    tokens: Arc<TokenSource>,
    metrics: ApiMetrics,
    pub(super) request_timeout: Duration,
    in_flight: Arc<Semaphore>,
    concurrency: usize,
    max_response_bytes: usize,
    rate_limit: Option<Arc<RateLimiter>>,
    /// Until when AvePoint asked for a pause, and the status that asked.
    backoff: Arc<std::sync::Mutex<Option<(Instant, StatusCode)>>>,
    /// With `endpoint: auto`: whether `changes` answered where
    /// `scan-profiles-v2` said 404, so every profile now uses `changes`.
    use_changes: Arc<std::sync::atomic::AtomicBool>,
}

impl ApiClient {
    /// Build the HTTP client (rustls, keep-alive, HTTP/2 where offered).
    pub fn new(settings: &AvePointSettings, metrics: ApiMetrics) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("avepoint-exporter/", env!("CARGO_PKG_VERSION")))
            // A redirect would re-send the token request's form (with the
            // client secret) or the bearer token wherever it points, past
            // the https-only rule for the configured URLs. AvePoint does not
            // redirect; a 3xx is an error naming where it pointed.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90))
            .tls_certs_merge(settings.extra_root_certificates.iter().cloned())
            .build()?;
        let tokens = TokenSource::new(http.clone(), settings, metrics.clone());
        let first_path = match settings.endpoint {
            ProfileEndpoint::Auto => ProfileEndpoint::ScanProfilesV2,
            explicit => explicit,
        };
        metrics.set_profile_path(first_path.name());
        Ok(Self {
            http,
            base_url: settings.base_url.clone(),
            endpoint: settings.endpoint,
            tokens: Arc::new(tokens),
            metrics,
            request_timeout: settings.request_timeout,
            in_flight: Arc::new(Semaphore::new(settings.concurrency)),
            concurrency: settings.concurrency,
            max_response_bytes: settings.max_response_bytes,
            rate_limit: settings
                .max_requests_per_second
                .map(|rate| Arc::new(RateLimiter::new(rate))),
            backoff: Arc::default(),
            use_changes: Arc::default(),
        })
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
    /// With `endpoint: auto`, a 404 on `scan-profiles-v2` asks `changes`
    /// for the same profile at once; if that answers, every profile uses
    /// `changes` from then on (until a new client: a restart, or a reload
    /// that changes the `avepoint:` section). If both say 404, the profile
    /// really does not exist, and the error says so.
    pub async fn scan_profile(
        &self,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let path = self.profile_path();
        let result = self.fetch_profile(path, target, deadline).await;
        let seed_missing = matches!(&result, Err(ApiError::Status { status, .. }) if *status == StatusCode::NOT_FOUND);
        if !(seed_missing
            && self.endpoint == ProfileEndpoint::Auto
            && path == ProfileEndpoint::ScanProfilesV2)
        {
            return result;
        }
        match self.fetch_profile(ProfileEndpoint::Changes, target, deadline).await {
            Ok(report) => {
                self.switch_to_changes();
                Ok(report)
            }
            Err(ApiError::Status {
                status,
                message,
                request_id,
                retry_after,
                ..
            }) if status == StatusCode::NOT_FOUND => Err(ApiError::Status {
                status,
                hint: "customer or scan profile not found: neither the scan-profiles-v2 nor the changes path knows it; check the ids".to_owned(),
                message,
                request_id,
                retry_after,
            }),
            Err(error) => Err(error),
        }
    }

    /// The path profiles are fetched from now: `scan-profiles-v2` or
    /// `changes` (never `auto`).
    pub fn profile_path(&self) -> ProfileEndpoint {
        match self.endpoint {
            ProfileEndpoint::Auto
                if self.use_changes.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                ProfileEndpoint::Changes
            }
            ProfileEndpoint::Auto => ProfileEndpoint::ScanProfilesV2,
            explicit => explicit,
        }
    }

    /// Remember that `changes` is the path that answers; logged once.
    fn switch_to_changes(&self) {
        if !self
            .use_changes
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.metrics
                .set_profile_path(ProfileEndpoint::Changes.name());
            tracing::info!(
                "scan-profiles-v2 answered 404 where changes answered: using the changes path for every profile (avepoint.endpoint: auto)"
            );
        }
    }

    async fn fetch_profile(
        &self,
        path: ProfileEndpoint,
        target: &ProfileTarget,
        deadline: Instant,
    ) -> Result<ScanProfileReport, ApiError> {
        let url = self.url(&path.path(&target.customer_id, &target.profile_id));
        self.call_with_retry(
            ApiEndpoint::ScanProfile,
            &url,
            None,
            "a scan profile report",
            deadline,
        )
        .await
    }

    /// One page of `POST .../customers/batch` (all customers), retried once
    /// like [`ApiClient::scan_profile`] within the request timeout.
    pub async fn customers_page(
        &self,
        page_index: u32,
        page_size: u32,
    ) -> Result<Page<Customer>, ApiError> {
        let mut url = self.url("/partner/external/v3/general/customers/batch");
        set_page(&mut url, page_index, page_size);
        let deadline = Instant::now() + self.request_timeout;
        self.call_with_retry(
            ApiEndpoint::CustomersBatch,
            &url,
            Some(&serde_json::json!({})),
            "a page of customers",
            deadline,
        )
        .await
    }

    /// One page of `POST .../customers/{id}/scan-profiles/batch` (all
    /// profiles), retried like [`ApiClient::customers_page`].
    pub async fn scan_profiles_page(
        &self,
        customer_id: &str,
        page_index: u32,
        page_size: u32,
    ) -> Result<Page<ScanProfileSummary>, ApiError> {
        let mut url = self.url(&format!(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles/batch"
        ));
        set_page(&mut url, page_index, page_size);
        let deadline = Instant::now() + self.request_timeout;
        self.call_with_retry(
            ApiEndpoint::ScanProfilesBatch,
            &url,
            Some(&serde_json::json!({})),
            "a page of scan profiles",
            deadline,
        )
        .await
    }

    /// [`ApiClient::call_in_task`], and once more after a retryable failure
    /// if the wait fits before `deadline`.
    ///
    /// A 429 or 503 whose `Retry-After` does not fit starts a back-off
    /// instead: until it ends, calls fail at once without reaching AvePoint,
    /// so the next scrapes do not hammer an API that asked for a pause.
    pub(super) async fn call_with_retry<T: DeserializeOwned + Send + 'static>(
        &self,
        endpoint: ApiEndpoint,
        url: &Url,
        body: Option<&serde_json::Value>,
        what: &'static str,
        deadline: Instant,
    ) -> Result<T, ApiError> {
        self.check_backoff(endpoint)?;
        let error = match self.call_in_task(endpoint, url, body, what).await {
            Err(error) => error,
            ok => return ok,
        };
        let Some(delay) = retry_delay(&error) else {
            return Err(error);
        };
        if Instant::now() + delay >= deadline {
            self.start_backoff(&error, delay);
            return Err(error);
        }
        self.metrics.observe_retry(endpoint, &error.kind().label());
        tracing::debug!(url = %url, error = %error, ?delay, "retrying once");
        tokio::time::sleep(delay).await;
        self.check_backoff(endpoint)?;
        let result = self.call_in_task(endpoint, url, body, what).await;
        if let Err(error) = &result
            && let Some(delay) = retry_delay(error)
        {
            self.start_backoff(error, delay);
        }
        result
    }

    /// Take over `previous`'s back-off (a config reload builds a new
    /// client): AvePoint's request for a pause outlives our config.
    pub fn inherit_backoff(&self, previous: &ApiClient) {
        let inherited = *lock(&previous.backoff);
        *lock(&self.backoff) = inherited;
    }

    /// Fail fast while a back-off lasts.
    fn check_backoff(&self, endpoint: ApiEndpoint) -> Result<(), ApiError> {
        let backoff = *lock(&self.backoff);
        match backoff {
            Some((until, status)) if until > Instant::now() => {
                self.metrics.observe_backoff_skip(endpoint);
                Err(ApiError::BackingOff {
                    status,
                    remaining: until - Instant::now(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Remember a 429/503's `Retry-After` (only those ask for a pause; a
    /// plain 5xx or a dropped connection does not).
    fn start_backoff(&self, error: &ApiError, delay: Duration) {
        let ApiError::Status { status, .. } = error else {
            return;
        };
        if *status != StatusCode::TOO_MANY_REQUESTS && *status != StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        let until = Instant::now() + delay;
        let mut backoff = lock(&self.backoff);
        if backoff.is_none_or(|(current, _)| current < until) {
            *backoff = Some((until, *status));
            self.metrics.backoffs.inc();
            tracing::warn!(
                status = status.as_u16(),
                seconds = delay.as_secs_f64(),
                "AvePoint asked to back off; requests pause until then"
            );
        }
    }

    /// [`ApiClient::call`] in a task of its own, which holds a concurrency
    /// permit from before the request is sent until it has ended.
    ///
    /// The caller's future may be dropped at any time: a scraper hangs up,
    /// a deadline passes. A request dropped mid-flight still costs AvePoint
    /// its work, so were the permit held by the caller's future, it would
    /// be released while AvePoint is still busy, and the next request would
    /// start beside it: `concurrency` would bound only the callers still
    /// waiting. In a task, the request runs to its end (within
    /// `request_timeout`) and the permit with it. A caller that leaves
    /// before the task got its permit costs nothing: nothing is sent.
    ///
    /// Every call needs a permit, across `/metrics` rounds, probes and
    /// discovery alike: `concurrency` bounds what AvePoint sees.
    async fn call_in_task<T>(
        &self,
        endpoint: ApiEndpoint,
        url: &Url,
        body: Option<&serde_json::Value>,
        what: &'static str,
    ) -> Result<T, ApiError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let client = self.clone();
        let (url, body) = (url.clone(), body.cloned());
        // Never sent on: dropped with this future, it tells a task still
        // waiting for its permit that nobody wants the answer.
        let (_waiting, mut caller_gone) = oneshot::channel::<std::convert::Infallible>();
        let task = tokio::spawn(async move {
            let permit = tokio::select! {
                // A caller already gone wins over a free permit: a fetch
                // polled once after its deadline must not send anything.
                biased;
                _ = &mut caller_gone => return None,
                permit = client.in_flight.acquire() => permit,
            };
            let result = client.call(endpoint, &url, body.as_ref(), what).await;
            drop(permit);
            Some(result)
        });
        match task.await {
            Ok(Some(result)) => result,
            // A bug in the call is a bug in the caller, as before.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down (the task was cancelled); the
            // task cannot give up on a caller that is still here.
            Ok(None) | Err(_) => Err(ApiError::Transport {
                message: "request cancelled: the exporter is shutting down".into(),
                timeout: false,
            }),
        }
    }

    /// One authorized call: GET, or POST with a JSON body; one token refresh
    /// and retry on 401; the body read within `max_response_bytes` and decoded.
    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: ApiEndpoint,
        url: &Url,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<T, ApiError> {
        let token = self.tokens.token().await?;
        let (response, token) = match self.send(endpoint, url, body, &token).await? {
            // The token may have been revoked or expired early: one fresh
            // token and one retry, never a loop.
            response if response.status() == StatusCode::UNAUTHORIZED => {
                self.tokens.invalidate(&token).await;
                let token = self.tokens.token().await?;
                let response = self.send(endpoint, url, body, &token).await?;
                if response.status() == StatusCode::UNAUTHORIZED {
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
            return Err(self
                .status_error(endpoint, response, request_id, &token)
                .await);
        }
        let body = read_body_limited(response, self.max_response_bytes)
            .await
            .map_err(|error| match error {
                // A connection that breaks mid-body is a transport failure,
                // retried like one.
                BodyError::Read(message) => ApiError::Transport {
                    message,
                    timeout: false,
                },
                too_large => ApiError::Decode {
                    message: too_large.to_string(),
                    request_id: request_id.clone(),
                },
            })?;
        serde_json::from_slice(&body).map_err(|error| ApiError::Decode {
            message: format!("not {what}: {error}"),
            request_id,
        })
    }

    async fn send(
        &self,
        endpoint: ApiEndpoint,
        url: &Url,
        body: Option<&serde_json::Value>,
        token: &AccessToken,
    ) -> Result<Response, ApiError> {
        if let Some(limiter) = &self.rate_limit {
            limiter.acquire().await;
        }
        let started = Instant::now();
        let request = match body {
            Some(body) => self.http.post(url.clone()).json(body),
            None => self.http.get(url.clone()),
        };
        let result = request
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let status = result.as_ref().ok().map(Response::status);
        self.metrics
            .observe_request(endpoint, status, started.elapsed());
        result.map_err(|error| ApiError::Transport {
            message: error_chain(&error),
            timeout: error.is_timeout(),
        })
    }

    async fn status_error(
        &self,
        endpoint: ApiEndpoint,
        response: Response,
        request_id: Option<String>,
        token: &AccessToken,
    ) -> ApiError {
        let status = response.status();
        let location = status.is_redirection().then(|| redirect_target(&response));
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let message = read_body_limited(response, 64 * 1024)
            .await
            .ok()
            .and_then(|body| serde_json::from_slice::<ApiErrorBody>(&body).ok())
            .and_then(|body| body.message)
            // A proxy may echo the request back: never let our token out.
            .map(|message| sanitize(&message, token.expose()));
        let hint = match status {
            StatusCode::UNAUTHORIZED => {
                "the API rejected a freshly issued token; check the app registration".to_owned()
            }
            StatusCode::FORBIDDEN => format!(
                "the app registration lacks the permission {}; grant it in Elements > API app registration",
                match endpoint {
                    ApiEndpoint::CustomersBatch => crate::config::CUSTOMERS_SCOPE,
                    ApiEndpoint::BackupJobsBatch => crate::config::BACKUP_JOBS_SCOPE,
                    ApiEndpoint::BackupCoverage => crate::config::BACKUP_COVERAGE_SCOPE,
                    _ => crate::config::SCAN_PROFILES_SCOPE,
                }
            ),
            StatusCode::NOT_FOUND if endpoint != ApiEndpoint::ScanProfile => {
                "customer not found".to_owned()
            }
            StatusCode::NOT_FOUND => format!(
                "customer or scan profile not found on the {} endpoint; check the ids, or try `avepoint.endpoint: {}`",
                self.endpoint.name(),
                self.endpoint.other().name()
            ),
            _ if status.is_redirection() => format!(
                "a redirect to {}, not followed: AvePoint's API does not redirect; check avepoint.base_url and any proxy in between",
                location.as_deref().unwrap_or("no Location")
            ),
            StatusCode::TOO_MANY_REQUESTS => match retry_after {
                Some(wait) => format!("rate limited by AvePoint, retry after {}s", wait.as_secs()),
                None => "rate limited by AvePoint".to_owned(),
            },
            status if status.is_server_error() => "AvePoint server error".to_owned(),
            _ => "unexpected status".to_owned(),
        };
        ApiError::Status {
            status,
            hint,
            message,
            request_id,
            retry_after,
        }
    }

    pub(super) fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        url
    }
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

pub(super) fn set_page(url: &mut Url, page_index: u32, page_size: u32) {
    url.query_pairs_mut()
        .append_pair("pageIndex", &page_index.to_string())
        .append_pair("pageSize", &page_size.to_string());
}

fn request_id(response: &Response) -> Option<String> {
    response
        .headers()
        .get("request-id")
        .and_then(|value| value.to_str().ok())
        .map(|value| sanitize(value, ""))
}
