//! The rustls [`ServerConfig`] for `tls_server_config`: protocol versions,
//! cipher suites and curves, the server certificate and key, and client
//! certificates (`client_auth_type` with Go's semantics, `client_ca_file`).
//! Certificates and keys come inline or from files; the files read are
//! recorded so that the handle can watch them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::tls_names::{TlsVersion, crypto_provider, protocol_versions};
use super::{Invalid, WebConfigError};

/// `tls_server_config`, as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Option<String>,
    pub(super) key: Option<SecretString>,
    pub(super) client_ca: Option<String>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) client_auth_type: Option<ClientAuth>,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) cipher_suites: Option<Vec<String>>,
    pub(super) curve_preferences: Option<Vec<String>>,
    pub(super) min_version: Option<TlsVersion>,
    pub(super) max_version: Option<TlsVersion>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
    pub(super) client_allowed_sans: Option<serde::de::IgnoredAny>,
}

impl RawTls {
    /// Whether no key is set: an empty `tls_server_config:` means plain HTTP.
    /// The pattern names every field, so a new key cannot be left out here.
    fn is_empty(&self) -> bool {
        matches!(
            self,
            RawTls {
                cert: None,
                key: None,
                client_ca: None,
                cert_file: None,
                key_file: None,
                client_auth_type: None,
                client_ca_file: None,
                cipher_suites: None,
                curve_preferences: None,
                min_version: None,
                max_version: None,
                prefer_server_cipher_suites: None,
                client_allowed_sans: None,
            }
        )
    }
}

/// `tls_server_config.client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// `tls_server_config`: `None` when no key in it is set (an empty
/// `tls_server_config:`, as in exporter-toolkit: plain HTTP). Files it names
/// are relative to the web config file `path` and added to `files`.
pub(super) fn section(
    raw: RawTls,
    path: &Path,
    files: &mut Vec<PathBuf>,
    invalid: Invalid<'_>,
    http2: bool,
) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.client_allowed_sans.is_some() {
        return Err(invalid.tls(
            "client_allowed_sans",
            "not supported by avepoint-exporter; issue client certificates from a dedicated \
             client_ca_file instead",
        ));
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    server_config(&raw, dir, files, invalid, http2).map(Some)
}

/// Build the server config from a `tls_server_config` that sets at least one
/// key. Relative file names are relative to `dir`; every file read is added
/// to `files`. Keep the order of the checks (versions, suites, curves,
/// certificate and key, client certificates): it decides which mistake is
/// reported for a file with several, and tests/web_config.rs pins it.
pub(super) fn server_config(
    raw: &RawTls,
    dir: &Path,
    files: &mut Vec<PathBuf>,
    invalid: Invalid<'_>,
    http2: bool,
) -> Result<Arc<ServerConfig>, WebConfigError> {
    let versions = protocol_versions(raw.min_version, raw.max_version, invalid)?;
    let (suites, curves) = (
        raw.cipher_suites.as_deref(),
        raw.curve_preferences.as_deref(),
    );
    let provider = Arc::new(crypto_provider(suites, curves, invalid)?);
    let mut pem = PemFiles {
        dir,
        files,
        invalid,
    };
    let certified = certified_key(raw, &mut pem, &provider)?;
    let client_auth = raw.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
    let client_ca = pem.source(
        raw.client_ca.as_deref().map(str::as_bytes),
        raw.client_ca_file.as_deref(),
        ("client_ca", "client_ca_file"),
    )?;
    let roots = match &client_ca {
        Some((ca_key, bytes)) => Some(client_roots(ca_key, bytes, invalid)?),
        None => None,
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| invalid.tls("cipher_suites", format!("no usable TLS setup: {error}")))?;
    let ca_key = client_ca.map(|(ca_key, _)| ca_key);
    let builder = match client_verifier(client_auth, ca_key, roots, &provider, invalid)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
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
    Ok(Arc::new(config))
}

/// The server certificate chain and its private key, from `cert` or
/// `cert_file` and `key` or `key_file`. Both are read before either is
/// reported missing, so that an unreadable file is named first.
fn certified_key(
    raw: &RawTls,
    pem: &mut PemFiles<'_>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, WebConfigError> {
    let invalid = pem.invalid;
    let certificate = pem.source(
        raw.cert.as_deref().map(str::as_bytes),
        raw.cert_file.as_deref(),
        ("cert", "cert_file"),
    )?;
    let private_key = pem.source(
        raw.key.as_ref().map(|k| k.expose_secret().as_bytes()),
        raw.key_file.as_deref(),
        ("key", "key_file"),
    )?;
    let (cert_key, certificate) = certificate
        .ok_or_else(|| invalid.tls("cert_file", "missing: set one of cert_file or cert"))?;
    let (key_key, private_key) = private_key
        .ok_or_else(|| invalid.tls("key_file", "missing: set one of key_file or key"))?;
    let chain = certificates(&certificate, cert_key, invalid)?;
    let private_key = PrivateKeyDer::from_pem_slice(&private_key).map_err(|_| {
        invalid.tls(
            key_key,
            "no private key found (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)",
        )
    })?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => invalid.tls(
            key_key,
            format!("the private key does not match the certificate in {cert_key}"),
        ),
        rustls::Error::General(_) => invalid.tls(
            key_key,
            "the private key could not be loaded (unsupported key type or invalid encoding)",
        ),
        other => invalid.tls(cert_key, format!("unusable certificate: {other}")),
    })
}

