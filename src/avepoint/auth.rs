//! OAuth2 client credentials: one cached token shared by every request.
//!
//! The app authenticates with a client secret or with a certificate: a JWT
//! `client_assertion` signed RS256 with the certificate's private key
//! (RFC 7523), see [`ClientCertificate`] and `docs/certificate-auth.md`.
//!
//! The cache sits behind an async mutex that is held while a token is being
//! fetched, so any number of concurrent callers cause exactly one token
//! request (single flight) and all of them get its result.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use url::Url;

use super::certificate::{CLIENT_ASSERTION_TYPE, ClientCertificate};
use super::http::{error_chain, read_body_limited, redirect_target, sanitize};
use super::instrumentation::{ApiEndpoint, ApiMetrics};
use super::model::{OAuthError, TokenResponse};
use crate::config::AvePointSettings;
use crate::sync::lock;

/// A failed token fetch is reported to callers this long before the
/// endpoint is asked again.
const FAILURE_TTL: Duration = Duration::from_secs(5);
/// After the credentials are refused, or the API refuses a token issued a
/// moment ago, no token is requested for this long: that failure lasts
/// until someone changes the app registration or the config, and asking
/// more often only floods the identity service (and its audit log).
pub const AUTH_BACKOFF: Duration = Duration::from_secs(60);
/// Longest token lifetime believed, whatever `expires_in` says.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);
/// Token lifetime assumed when the server does not send `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry, at most; short-lived tokens refresh at 90% of their life.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Token responses are small; anything larger is not a token response.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint refused the credentials (wrong id, secret or
    /// certificate, app disabled).
    #[error(
        "token endpoint rejected the client credentials (HTTP {status}{}): check avepoint.client_id and {}",
        oauth_detail(.error, .description),
        .check
    )]
    Rejected {
        /// HTTP status of the token response.
        status: StatusCode,
        /// What to check besides the client id: the secret or the certificate.
        check: &'static str,
        /// OAuth error code such as `invalid_client`.
        error: Option<String>,
        /// OAuth error description.
        description: Option<String>,
    },
    /// Any other non-success status.
    #[error("token endpoint answered HTTP {status}")]
    Status {
        /// HTTP status of the token response.
        status: StatusCode,
    },
    /// No HTTP answer (connection refused, TLS, timeout).
    #[error("token request failed: {0}")]
    Transport(String),
    /// A 200 whose body is not a token response.
    #[error("token endpoint sent an invalid response: {0}")]
    InvalidResponse(String),
    /// The client assertion could not be signed (not sent).
    #[error("cannot sign the client assertion with avepoint.client_private_key_file")]
    Signing,
    /// The token endpoint answered with a redirect, which is not followed:
    /// it would re-send the credentials to wherever it points.
    #[error(
        "token endpoint answered HTTP {status}, a redirect to {location}: not followed, so the credentials are not sent there; check avepoint.token_url"
    )]
    Redirect {
        /// HTTP status of the token response.
        status: StatusCode,
        /// Host (and port) the redirect pointed at, or `no Location`.
        location: String,
    },
    /// The API refused a token the token endpoint had just issued: the app
    /// registration lacks access to the API (or the API is misconfigured).
    /// No token is requested until the pause ends.
    #[error(
        "the API rejected a freshly issued token; no new token is requested for {}s: check the app registration of avepoint.client_id in Elements",
        remaining.as_secs_f64().ceil()
    )]
    ApiRejected {
        /// How long the pause in token requests still lasts.
        remaining: Duration,
    },
}

fn oauth_detail(error: &Option<String>, description: &Option<String>) -> String {
    match (error, description) {
        (Some(error), Some(description)) => format!(", {error}: {description}"),
        (Some(error), None) => format!(", {error}"),
        (None, Some(description)) => format!(", {description}"),
        (None, None) => String::new(),
    }
}

/// A bearer token. `Debug` never shows it; compare with [`AccessToken::same_as`].
#[derive(Clone, Debug)]
pub struct AccessToken(Arc<SecretString>);

