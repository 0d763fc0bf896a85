//! `--web.config.file`: TLS, basic authentication and extra response headers,
//! in the Prometheus exporter-toolkit format
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>).
//!
//! The file is parsed strictly (unknown keys are errors naming the file and
//! the key) and checked completely, certificates included, at start. While
//! running, [`WebConfigHandle::current`] looks at the modification time of the
//! file and of the certificate files it names on every new connection and
//! request (a `stat` each) and reads them again when one changed, so
//! certificates rotate without a restart. A file that fails to load then is
//! logged once and the last good config stays in force.
//!
//! Secrets (bcrypt hashes, private keys) are never part of a `Debug` output
//! or a log line.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// The realm announced in `WWW-Authenticate`.
pub const REALM: &str = "avepoint-exporter";

/// Paths that stay open when `basic_auth_users` is set.
pub const UNAUTHENTICATED_PATHS: &[&str] = &["/-/healthy"];

/// Most successful (user, password) checks remembered, so a scrape every few
/// seconds does not cost a bcrypt verification each time.
const AUTH_CACHE_CAPACITY: usize = 1024;

/// Response headers that may be configured, with their allowed values (none:
/// any value). The same list as exporter-toolkit's, for consistency across
/// the Prometheus ecosystem.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Cipher suites by their Go (and IANA) names. TLS 1.3 suites are not
/// configurable, as in Go: naming one is allowed and changes nothing.
const TLS12_CIPHER_SUITES: &[(&str, rustls::CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];
const TLS13_CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// A web config error: always names the file and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("web config file {path}: cannot read it: {source}")]
    Read {
        /// The web config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key has a value that is not allowed, or a required key is missing.
    #[error("web config file {path}: {key}: {message}")]
    Invalid {
        /// The web config file.
        path: PathBuf,
        /// Dotted path of the offending key, e.g. `tls_server_config.cert_file`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<HashMap<String, SecretString>>,
    rate_limit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<SecretString>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<ClientAuth>,
    client_ca_file: Option<PathBuf>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<HashMap<String, String>>,
}

/// `tls_server_config.client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// One validated load of the web config file.
pub struct WebConfig {
    tls: Option<Arc<ServerConfig>>,
    users: HashMap<String, SecretString>,
    /// A bcrypt hash at the users' highest cost, checked against for unknown
    /// users so that the response time does not tell which users exist.
    dummy_hash: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    http2: bool,
    /// The files this config was read from: the web config file first, then
    /// the certificate, key and CA files.
    files: Vec<PathBuf>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &users)
            .field("password_hashes", &"<redacted>")
            .field("headers", &self.headers)
            .field("http2", &self.http2)
            .field("files", &self.files)
            .finish()
    }
}

