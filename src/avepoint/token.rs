//! OAuth2 client credentials: one cached token shared by every request.
//!
//! The app authenticates with a client secret or with a certificate: a JWT
//! `client_assertion` signed RS256 with the certificate's private key
//! (RFC 7523), see `config::Credential` and `docs/certificate-auth.md`.
//!
//! The token's scope is every permission the enabled collectors need; when
//! the token endpoint refuses one of them (`invalid_scope` refuses the whole
//! request), the token holds the others and the calls needing a refused one
//! fail alone, without being sent (`permissions.rs`).
//!
//! The cache sits behind an async mutex that is held while a token is being
//! fetched, so any number of concurrent callers cause exactly one token
//! refresh (single flight) and all of them get its result.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use url::Url;

use super::certificate::CLIENT_ASSERTION_TYPE;
use super::endpoint::ApiEndpoint;
use super::http::{error_chain, read_body_limited, redirect_target};
use super::instrumentation::ApiMetrics;
use super::permissions::{Negotiated, negotiate, scope_items};
use super::scrub::{json_error_text, scrub};
use super::token_response::{AuthError, OAuthError, TokenResponse};
use crate::config::{AvePointSettings, Credential};
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

/// A bearer token. `Debug` never shows it; compare with [`AccessToken::same_as`].
#[derive(Clone, Debug)]
pub struct AccessToken(Arc<Issued>);

#[derive(Debug)]
struct Issued {
    secret: SecretString,
    /// `Bearer <token>`, built once per token rather than for every call;
    /// marked sensitive, so its `Debug` reads `Sensitive` and HTTP/2 keeps
    /// it out of hpack's tables. `None` for a token that is no valid
    /// header value.
    authorization: Option<HeaderValue>,
}

impl AccessToken {
    fn new(raw: String) -> Self {
        let authorization = HeaderValue::try_from(format!("Bearer {raw}"))
            .ok()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        AccessToken(Arc::new(Issued {
            secret: SecretString::from(raw),
            authorization,
        }))
    }

    /// The raw token, to scrub it from what AvePoint sends back.
    pub fn expose(&self) -> &str {
        self.0.secret.expose_secret()
    }

    /// The `Authorization` header that carries it; `None` when the token
    /// cannot be one (AvePoint sent control characters).
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.0.authorization.as_ref()
    }

    /// Whether both handles are the very same issued token.
    pub fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
    /// Permissions asked for and not granted with this token.
    missing: Arc<[String]>,
}

/// While a permission is missing, the token is refreshed at least this
/// often, so a permission granted later is used without a restart.
const MISSING_RECHECK: Duration = Duration::from_secs(600);