/// The certificates of the PEM text that `key` set; at least one.
fn certificates(
    pem: &[u8],
    key: &str,
    invalid: Invalid<'_>,
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|error| invalid.tls(key, format!("invalid PEM: {error}")))?;
    if certs.is_empty() {
        return Err(invalid.tls(key, "no CERTIFICATE block found (expected PEM)"));
    }
    Ok(certs)
}

/// The CAs that client certificates are verified against (`client_ca` or
/// `client_ca_file`, named by `ca_key`).
fn client_roots(
    ca_key: &str,
    pem: &[u8],
    invalid: Invalid<'_>,
) -> Result<Arc<RootCertStore>, WebConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, ca_key, invalid)? {
        roots
            .add(cert)
            .map_err(|error| invalid.tls(ca_key, format!("unusable CA certificate: {error}")))?;
    }
    Ok(Arc::new(roots))
}

/// The verifier for `client_auth_type`, `None` for `NoClientCert`. `ca_key`
/// names the key that set the client CA, if one did: with `NoClientCert` a
/// CA would be ignored, which is refused rather than silently accepted.
fn client_verifier(
    client_auth: ClientAuth,
    ca_key: Option<&str>,
    roots: Option<Arc<RootCertStore>>,
    provider: &Arc<CryptoProvider>,
    invalid: Invalid<'_>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
    match client_auth {
        ClientAuth::NoClientCert => match ca_key {
            Some(ca_key) => Err(invalid.tls(
                ca_key,
                "set, but client_auth_type is NoClientCert: set client_auth_type to \
                 RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove it",
            )),
            None => Ok(None),
        },
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Ok(Some(Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                provider: Arc::clone(provider),
            })))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let roots = roots.ok_or_else(|| {
                invalid.tls(
                    "client_ca_file",
                    format!(
                        "missing: client_auth_type {client_auth:?} verifies client certificates against client_ca_file (or client_ca)"
                    ),
                )
            })?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider));
            let verifier = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| invalid.tls("client_ca_file", error.to_string()))?;
            Ok(Some(verifier))
        }
    }
}

/// PEM bytes (no `Debug`: they may hold a private key).
struct PemBytes(Vec<u8>);

impl std::ops::Deref for PemBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Where certificate and key files are read from, and the list of the files
/// read, which the handle watches for changes.
struct PemFiles<'a> {
    dir: &'a Path,
    files: &'a mut Vec<PathBuf>,
    invalid: Invalid<'a>,
}

impl PemFiles<'_> {
    /// The PEM text of an inline key (`cert`) or a file key (`cert_file`), at
    /// most one, with the key it came from (for messages).
    fn source(
        &mut self,
        inline: Option<&[u8]>,
        file: Option<&Path>,
        (inline_key, file_key): (&'static str, &'static str),
    ) -> Result<Option<(&'static str, PemBytes)>, WebConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.invalid.tls(
                file_key,
                format!("{file_key} and {inline_key} are mutually exclusive: set one"),
            )),
            (Some(text), None) => Ok(Some((inline_key, PemBytes(text.to_vec())))),
            (None, Some(file)) => {
                let file = self.dir.join(file);
                let bytes = std::fs::read(&file).map_err(|error| {
                    self.invalid
                        .tls(file_key, format!("cannot read {}: {error}", file.display()))
                })?;
                self.files.push(file);
                Ok(Some((file_key, PemBytes(bytes))))
            }
            (None, None) => Ok(None),
        }
    }
}

/// The two signature checks of a [`ClientCertVerifier`]: the same code but
/// for the rustls function they call, which has the method's name.
macro_rules! verify_signatures {
    ($($check:ident),+) => {$(
        fn $check(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = &self.provider.signature_verification_algorithms;
            rustls::crypto::$check(message, cert, dss, algorithms)
        }
    )+};
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

    verify_signatures!(verify_tls12_signature, verify_tls13_signature);

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