impl WebConfig {
    /// Read, parse and check a web config file, reading the certificate files
    /// it names. Relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parse and check web config text; `path` names the file in messages
    /// and anchors relative paths.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, WebConfigError> {
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let raw: RawWebConfig = if text.trim().is_empty() {
            // An empty file is an empty mapping, as in Go.
            RawWebConfig {
                tls_server_config: None,
                http_server_config: None,
                basic_auth_users: None,
                rate_limit: None,
            }
        } else {
            crate::config::parse_yaml(text).map_err(|(key, message)| invalid(&key, message))?
        };
        if raw.rate_limit.is_some() {
            return Err(invalid(
                "rate_limit",
                "not supported by avepoint-exporter; limit request rates in a reverse proxy".into(),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut files = vec![path.to_owned()];

        let http = raw.http_server_config.unwrap_or(RawHttp {
            http2: None,
            headers: None,
        });
        let http2 = http.http2.unwrap_or(true);
        let mut headers = Vec::new();
        let mut configured: Vec<(String, String)> =
            http.headers.unwrap_or_default().into_iter().collect();
        configured.sort();
        for (name, value) in configured {
            let key = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) = ALLOWED_HEADERS
                .iter()
                .find(|(allowed, _)| allowed.eq_ignore_ascii_case(&name))
            else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(invalid(
                    &key,
                    format!(
                        "HTTP header {name:?} can not be configured; allowed: {}",
                        names.join(", ")
                    ),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(invalid(
                    &key,
                    format!(
                        "invalid value {value:?}; expected one of: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            let value = HeaderValue::from_str(&value)
                .map_err(|_| invalid(&key, format!("{value:?} is not a valid header value")))?;
            headers.push((HeaderName::from_static(lowercase(canonical)), value));
        }

        let users = raw.basic_auth_users.unwrap_or_default();
        let mut max_cost = None;
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(invalid(
                    &key,
                    "a user name must not contain ':' (HTTP basic authentication cannot send it)"
                        .into(),
                ));
            }
            let parts: bcrypt::HashParts = hash.expose_secret().parse().map_err(|_| {
                invalid(
                    &key,
                    "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost and 53 characters; \
                     see docs/web-config.md for how to make one)"
                        .into(),
                )
            })?;
            max_cost = max_cost.max(Some(parts.get_cost()));
        }
        let dummy_hash = match max_cost {
            Some(cost) => Some(
                bcrypt::hash("avepoint-exporter: not a password", cost)
                    .map_err(|error| invalid("basic_auth_users", error.to_string()))?,
            ),
            None => None,
        };

        let tls = match raw.tls_server_config {
            Some(tls) => build_tls(tls, dir, &mut files, &invalid, http2)?,
            None => None,
        };
        Ok(WebConfig {
            tls,
            users,
            dummy_hash,
            headers,
            http2,
            files,
        })
    }

    /// Whether connections are served over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The rustls server config, when TLS is enabled.
    pub fn tls_server_config(&self) -> Option<Arc<ServerConfig>> {
        self.tls.clone()
    }

    /// Whether HTTP/2 is offered (`http_server_config.http2`, default true).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Whether requests need basic authentication.
    pub fn auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }
}

fn lowercase(canonical: &'static str) -> &'static str {
    match canonical {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

fn build_tls(
    raw: RawTls,
    dir: &Path,
    files: &mut Vec<PathBuf>,
    invalid: &dyn Fn(&str, String) -> WebConfigError,
    http2: bool,
) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
    let key = |name: &str| format!("tls_server_config.{name}");
    let enabled = raw.cert.is_some()
        || raw.key.is_some()
        || raw.cert_file.is_some()
        || raw.key_file.is_some()
        || raw.client_ca.is_some()
        || raw.client_ca_file.is_some()
        || raw.client_auth_type.is_some()
        || raw.cipher_suites.is_some()
        || raw.curve_preferences.is_some()
        || raw.min_version.is_some()
        || raw.max_version.is_some()
        || raw.prefer_server_cipher_suites.is_some()
        || raw.client_allowed_sans.is_some();
    if !enabled {
        // An empty `tls_server_config:`, as in exporter-toolkit: plain HTTP.
        return Ok(None);
    }
    if raw.client_allowed_sans.is_some() {
        return Err(invalid(
            &key("client_allowed_sans"),
            "not supported by avepoint-exporter; issue client certificates from a dedicated \
             client_ca_file instead"
                .into(),
        ));
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();

    // Versions.
    for (name, version) in [
        ("min_version", raw.min_version),
        ("max_version", raw.max_version),
    ] {
        if let Some(version @ (TlsVersion::TLS10 | TlsVersion::TLS11)) = version {
            return Err(invalid(
                &key(name),
                format!(
                    "{version:?} is not supported: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13"
                ),
            ));
        }
    }
    let min = raw.min_version.unwrap_or(TlsVersion::TLS12);
    let max = raw.max_version.unwrap_or(TlsVersion::TLS13);
    if min > max {
        return Err(invalid(
            &key("max_version"),
            format!("{max:?} is below min_version {min:?}"),
        ));
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min <= TlsVersion::TLS12 && max >= TlsVersion::TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }

    // Cipher suites (TLS 1.2 only, as in Go) and curves.
    if let Some(names) = &raw.cipher_suites {
        let mut wanted = Vec::new();
        for name in names {
            if let Some((_, suite)) = TLS12_CIPHER_SUITES.iter().find(|(n, _)| n == name) {
                wanted.push(*suite);
            } else if !TLS13_CIPHER_SUITES.contains(&name.as_str()) {
                let supported: Vec<&str> = TLS12_CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
                return Err(invalid(
                    &key("cipher_suites"),
                    format!(
                        "{name:?} is unknown or not supported by rustls; supported: {}",
                        supported.join(", ")
                    ),
                ));
            }
        }
        // TLS 1.3 suites first (not configurable), then the listed TLS 1.2
        // suites in the order given.
        let all = std::mem::take(&mut provider.cipher_suites);
        provider.cipher_suites = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .chain(
                wanted
                    .iter()
                    .filter_map(|w| all.iter().find(|s| s.suite() == *w).copied()),
            )
            .collect();
    }
    if let Some(names) = &raw.curve_preferences {
        use rustls::crypto::aws_lc_rs::kx_group;
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for name in names {
            let group = match name.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                "X25519MLKEM768" => kx_group::X25519MLKEM768,
                "CurveP521" => {
                    return Err(invalid(
                        &key("curve_preferences"),
                        "CurveP521 is not supported by rustls; use X25519, CurveP256 or CurveP384"
                            .into(),
                    ));
                }
                other => {
                    return Err(invalid(
                        &key("curve_preferences"),
                        format!(
                            "unknown curve {other:?}; expected X25519, CurveP256, CurveP384 or X25519MLKEM768"
                        ),
                    ));
                }
            };
            groups.push(group);
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    // Certificate and key.
    let certificate = pem_source(
        raw.cert.as_deref().map(str::as_bytes),
        raw.cert_file.as_deref(),
        ("cert", "cert_file"),
        dir,
        files,
        invalid,
    )?;
    let private_key = {
        let inline = raw.key.as_ref().map(|k| k.expose_secret().as_bytes());
        pem_source(
            inline,
            raw.key_file.as_deref(),
            ("key", "key_file"),
            dir,
            files,
            invalid,
        )?
    };
    let (cert_key, certificate) = match certificate {
        Some(found) => found,
        None => {
            return Err(invalid(
                &key("cert_file"),
                "missing: set one of cert_file or cert".into(),
            ));
        }
    };
    let (key_key, private_key) = match private_key {
        Some(found) => found,
        None => {
            return Err(invalid(
                &key("key_file"),
                "missing: set one of key_file or key".into(),
            ));
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&certificate)
        .collect::<Result<_, _>>()
        .map_err(|error| invalid(&key(cert_key), format!("invalid PEM: {error}")))?;
    if chain.is_empty() {
        return Err(invalid(
            &key(cert_key),
            "no CERTIFICATE block found (expected PEM)".into(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&private_key).map_err(|_| {
        invalid(
            &key(key_key),
            "no private key found (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
                .into(),
        )
    })?;
    let certified =
        CertifiedKey::from_der(chain, private_key, &provider).map_err(|error| match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => invalid(
                &key(key_key),
                format!("the private key does not match the certificate in {cert_key}"),
            ),
            rustls::Error::General(_) => invalid(
                &key(key_key),
                "the private key could not be loaded (unsupported key type or invalid encoding)"
                    .into(),
            ),
            other => invalid(&key(cert_key), format!("unusable certificate: {other}")),
        })?;

    // Client certificates.
    let client_auth = raw.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
    let client_ca = pem_source(
        raw.client_ca.as_deref().map(str::as_bytes),
        raw.client_ca_file.as_deref(),
        ("client_ca", "client_ca_file"),
        dir,
        files,
        invalid,
    )?;
    let roots = match &client_ca {
        Some((ca_key, bytes)) => {
            let mut roots = RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
                .collect::<Result<_, _>>()
                .map_err(|error| invalid(&key(ca_key), format!("invalid PEM: {error}")))?;
            if certs.is_empty() {
                return Err(invalid(
                    &key(ca_key),
                    "no CERTIFICATE block found (expected PEM)".into(),
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|error| {
                    invalid(&key(ca_key), format!("unusable CA certificate: {error}"))
                })?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| {
            invalid(
                &key("cipher_suites"),
                format!("no usable TLS setup: {error}"),
            )
        })?;
    let needs_ca = |mode: &str| {
        invalid(
            &key("client_ca_file"),
            format!(
                "missing: client_auth_type {mode} verifies client certificates against client_ca_file (or client_ca)"
            ),
        )
    };
    let builder = match client_auth {
        ClientAuth::NoClientCert => {
            if let Some((ca_key, _)) = &client_ca {
                return Err(invalid(
                    &key(ca_key),
                    "set, but client_auth_type is NoClientCert: set client_auth_type to \
                     RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove it"
                        .into(),
                ));
            }
            builder.with_no_client_auth()
        }
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => builder
            .with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                provider: Arc::clone(&provider),
            })),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let roots = roots.ok_or_else(|| needs_ca(&format!("{client_auth:?}")))?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
            let verifier = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| invalid(&key("client_ca_file"), error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // `prefer_server_cipher_suites` is accepted and has no effect, as in Go
    // since 1.18: rustls picks by its own (server) order.
    config.ignore_client_order = true;
    Ok(Some(Arc::new(config)))
}

/// PEM bytes (no `Debug`: they may hold a private key).
struct PemBytes(Vec<u8>);

impl std::ops::Deref for PemBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The PEM text of an inline key (`cert`) or a file key (`cert_file`); at most one.
fn pem_source(
    inline: Option<&[u8]>,
    file: Option<&Path>,
    (inline_key, file_key): (&'static str, &'static str),
    dir: &Path,
    files: &mut Vec<PathBuf>,
    invalid: &dyn Fn(&str, String) -> WebConfigError,
) -> Result<Option<(&'static str, PemBytes)>, WebConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            &format!("tls_server_config.{file_key}"),
            format!("{file_key} and {inline_key} are mutually exclusive: set one"),
        )),
        (Some(text), None) => Ok(Some((inline_key, PemBytes(text.to_vec())))),
        (None, Some(file)) => {
            let file = dir.join(file);
            let bytes = std::fs::read(&file).map_err(|error| {
                invalid(
                    &format!("tls_server_config.{file_key}"),
                    format!("cannot read {}: {error}", file.display()),
                )
            })?;
            files.push(file);
            Ok(Some((file_key, PemBytes(bytes))))
        }
        (None, None) => Ok(None),
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: ask for a client
/// certificate, check that the client holds its key, but do not verify it
/// against any CA (Go's semantics).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What identifies a version of a file without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some((metadata.modified().ok()?, metadata.len(), inode))
}

struct Current {
    config: Arc<WebConfig>,
    stamps: Vec<Stamp>,
    /// The stamps of the last load that failed, so it is logged once.
    failed: Option<Vec<Stamp>>,
}

/// The web config in force, re-read when its files change.
pub struct WebConfigHandle {
    path: PathBuf,
    tls: bool,
    current: Mutex<Current>,
    auth: Authenticator,
}

impl fmt::Debug for WebConfigHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfigHandle")
            .field("path", &self.path)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl WebConfigHandle {
    /// Load the file (an error is fatal at start).
    pub fn load(path: &Path) -> Result<Arc<Self>, WebConfigError> {
        let config = WebConfig::load(path)?;
        let stamps = config.files.iter().map(|f| stamp(f)).collect();
        Ok(Arc::new(WebConfigHandle {
            path: path.to_owned(),
            tls: config.tls_enabled(),
            current: Mutex::new(Current {
                config: Arc::new(config),
                stamps,
                failed: None,
            }),
            auth: Authenticator::new(),
        }))
    }

    /// The web config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the listener serves TLS (fixed at start).
    pub fn tls_enabled(&self) -> bool {
        self.tls
    }

    /// The config in force: re-read first if the file or a certificate file
    /// changed since the last read. A failing re-read logs a warning (once
    /// per change) and keeps the last good config.
    pub fn current(&self) -> Arc<WebConfig> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let stamps: Vec<Stamp> = current.config.files.iter().map(|f| stamp(f)).collect();
        if stamps == current.stamps || current.failed.as_ref() == Some(&stamps) {
            return Arc::clone(&current.config);
        }
        let loaded = WebConfig::load(&self.path).and_then(|config| {
            if config.tls_enabled() == self.tls {
                Ok(config)
            } else {
                Err(WebConfigError::Invalid {
                    path: self.path.clone(),
                    key: "tls_server_config".into(),
                    message: "TLS cannot be turned on or off while running; restart the exporter"
                        .into(),
                })
            }
        });
        match loaded {
            Ok(config) => {
                // Stamps of the files as read (a file may have changed between
                // the check above and the read; then the next call reads again).
                current.stamps = config.files.iter().map(|f| stamp(f)).collect();
                current.failed = None;
                current.config = Arc::new(config);
                tracing::info!(file = %self.path.display(), "web config reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "web config reload failed; keeping the last good config");
                current.failed = Some(stamps);
            }
        }
        Arc::clone(&current.config)
    }
}

/// Basic authentication checks: bcrypt, a cache of successes, and a bound on
/// concurrent bcrypt work.
struct Authenticator {
    /// SHA-256 of (user, hash, password) of recent successful checks; never
    /// the password itself.
    cache: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt is deliberately slow: this many verifications at once.
    permits: Semaphore,
}

impl Authenticator {
    fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Authenticator {
            cache: Mutex::new(HashSet::new()),
            permits: Semaphore::new((cpus / 2).max(1)),
        }
    }

    async fn check(&self, config: &WebConfig, user: &str, password: &str) -> bool {
        let (hash, known) = match (config.users.get(user), &config.dummy_hash) {
            (Some(hash), _) => (hash.expose_secret().to_owned(), true),
            (None, Some(dummy)) => (dummy.clone(), false),
            (None, None) => return false,
        };
        let key = cache_key(user, &hash, password);
        if known
            && self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key)
        {
            return true;
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let password = SecretString::from(password);
        let matches = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose_secret(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = matches && known;
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= AUTH_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [user, hash, password] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

/// User and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Wrap `router` with basic authentication (when users are configured) and
/// the configured response headers, both from the config in force.
pub fn protect(router: Router, handle: Arc<WebConfigHandle>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(handle, guard))
}

async fn guard(
    State(handle): State<Arc<WebConfigHandle>>,
    request: Request,
    next: Next,
) -> Response {
    let config = handle.current();
    let open = !config.auth_enabled() || UNAUTHENTICATED_PATHS.contains(&request.uri().path());
    let allowed = open
        || match basic_credentials(request.headers()) {
            Some((user, password)) => handle.auth.check(&config, &user, &password).await,
            None => false,
        };
    let mut response = if allowed {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&format!("Basic realm=\"{REALM}\""))
                        .expect("the realm is a valid header value"),
                ),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
            ],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6b3BlbjpzZXNhbWU="),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".into(), "open:sesame".into()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn cache_keys_separate_fields() {
        assert_ne!(cache_key("ab", "h", "c"), cache_key("a", "h", "bc"));
    }

    #[test]
    fn debug_hides_hashes() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let config = WebConfig::from_yaml(
            &format!("basic_auth_users:\n  alice: '{hash}'\n"),
            Path::new("w.yml"),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(!debug.contains(&hash), "{debug}");
        assert!(!debug.contains("$2"), "{debug}");
    }
}
