//! What a token request ends in: the token endpoint's success and error
//! bodies, and [`AuthError`], why no token could be had.
//!
//! Apart from the token source (`token.rs`) so that the errors every caller
//! matches on are read without the cache's locking around them.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// OAuth2 token endpoint success body.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The bearer token. Never logged: this type has a redacting `Debug`.
    pub access_token: String,
    /// Lifetime in seconds (documented as 3600).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Usually `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// The permissions actually granted.
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<secret>")
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish()
    }
}

/// OAuth2 error body (`{"error": "invalid_client", "error_description": ...}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OAuthError {
    /// Machine-readable error code such as `invalid_client`.
    #[serde(default)]
    pub error: Option<String>,
    /// Optional human text.
    #[serde(default)]
    pub error_description: Option<String>,
}

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
    /// The token endpoint refused the scope (`invalid_scope`) in a way
    /// asking for each permission alone could not narrow down.
    #[error(
        "token endpoint refused the requested scope (invalid_scope{}): the app registration lacks a permission in avepoint.scope; grant it in Elements > API app registration",
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    InvalidScope {
        /// OAuth error description, scrubbed.
        description: Option<String>,
    },
    /// The token endpoint refused this permission (or left it out of the
    /// granted scope): the calls that need it are not sent.
    #[error("the app registration lacks {permission}; grant it in Elements > API app registration")]
    PermissionMissing {
        /// The permission, such as `elements.jobs.read.all`.
        permission: String,
    },
    /// The token endpoint refused every permission asked for: no token.
    #[error(
        "the app registration lacks every permission asked for ({}); grant them in Elements > API app registration",
        .missing.join(", ")
    )]
    NotGranted {
        /// The permissions asked for.
        missing: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_hides_the_token() {
        let token = TokenResponse {
            access_token: "very-secret-token".into(),
            expires_in: Some(3600),
            token_type: None,
            scope: None,
        };
        assert!(!format!("{token:?}").contains("very-secret-token"));
    }
}
