//! OAuth2 client credentials: one cached token shared by every request.
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

use super::client::{error_chain, read_body_limited, sanitize};
use super::model::{OAuthError, TokenResponse};
use crate::metrics::{ApiEndpoint, ApiMetrics};

/// Token lifetime assumed when the server does not send `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry, at most; short-lived tokens refresh at 90% of their life.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Token responses are small; anything larger is not a token response.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint refused the credentials (wrong id or secret, app disabled).
    #[error(
        "token endpoint rejected the client credentials (HTTP {status}{}): check avepoint.client_id and the client secret",
        oauth_detail(.error, .description)
    )]
    Rejected {
        /// HTTP status of the token response.
        status: StatusCode,
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
    client_secret: SecretString,
    scope: String,
    metrics: ApiMetrics,
    cache: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<secret>")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source for one app registration.
    pub fn new(
        http: reqwest::Client,
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        scope: String,
        metrics: ApiMetrics,
    ) -> Self {
        Self {
            http,
            token_url,
            client_id,
            client_secret,
            scope,
            metrics,
            cache: Mutex::new(None),
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
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
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

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let started = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("scope", self.scope.as_str()),
        ];
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
                return Err(AuthError::Transport(self.scrub(&error_chain(&error))));
            }
        };
        let status = response.status();
        let body = read_body_limited(response, MAX_TOKEN_BODY).await;
        self.metrics
            .observe_request(ApiEndpoint::Token, Some(status), started.elapsed());
        let body = body.map_err(|error| AuthError::Transport(self.scrub(&error.to_string())))?;

        if !status.is_success() {
            if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
                let oauth: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
                return Err(AuthError::Rejected {
                    status,
                    error: oauth.error.map(|text| self.scrub(&text)),
                    description: oauth.error_description.map(|text| self.scrub(&text)),
                });
            }
            return Err(AuthError::Status { status });
        }

        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|error| AuthError::InvalidResponse(error.to_string()))?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::InvalidResponse("empty access_token".into()));
        }
        let lifetime = parsed
            .expires_in
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
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
            lifetime_seconds = lifetime.as_secs(),
            granted_scope = parsed.scope.as_deref().unwrap_or(""),
            "fetched a new access token"
        );
        Ok(CachedToken {
            token: AccessToken(Arc::new(SecretString::from(parsed.access_token))),
            refresh_at: started + lifetime - margin,
        })
    }

    /// Upstream text is echoed into errors and logs; make sure it never
    /// carries our own secret back out.
    fn scrub(&self, text: &str) -> String {
        sanitize(text, self.client_secret.expose_secret())
    }
}