/// Fetches, caches and refreshes the OAuth2 access token.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    credential: Credential,
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
        let credential = settings.credential.clone();
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
        self.cached_or_fresh().await.map(|(token, _)| token)
    }

    /// A valid token for a call to `endpoint`, or, when the token endpoint
    /// refused the permission that call needs, [`AuthError::PermissionMissing`]
    /// (the call is not sent: AvePoint would answer 403).
    pub async fn token_for(&self, endpoint: ApiEndpoint) -> Result<AccessToken, AuthError> {
        let needed = endpoint.permission();
        let lacking =
            |missing: &[String]| needed.filter(|needed| missing.iter().any(|m| m == needed));
        match self.cached_or_fresh().await {
            Ok((token, missing)) => match lacking(&missing) {
                Some(permission) => Err(AuthError::PermissionMissing {
                    permission: permission.to_owned(),
                }),
                None => Ok(token),
            },
            Err(AuthError::NotGranted { missing }) => Err(match lacking(&missing) {
                Some(permission) => AuthError::PermissionMissing {
                    permission: permission.to_owned(),
                },
                None => AuthError::NotGranted { missing },
            }),
            Err(error) => Err(error),
        }
    }

    async fn cached_or_fresh(&self) -> Result<(AccessToken, Arc<[String]>), AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok((cached.token.clone(), Arc::clone(&cached.missing)));
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
                let answer = (fresh.token.clone(), Arc::clone(&fresh.missing));
                *cache = Some(fresh);
                Ok(answer)
            }
            Err(error) => {
                let pause = match error {
                    AuthError::Rejected { .. }
                    | AuthError::NotGranted { .. }
                    | AuthError::InvalidScope { .. } => AUTH_BACKOFF,
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

    /// A token for every asked permission the app holds ([`negotiate`]);
    /// the ones it lacks are logged (once per refresh) and exported.
    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let asked = scope_items(&self.scope);
        let negotiated = negotiate(
            &asked,
            |scope| self.request(scope),
            |error| matches!(error, AuthError::InvalidScope { .. }),
        )
        .await
        // No token, no grants to show: a refused credential must not
        // look like a refused permission (the auth alert tells them apart).
        .inspect_err(|_| self.metrics.set_granted_permissions(&[], &[]))?;
        let (fresh, missing) = match negotiated {
            Negotiated::Granted {
                token: (parsed, started),
                missing,
            } => (Some((parsed, started)), missing),
            Negotiated::NoneGranted { missing } => (None, missing),
        };
        self.metrics.set_granted_permissions(&asked, &missing);
        if !missing.is_empty() {
            let list = missing.join(", ");
            tracing::warn!(
                missing_permissions = %list,
                "the app registration lacks {list}: the collectors that need it are down, the others work; grant it in Elements > API app registration (asked again at every token refresh)"
            );
        }
        match fresh {
            Some((parsed, started)) => self.accept(parsed, started, missing),
            None => Err(AuthError::NotGranted { missing }),
        }
    }

    /// One token request for `scope`, start to end: the decoded response,
    /// its `scope` and when the request started. Upstream text in the
    /// errors is scrubbed of what authenticated it.
    async fn request(
        &self,
        scope: String,
    ) -> Result<((TokenResponse, Instant), Option<String>), AuthError> {
        let started = Instant::now();
        let sent = self.credential_value()?;
        let scrub = |text: &str| scrub(text, sent.expose_secret());
        let (status, body) = self
            .post(&sent, &scope, started)
            .await
            .map_err(|e| match e {
                AuthError::Transport(message) => AuthError::Transport(scrub(&message)),
                other => other,
            })?;
        if !status.is_success() {
            if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
                let oauth: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
                let description = oauth.error_description.map(|text| scrub(&text));
                if oauth.error.as_deref() == Some("invalid_scope") {
                    return Err(AuthError::InvalidScope { description });
                }
                return Err(AuthError::Rejected {
                    status,
                    check: what_to_check(&self.credential),
                    error: oauth.error.map(|text| scrub(&text)),
                    description,
                });
            }
            return Err(AuthError::Status { status });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|error| AuthError::InvalidResponse(json_error_text(&error, None)))?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::InvalidResponse("empty access_token".into()));
        }
        let granted = parsed.scope.clone();
        Ok(((parsed, started), granted))
    }

    /// What authenticates one token request: the secret, or a fresh
    /// assertion (each carries its own jti, so it is never reused).
    fn credential_value(&self) -> Result<SecretString, AuthError> {
        match &self.credential {
            Credential::Secret(secret) => Ok(secret.clone()),
            Credential::Certificate(certificate) => certificate
                .client_assertion(&self.client_id, self.token_url.as_str(), SystemTime::now())
                .map_err(|_| AuthError::Signing),
        }
    }

    /// POST the token request form; the status and the (bounded) body.
    /// Transport errors are returned unscrubbed: [`TokenSource::fetch`] scrubs.
    async fn post(
        &self,
        sent: &SecretString,
        scope: &str,
        started: Instant,
    ) -> Result<(StatusCode, Vec<u8>), AuthError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
        ];
        match &self.credential {
            Credential::Secret(_) => form.push(("client_secret", sent.expose_secret())),
            Credential::Certificate(_) => {
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                form.push(("client_assertion", sent.expose_secret()));
            }
        }
        form.push(("scope", scope));
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
                    .observe_request(ApiEndpoint::TOKEN, None, started.elapsed());
                return Err(AuthError::Transport(error_chain(&error)));
            }
        };
        let status = response.status();
        if status.is_redirection() {
            self.metrics
                .observe_request(ApiEndpoint::TOKEN, Some(status), started.elapsed());
            return Err(AuthError::Redirect {
                status,
                location: redirect_target(&response),
            });
        }
        let body = read_body_limited(response, MAX_TOKEN_BODY).await;
        self.metrics
            .observe_request(ApiEndpoint::TOKEN, Some(status), started.elapsed());
        let body = body.map_err(|error| AuthError::Transport(error.to_string()))?;
        Ok((status, body))
    }

    /// Turn the token response into the cache entry, and note the refresh
    /// in the metrics.
    fn accept(
        &self,
        parsed: TokenResponse,
        started: Instant,
        missing: Vec<String>,
    ) -> Result<CachedToken, AuthError> {
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
            credential = credential_kind(&self.credential),
            lifetime_seconds = lifetime.as_secs(),
            granted_scope = parsed.scope.as_deref().unwrap_or(""),
            "fetched a new access token"
        );
        let mut refresh_at = started + lifetime - margin;
        if !missing.is_empty() {
            refresh_at = refresh_at.min(started + MISSING_RECHECK);
        }
        Ok(CachedToken {
            token: AccessToken::new(parsed.access_token),
            refresh_at,
            missing: missing.into(),
        })
    }
}

/// `client_secret` or `certificate`, for logs.
fn credential_kind(credential: &Credential) -> &'static str {
    match credential {
        Credential::Secret(_) => "client_secret",
        Credential::Certificate(_) => "certificate",
    }
}

/// The config keys to check when the token endpoint says no.
fn what_to_check(credential: &Credential) -> &'static str {
    match credential {
        Credential::Secret(_) => "the client secret",
        Credential::Certificate(_) => {
            "that the certificate in avepoint.client_certificate_file is uploaded to the app registration"
        }
    }
}
