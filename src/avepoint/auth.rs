//! OAuth2 client credentials: one cached token shared by every request.
//!
//! The app authenticates with a client secret or with a certificate: a JWT
//! `client_assertion` signed RS256 with the certificate's private key
//! (RFC 7523), see [`ClientCertificate`] and `docs/certificate-auth.md`.
//!
//! The cache sits behind an async mutex that is held while a token is being
//! fetched, so any number of concurrent callers cause exactly one token
//! request (single flight) and all of them get its result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use url::Url;

use super::client::{error_chain, read_body_limited, sanitize};
use super::model::{OAuthError, TokenResponse};
use crate::metrics::{ApiEndpoint, ApiMetrics};

/// A failed token fetch is reported to callers this long before the
/// endpoint is asked again.
const FAILURE_TTL: Duration = Duration::from_secs(5);
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
    /// The last failed fetch, served to callers for [`FAILURE_TTL`] so a
    /// rejected credential costs one token request, not one per caller.
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
    /// A token source for one app registration.
    pub fn new(
        http: reqwest::Client,
        token_url: Url,
        client_id: String,
        credential: ClientCredential,
        scope: String,
        metrics: ApiMetrics,
    ) -> Self {
        Self {
            http,
            token_url,
            client_id,
            credential,
            scope,
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
            let failure = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, error)) = failure.as_ref()
                && at.elapsed() < FAILURE_TTL
            {
                return Err(error.clone());
            }
        }
        match self.fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *cache = Some(fresh);
                Ok(token)
            }
            Err(error) => {
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), error.clone()));
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

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        let started = Instant::now();
        // What authenticates this request: the secret, or a fresh assertion
        // (each carries its own jti, so it is never reused). Upstream text
        // is scrubbed of it.
        let sent = match &self.credential {
            ClientCredential::Secret(secret) => secret.clone(),
            ClientCredential::Certificate(certificate) => certificate
                .client_assertion(&self.client_id, self.token_url.as_str(), SystemTime::now())
                .map_err(|_| AuthError::Signing)?,
        };
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
        let scrub = |text: &str| sanitize(text, sent.expose_secret());
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
                return Err(AuthError::Transport(scrub(&error_chain(&error))));
            }
        };
        let status = response.status();
        let body = read_body_limited(response, MAX_TOKEN_BODY).await;
        self.metrics
            .observe_request(ApiEndpoint::Token, Some(status), started.elapsed());
        let body = body.map_err(|error| AuthError::Transport(scrub(&error.to_string())))?;

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

        let parsed: TokenResponse = serde_json::from_slice(&body)
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

/// `client_assertion_type` of the certificate credential (RFC 7523).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid (`exp` - `iat`).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// How far `nbf` lies before `iat`, for clocks a little ahead of ours.
pub const ASSERTION_CLOCK_SKEW: Duration = Duration::from_secs(60);

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

/// Why the certificate credential cannot be loaded. Messages name the file,
/// never its content.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The certificate file (`avepoint.client_certificate_file`) is unusable.
    #[error("{0}")]
    Certificate(String),
    /// The private key file (`avepoint.client_private_key_file`) is unusable
    /// or does not belong to the certificate.
    #[error("{0}")]
    PrivateKey(String),
}

/// A certificate and its RSA private key, checked to belong together, that
/// sign client assertions. `Debug` shows the files and the thumbprint, never
/// the key.
#[derive(Clone)]
pub struct ClientCertificate {
    certificate_file: PathBuf,
    private_key_file: PathBuf,
    certificate: CertificateDer<'static>,
    sha1: [u8; 20],
    key: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("certificate_file", &self.certificate_file)
            .field("thumbprint", &self.thumbprint())
            .field("private_key_file", &self.private_key_file)
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

/// DER object identifiers of private key algorithms, to name a wrong one.
const KEY_ALGORITHMS: &[(&[u8], &str)] = &[
    (
        &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        "an EC (ECDSA) key",
    ),
    (&[0x06, 0x03, 0x2b, 0x65, 0x70], "an Ed25519 key"),
    (&[0x06, 0x03, 0x2b, 0x65, 0x71], "an Ed448 key"),
    (
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
        ],
        "an RSASSA-PSS key (rsaEncryption is needed for RS256)",
    ),
];

fn not_rsa(file: &Path, what: &str) -> CertificateError {
    CertificateError::PrivateKey(format!(
        "{} holds {what}, not an RSA key: client assertions are signed RS256, which needs an RSA key of 2048 bits or more",
        file.display()
    ))
}

