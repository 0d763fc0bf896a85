//! The certificate credential: a PEM certificate and its RSA private key,
//! checked to belong together at load, that sign RS256 JWT client
//! assertions (RFC 7523) for the token endpoint.
//!
//! Imports nothing of the crate but `key_usage`; the config loads it (the one import that
//! runs against the data flow) and the token source uses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret, SecretString};

use super::key_usage::warn_without_digital_signature;

/// `client_assertion_type` of the certificate credential (RFC 7523).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid (`exp` - `iat`).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// How far `nbf` lies before `iat`, for clocks a little ahead of ours.
pub const ASSERTION_CLOCK_SKEW: Duration = Duration::from_secs(60);

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
        let certificate = read_certificate(certificate_file)?;
        let parsed = webpki::EndEntityCert::try_from(&certificate).map_err(|error| {
            CertificateError::Certificate(format!(
                "{}: the certificate cannot be parsed: {error}",
                certificate_file.display()
            ))
        })?;
        let key = read_private_key(private_key_file)?;
        check_pair(&parsed, &key, certificate_file, private_key_file)?;
        warn_without_digital_signature(&certificate, certificate_file);
        Ok(Self {
            certificate_file: certificate_file.to_owned(),
            private_key_file: private_key_file.to_owned(),
            sha1: sha1_thumbprint(&certificate),
            certificate,
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

/// SHA-1 of a certificate's DER: its thumbprint, as the Elements portal,
/// Windows and the JWT headers `kid`/`x5t` name it.
pub fn sha1_thumbprint(der: &[u8]) -> [u8; 20] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let mut sha1 = [0; 20];
    sha1.copy_from_slice(digest.as_ref());
    sha1
}

/// The first PEM certificate of `file`.
fn read_certificate(file: &Path) -> Result<CertificateDer<'static>, CertificateError> {
    let name = file.display();
    let pem = std::fs::read(file)
        .map_err(|error| CertificateError::Certificate(format!("cannot read {name}: {error}")))?;
    CertificateDer::from_pem_slice(&pem).map_err(|error| {
        CertificateError::Certificate(format!(
            "{name} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {}",
            pem_problem(&error)
        ))
    })
}

/// The RSA private key of `file`; every copy of the key material is wiped
/// once the key pair is built.
fn read_private_key(file: &Path) -> Result<RsaKeyPair, CertificateError> {
    let key_error = |message: String| CertificateError::PrivateKey(message);
    let name = file.display();
    let pem = secrecy::SecretSlice::from(
        std::fs::read(file).map_err(|error| key_error(format!("cannot read {name}: {error}")))?,
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
                "{name} holds an encrypted private key, which the exporter cannot decrypt: \
                 store it unencrypted (openssl pkey -in encrypted.pem -out key.pem) in a file only the exporter can read"
            )));
        }
        Err(error) => {
            return Err(key_error(format!(
                "{name} holds no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----): {}",
                pem_problem(&error)
            )));
        }
    };
    let key = rsa_key_pair(&der, file);
    // The PEM text is wiped when `pem` drops; wipe the decoded copy too.
    der.zeroize();
    key
}

/// An RSA key pair from decoded key material, or an error naming what the
/// key is instead.
fn rsa_key_pair(der: &PrivateKeyDer<'_>, file: &Path) -> Result<RsaKeyPair, CertificateError> {
    match der {
        PrivateKeyDer::Pkcs8(der) => {
            RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|rejected| {
                let der = der.secret_pkcs8_der();
                let head = &der[..der.len().min(32)];
                match KEY_ALGORITHMS
                    .iter()
                    .find(|(oid, _)| head.windows(oid.len()).any(|w| w == *oid))
                {
                    Some((_, what)) => not_rsa(file, what),
                    None => rsa_rejected(file, rejected),
                }
            })
        }
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der())
            .map_err(|rejected| rsa_rejected(file, rejected)),
        PrivateKeyDer::Sec1(_) => Err(not_rsa(file, "an EC key (-----BEGIN EC PRIVATE KEY-----)")),
        _ => Err(not_rsa(file, "a key of an unknown kind")),
    }
}

/// The key must belong to the certificate: sign a probe, verify it with the
/// certificate's public key.
fn check_pair(
    certificate: &webpki::EndEntityCert<'_>,
    key: &RsaKeyPair,
    certificate_file: &Path,
    private_key_file: &Path,
) -> Result<(), CertificateError> {
    let probe = b"avepoint-exporter: does this key belong to the certificate?";
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        probe,
        &mut signature,
    )
    .map_err(|_| {
        CertificateError::PrivateKey(format!(
            "{}: signing with the key failed",
            private_key_file.display()
        ))
    })?;
    match certificate.verify_signature(
        webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        probe,
        &signature,
    ) {
        Ok(()) => Ok(()),
        Err(webpki::Error::InvalidSignatureForPublicKey) => {
            Err(CertificateError::PrivateKey(format!(
                "{} is not the private key of the certificate in {}",
                private_key_file.display(),
                certificate_file.display()
            )))
        }
        Err(_) => Err(CertificateError::Certificate(format!(
            "{}: the certificate's public key is not an RSA key: \
             client assertions are signed RS256 and need an RSA certificate",
            certificate_file.display()
        ))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_log::CapturedLog;
    use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose};

    /// Load a certificate with `usages` (none: no Key Usage extension) and
    /// return what was logged.
    fn load_logging(key: &KeyPair, usages: Vec<KeyUsagePurpose>) -> (String, String) {
        let mut params = CertificateParams::new(vec!["avepoint-exporter".to_owned()]).unwrap();
        params.key_usages = usages;
        let certificate = params.self_signed(key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("app.crt"), dir.path().join("app.key"));
        std::fs::write(&cert_file, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let (captured, log_guard) = CapturedLog::install();
        ClientCertificate::load(&cert_file, &key_file).unwrap();
        drop(log_guard);
        let log = captured.text();
        (log, cert_file.display().to_string())
    }

    #[test]
    fn a_certificate_without_digital_signature_is_warned_about_by_file() {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let (log, file) = load_logging(&key, vec![KeyUsagePurpose::DigitalSignature]);
        assert!(!log.contains(&file), "{log}");
        let (log, file) = load_logging(&key, vec![KeyUsagePurpose::KeyEncipherment]);
        assert!(log.contains("WARN"), "{log}");
        assert!(
            log.contains(&format!(
                "the certificate in {file} may be refused by AvePoint: its Key Usage extension lacks Digital Signature, and AvePoint requires Key Usage = Digital Signature"
            )),
            "{log}"
        );
        assert!(log.contains(&format!("certificate_file={file}")), "{log}");
        let (log, file) = load_logging(&key, Vec::new());
        assert!(log.contains("WARN"), "{log}");
        assert!(
            log.contains(&format!(
                "the certificate in {file} may be refused by AvePoint: it has no Key Usage extension"
            )),
            "{log}"
        );
        // Never the key.
        for line in key
            .serialize_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
        {
            assert!(!log.contains(line));
        }
    }
}
