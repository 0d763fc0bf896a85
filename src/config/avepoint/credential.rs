//! `avepoint.client_secret_file` (or `AVEPOINT_CLIENT_SECRET`), or
//! `avepoint.client_certificate_file` with `avepoint.client_private_key_file`:
//! the one [`Credential`] the token is requested with.
//!
//! The certificate is loaded here, not when the first token is requested,
//! so a bad certificate or key stops the exporter at start (or keeps the old
//! config on reload) instead of failing every scrape.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::avepoint::certificate::{CertificateError, ClientCertificate};
use crate::config::file::{ConfigError, ConfigFile};

/// Environment variable that overrides `avepoint.client_secret_file`.
pub const CLIENT_SECRET_ENV: &str = "AVEPOINT_CLIENT_SECRET";

/// The credential the token is requested with: exactly one of the two.
/// `Debug` shows neither the secret nor the private key.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The client secret (`avepoint.client_secret_file` or
    /// `AVEPOINT_CLIENT_SECRET`); `Debug` shows `[REDACTED]`.
    Secret(SecretString),
    /// The certificate and its private key (`avepoint.client_certificate_file`
    /// and `avepoint.client_private_key_file`).
    Certificate(ClientCertificate),
}

impl Credential {
    /// The client secret, when that is the credential.
    pub fn secret(&self) -> Option<&SecretString> {
        match self {
            Credential::Secret(secret) => Some(secret),
            Credential::Certificate(_) => None,
        }
    }

    /// The certificate, when that is the credential.
    pub fn certificate(&self) -> Option<&ClientCertificate> {
        match self {
            Credential::Secret(_) => None,
            Credential::Certificate(certificate) => Some(certificate),
        }
    }

    /// Whether a token requested with `other` is requested the same way.
    pub(super) fn same_as(&self, other: &Credential) -> bool {
        match (self, other) {
            (Credential::Secret(mine), Credential::Secret(theirs)) => {
                mine.expose_secret() == theirs.expose_secret()
            }
            (Credential::Certificate(mine), Credential::Certificate(theirs)) => {
                mine.certificate_der() == theirs.certificate_der()
            }
            _ => false,
        }
    }
}

/// The section's credential keys, as written.
pub(super) struct RawCredential {
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) client_certificate_file: Option<PathBuf>,
    pub(super) client_private_key_file: Option<PathBuf>,
}

/// Exactly one credential: a client secret, or a certificate and its key.
pub(super) fn validate(
    file: &ConfigFile<'_>,
    raw: &RawCredential,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credential, ConfigError> {
    let env_secret = env(CLIENT_SECRET_ENV).filter(|secret| !secret.trim().is_empty());
    match client_certificate(file, raw, env_secret.is_some())? {
        Some(certificate) => Ok(Credential::Certificate(certificate)),
        None => client_secret(file, raw, env_secret)
            .map(|secret| Credential::Secret(SecretString::from(secret))),
    }
}

/// The certificate credential, when either of its files is named; a secret
/// configured as well is an error, since which one wins would be a guess.
fn client_certificate(
    file: &ConfigFile<'_>,
    raw: &RawCredential,
    env_secret: bool,
) -> Result<Option<ClientCertificate>, ConfigError> {
    let certificate = &raw.client_certificate_file;
    let private_key = &raw.client_private_key_file;
    if certificate.is_none() && private_key.is_none() {
        return Ok(None);
    }
    let secret_source = match (env_secret, &raw.client_secret_file) {
        (true, _) => Some(CLIENT_SECRET_ENV),
        (false, Some(_)) => Some("avepoint.client_secret_file"),
        (false, None) => None,
    };
    if let Some(source) = secret_source {
        return Err(file.invalid(
            "avepoint.client_certificate_file",
            format!(
                "a client secret is configured too ({source}): use either a client secret \
                 or avepoint.client_certificate_file with avepoint.client_private_key_file, not both"
            ),
        ));
    }
    match (certificate, private_key) {
        (Some(certificate), Some(private_key)) => {
            load_certificate(file, certificate, private_key).map(Some)
        }
        (Some(_), None) => Err(file.invalid(
            "avepoint.client_private_key_file",
            "missing: avepoint.client_certificate_file needs the certificate's private key here"
                .into(),
        )),
        (None, _) => Err(file.invalid(
            "avepoint.client_certificate_file",
            "missing: avepoint.client_private_key_file needs its certificate here".into(),
        )),
    }
}

/// Load the pair, blaming whichever of the two keys names the bad file.
fn load_certificate(
    file: &ConfigFile<'_>,
    certificate: &Path,
    private_key: &Path,
) -> Result<ClientCertificate, ConfigError> {
    ClientCertificate::load(&file.resolve(certificate), &file.resolve(private_key)).map_err(
        |error| match error {
            CertificateError::Certificate(message) => {
                file.invalid("avepoint.client_certificate_file", message)
            }
            CertificateError::PrivateKey(message) => {
                file.invalid("avepoint.client_private_key_file", message)
            }
        },
    )
}

/// The client secret: `AVEPOINT_CLIENT_SECRET` overrides
/// `client_secret_file`. Surrounding whitespace is trimmed, so the trailing
/// newline most secret files end with is not sent as part of the secret.
fn client_secret(
    file: &ConfigFile<'_>,
    raw: &RawCredential,
    env_secret: Option<String>,
) -> Result<String, ConfigError> {
    match (env_secret, &raw.client_secret_file) {
        (Some(secret), _) => Ok(secret.trim().to_owned()),
        (None, Some(secret_file)) => {
            let (secret_file, secret) =
                file.read("avepoint.client_secret_file", secret_file, |path| {
                    std::fs::read_to_string(path)
                })?;
            let secret = secret.trim().to_owned();
            if secret.is_empty() {
                return Err(file.invalid(
                    "avepoint.client_secret_file",
                    format!("{} is empty", secret_file.display()),
                ));
            }
            Ok(secret)
        }
        (None, None) => Err(file.invalid(
            "avepoint.client_secret_file",
            format!(
                "no client credential: set avepoint.client_secret_file or {CLIENT_SECRET_ENV}, \
                 or avepoint.client_certificate_file and avepoint.client_private_key_file"
            ),
        )),
    }
}