impl ClientCertificate {
    /// Read a PEM certificate and its PEM private key (PKCS#8 `PRIVATE KEY`
    /// or PKCS#1 `RSA PRIVATE KEY`, unencrypted), and check that the key is
    /// RSA and belongs to the certificate. Both may be the same file.
    pub fn load(
        certificate_file: &Path,
        private_key_file: &Path,
    ) -> Result<Self, CertificateError> {
        let cert_error = |message: String| CertificateError::Certificate(message);
        let key_error = |message: String| CertificateError::PrivateKey(message);
        let cert_name = certificate_file.display();
        let key_name = private_key_file.display();

        let pem = std::fs::read(certificate_file)
            .map_err(|error| cert_error(format!("cannot read {cert_name}: {error}")))?;
        let certificate = CertificateDer::from_pem_slice(&pem).map_err(|error| {
            cert_error(format!(
                "{cert_name} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {}",
                pem_problem(&error)
            ))
        })?;
        let parsed = webpki::EndEntityCert::try_from(&certificate).map_err(|error| {
            cert_error(format!(
                "{cert_name}: the certificate cannot be parsed: {error}"
            ))
        })?;

        let pem = secrecy::SecretSlice::from(
            std::fs::read(private_key_file)
                .map_err(|error| key_error(format!("cannot read {key_name}: {error}")))?,
        );
        let mut der = match PrivateKeyDer::from_pem_slice(pem.expose_secret()) {
            Ok(der) => der,
            Err(rustls_pki_types::pem::Error::NoItemsFound)
                if pem
                    .expose_secret()
                    .windows(b"ENCRYPTED PRIVATE KEY".len())
                    .any(|w| w == b"ENCRYPTED PRIVATE KEY") =>
            {
                return Err(key_error(format!(
                    "{key_name} holds an encrypted private key, which the exporter cannot decrypt: \
                     store it unencrypted (openssl pkey -in encrypted.pem -out key.pem) in a file only the exporter can read"
                )));
            }
            Err(error) => {
                return Err(key_error(format!(
                    "{key_name} holds no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----): {}",
                    pem_problem(&error)
                )));
            }
        };
        let key = match &der {
            PrivateKeyDer::Pkcs8(der) => {
                RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|rejected| {
                    let der = der.secret_pkcs8_der();
                    let head = &der[..der.len().min(32)];
                    match KEY_ALGORITHMS
                        .iter()
                        .find(|(oid, _)| head.windows(oid.len()).any(|w| w == *oid))
                    {
                        Some((_, what)) => not_rsa(private_key_file, what),
                        None => rsa_rejected(private_key_file, rejected),
                    }
                })
            }
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der())
                .map_err(|rejected| rsa_rejected(private_key_file, rejected)),
            PrivateKeyDer::Sec1(_) => Err(not_rsa(
                private_key_file,
                "an EC key (-----BEGIN EC PRIVATE KEY-----)",
            )),
            _ => Err(not_rsa(private_key_file, "a key of an unknown kind")),
        };
        // The PEM text is wiped when `pem` drops; wipe the decoded copy too.
        der.zeroize();
        let key = key?;

        // The key must belong to the certificate: sign a probe, verify it
        // with the certificate's public key.
        let probe = b"avepoint-exporter: does this key belong to the certificate?";
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            probe,
            &mut signature,
        )
        .map_err(|_| key_error(format!("{key_name}: signing with the key failed")))?;
        match parsed.verify_signature(
            webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
            probe,
            &signature,
        ) {
            Ok(()) => {}
            Err(webpki::Error::InvalidSignatureForPublicKey) => {
                return Err(key_error(format!(
                    "{key_name} is not the private key of the certificate in {cert_name}"
                )));
            }
            Err(_) => {
                return Err(cert_error(format!(
                    "{cert_name}: the certificate's public key is not an RSA key: \
                     client assertions are signed RS256 and need an RSA certificate"
                )));
            }
        }

        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &certificate);
        let mut sha1 = [0; 20];
        sha1.copy_from_slice(digest.as_ref());
        Ok(Self {
            certificate_file: certificate_file.to_owned(),
            private_key_file: private_key_file.to_owned(),
            certificate,
            sha1,
            key: Arc::new(key),
        })
    }

    /// The certificate file it was loaded from.
    pub fn certificate_file(&self) -> &Path {
        &self.certificate_file
    }

    /// The private key file it was loaded from.
    pub fn private_key_file(&self) -> &Path {
        &self.private_key_file
    }

    /// The certificate (DER).
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// SHA-1 thumbprint of the certificate's DER in upper-case hex, as the
    /// Elements portal and Windows show it; sent as the JWT header `kid`.
    pub fn thumbprint(&self) -> String {
        self.sha1.iter().map(|byte| format!("{byte:02X}")).collect()
    }

    /// base64url (unpadded) of the SHA-1 thumbprint; the JWT header `x5t`.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha1)
    }

    /// A client assertion for one token request at `now`: a JWT with header
    /// `alg` RS256, `typ` JWT, `kid` (hex thumbprint), `x5t`, and claims
    /// `iss` = `sub` = `client_id`, `aud` = `audience` (the token URL), a
    /// random `jti`, `iat` = now, `nbf` = now - 60 s, `exp` = now + 5 min.
    pub fn client_assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<SecretString, aws_lc_rs::error::Unspecified> {
        let unix = |at: SystemTime| {
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        };
        let mut jti = [0; 16];
        aws_lc_rs::rand::fill(&mut jti)?;
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "kid": self.thumbprint(),
            "x5t": self.x5t(),
        });
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": uuid::Builder::from_random_bytes(jti).into_uuid().to_string(),
            "iat": unix(now),
            "nbf": unix(now - ASSERTION_CLOCK_SKEW),
            "exp": unix(now + ASSERTION_LIFETIME),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// What is wrong with a PEM file, without quoting any of it.
fn pem_problem(error: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error;
    match error {
        Error::NoItemsFound => "none found",
        Error::MissingSectionEnd { .. } => "a section has no -----END line",
        Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        Error::Base64Decode(_) => "a section is not valid base64",
        Error::SectionTooLarge => "a section is too large",
        _ => "the file is not valid PEM",
    }
}

fn rsa_rejected(file: &Path, rejected: aws_lc_rs::error::KeyRejected) -> CertificateError {
    let why = match rejected.to_string().as_str() {
        "TooSmall" => "it is smaller than 2048 bits".to_owned(),
        "TooLarge" => "it is larger than 8192 bits".to_owned(),
        other => format!("it is not a valid RSA private key ({other})"),
    };
    CertificateError::PrivateKey(format!(
        "{} cannot be used to sign client assertions: {why}",
        file.display()
    ))
}