impl AccessToken {
    /// The raw token, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether both handles are the very same issued token.
    pub fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

/// Fetches, caches and refreshes the OAuth2 access token.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    credential: ClientCredential,
    scope: String,
    metrics: ApiMetrics,
    cache: Mutex<Option<CachedToken>>,
    /// The last failure and until when it is served to callers instead of
    /// asking again, so a rejected credential costs one token request, not
    /// one per caller ([`FAILURE_TTL`], [`AUTH_BACKOFF`]).
    last_failure: std::sync::Mutex<Option<(Instant, AuthError)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source for the app registration of `settings`, sending
    /// its requests through `http`.
    pub fn new(http: reqwest::Client, settings: &AvePointSettings, metrics: ApiMetrics) -> Self {
        let credential = match &settings.client_certificate {
            Some(certificate) => ClientCredential::Certificate(certificate.clone()),
            None => ClientCredential::Secret(settings.client_secret.clone()),
        };
        Self {
            http,
            token_url: settings.token_url.clone(),
            client_id: settings.client_id.clone(),
            credential,
            scope: settings.scope.clone(),
            metrics,
            cache: Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// A valid token: the cached one, or a fresh one fetched once for all
    /// callers waiting at the same time.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        {
            let failure = lock(&self.last_failure);
            if let Some((until, error)) = failure.as_ref()
                && Instant::now() < *until
            {
                return Err(match error {
                    AuthError::ApiRejected { .. } => AuthError::ApiRejected {
                        remaining: until.saturating_duration_since(Instant::now()),
                    },
                    error => error.clone(),
                });
            }
        }
        match self.fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *cache = Some(fresh);
                Ok(token)
            }
            Err(error) => {
                let pause = match error {
                    AuthError::Rejected { .. } => AUTH_BACKOFF,
                    _ => FAILURE_TTL,
                };
                *lock(&self.last_failure) = Some((Instant::now() + pause, error.clone()));
                Err(error)
            }
        }
    }

    /// Drop `rejected` from the cache (the API answered 401 to it), so the
    /// next [`TokenSource::token`] fetches a new one. A token that was
    /// already replaced by another caller's refresh is left alone.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|cached| cached.token.same_as(rejected))
        {
            *cache = None;
        }
    }

    /// The API answered 401 to `rejected`, a token fetched for this very
    /// request after an earlier 401: more tokens will not help. Forget it,
    /// and fail every [`TokenSource::token`] for [`AUTH_BACKOFF`] without
    /// asking the token endpoint, so a persistent 401 costs at most one
    /// token request a minute, whatever the number of profiles.
    pub async fn api_rejected(&self, rejected: &AccessToken) {
        self.invalidate(rejected).await;
        let until = Instant::now() + AUTH_BACKOFF;
        let mut failure = lock(&self.last_failure);
        let already = failure.as_ref().is_some_and(|(at, error)| {
            matches!(error, AuthError::ApiRejected { .. }) && Instant::now() < *at
        });
        if already {
            return;
        }
        *failure = Some((
            until,
            AuthError::ApiRejected {
                remaining: AUTH_BACKOFF,
            },
        ));
        self.metrics.auth_backoffs.inc();
        tracing::warn!(
            pause_seconds = AUTH_BACKOFF.as_secs(),
            "the AvePoint API rejected a freshly issued token; pausing token requests (check the app registration)"
        );
    }

    /// One token request, start to end. Upstream text in the errors is
    /// scrubbed of what authenticated it.
    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let started = Instant::now();
        let sent = self.credential_value()?;
        let scrub = |text: &str| sanitize(text, sent.expose_secret());
        let (status, body) = self.post(&sent, started).await.map_err(|e| match e {
            AuthError::Transport(message) => AuthError::Transport(scrub(&message)),
            other => other,
        })?;
        if !status.is_success() {
            if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
                let oauth: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
                return Err(AuthError::Rejected {
                    status,
                    check: self.credential.what_to_check(),
                    error: oauth.error.map(|text| scrub(&text)),
                    description: oauth.error_description.map(|text| scrub(&text)),
                });
            }
            return Err(AuthError::Status { status });
        }
        self.accept(&body, started)
    }

    /// What authenticates one token request: the secret, or a fresh
    /// assertion (each carries its own jti, so it is never reused).
    fn credential_value(&self) -> Result<SecretString, AuthError> {
        match &self.credential {
            ClientCredential::Secret(secret) => Ok(secret.clone()),
            ClientCredential::Certificate(certificate) => certificate
                .client_assertion(&self.client_id, self.token_url.as_str(), SystemTime::now())
                .map_err(|_| AuthError::Signing),
        }
    }

    /// POST the token request form; the status and the (bounded) body.
    /// Transport errors are returned unscrubbed: [`TokenSource::fetch`] scrubs.
    async fn post(
        &self,
        sent: &SecretString,
        started: Instant,
    ) -> Result<(StatusCode, Vec<u8>), AuthError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
        ];
        match &self.credential {
            ClientCredential::Secret(_) => form.push(("client_secret", sent.expose_secret())),
            ClientCredential::Certificate(_) => {
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                form.push(("client_assertion", sent.expose_secret()));
            }
        }
        form.push(("scope", self.scope.as_str()));
        let response = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                self.metrics
                    .observe_request(ApiEndpoint::Token, None, started.elapsed());
                return Err(AuthError::Transport(error_chain(&error)));
            }
        };
        let status = response.status();
        if status.is_redirection() {
            self.metrics
                .observe_request(ApiEndpoint::Token, Some(status), started.elapsed());
            return Err(AuthError::Redirect {
                status,
                location: redirect_target(&response),
            });
        }
        let body = read_body_limited(response, MAX_TOKEN_BODY).await;
        self.metrics
            .observe_request(ApiEndpoint::Token, Some(status), started.elapsed());
        let body = body.map_err(|error| AuthError::Transport(error.to_string()))?;
        Ok((status, body))
    }

    /// Decode a successful token response into the cache entry, and note
    /// the refresh in the metrics.
    fn accept(&self, body: &[u8], started: Instant) -> Result<CachedToken, AuthError> {
        let parsed: TokenResponse = serde_json::from_slice(body)
            .map_err(|error| AuthError::InvalidResponse(error.to_string()))?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::InvalidResponse("empty access_token".into()));
        }
        // Capped: a huge expires_in would overflow the time arithmetic below.
        let lifetime = parsed
            .expires_in
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME)
            .min(MAX_LIFETIME);
        let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN);
        self.metrics.token_refreshes.inc();
        let expires_at = SystemTime::now() + lifetime;
        self.metrics.token_expiry.set(
            expires_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        tracing::debug!(
            credential = self.credential.kind(),
            lifetime_seconds = lifetime.as_secs(),
            granted_scope = parsed.scope.as_deref().unwrap_or(""),
            "fetched a new access token"
        );
        Ok(CachedToken {
            token: AccessToken(Arc::new(SecretString::from(parsed.access_token))),
            refresh_at: started + lifetime - margin,
        })
    }
}

/// How the app registration authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientCredential {
    /// `client_secret`.
    Secret(SecretString),
    /// `client_assertion`: a JWT signed with the certificate's private key.
    Certificate(ClientCertificate),
}

impl ClientCredential {
    /// `client_secret` or `certificate`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "client_secret",
            ClientCredential::Certificate(_) => "certificate",
        }
    }

    /// The config keys to check when the token endpoint says no.
    fn what_to_check(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "the client secret",
            ClientCredential::Certificate(_) => {
                "that the certificate in avepoint.client_certificate_file is uploaded to the app registration"
            }
        }
    }
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret([REDACTED])"),
            ClientCredential::Certificate(certificate) => {
                f.debug_tuple("Certificate").field(certificate).finish()
            }
        }
    }
}
