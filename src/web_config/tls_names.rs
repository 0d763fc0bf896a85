//! Go's names for TLS versions, cipher suites and curves (as
//! exporter-toolkit's web config spells them), mapped onto rustls and its
//! aws-lc-rs provider; a name rustls cannot honour is an error naming the
//! key. Apart from the server config it feeds (`tls.rs`), as a table to
//! read and keep in step with Go's.

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, SupportedProtocolVersion};
use serde::Deserialize;

use super::{Invalid, WebConfigError};

/// `min_version` and `max_version`, Go's names; ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(super) enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// Cipher suites by their Go (and IANA) names. TLS 1.3 suites are not
/// configurable, as in Go: naming one is allowed and changes nothing.
const TLS12_CIPHER_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];
const TLS13_CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// `min_version` and `max_version`: TLS 1.2 to 1.3 unless narrowed.
pub(super) fn protocol_versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
    invalid: Invalid<'_>,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    for (name, version) in [("min_version", min), ("max_version", max)] {
        if let Some(version @ (TlsVersion::TLS10 | TlsVersion::TLS11)) = version {
            return Err(invalid.tls(
                name,
                format!(
                    "{version:?} is not supported: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13"
                ),
            ));
        }
    }
    let min = min.unwrap_or(TlsVersion::TLS12);
    let max = max.unwrap_or(TlsVersion::TLS13);
    if min > max {
        return Err(invalid.tls(
            "max_version",
            format!("{max:?} is below min_version {min:?}"),
        ));
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if min <= TlsVersion::TLS12 && max >= TlsVersion::TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// The aws-lc-rs provider narrowed to `cipher_suites` (TLS 1.2 only, as in
/// Go) and `curve_preferences`.
pub(super) fn crypto_provider(
    cipher_suites: Option<&[String]>,
    curve_preferences: Option<&[String]>,
    invalid: Invalid<'_>,
) -> Result<CryptoProvider, WebConfigError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Some(names) = cipher_suites {
        let wanted = tls12_cipher_suites(names, invalid)?;
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
    if let Some(names) = curve_preferences {
        provider.kx_groups = names
            .iter()
            .map(|name| kx_group(name, invalid))
            .collect::<Result<_, _>>()?;
    }
    Ok(provider)
}

/// The TLS 1.2 suites among `cipher_suites`, in the order given; TLS 1.3
/// names are skipped, any other name is an error.
fn tls12_cipher_suites(
    names: &[String],
    invalid: Invalid<'_>,
) -> Result<Vec<CipherSuite>, WebConfigError> {
    let mut wanted = Vec::new();
    for name in names {
        if let Some((_, suite)) = TLS12_CIPHER_SUITES.iter().find(|(n, _)| n == name) {
            wanted.push(*suite);
        } else if !TLS13_CIPHER_SUITES.contains(&name.as_str()) {
            let supported: Vec<&str> = TLS12_CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
            return Err(invalid.tls(
                "cipher_suites",
                format!(
                    "{name:?} is unknown or not supported by rustls; supported: {}",
                    supported.join(", ")
                ),
            ));
        }
    }
    Ok(wanted)
}

/// One entry of `curve_preferences`, by Go's name.
fn kx_group(
    name: &str,
    invalid: Invalid<'_>,
) -> Result<&'static dyn SupportedKxGroup, WebConfigError> {
    use rustls::crypto::aws_lc_rs::kx_group;
    match name {
        "X25519" => Ok(kx_group::X25519),
        "CurveP256" => Ok(kx_group::SECP256R1),
        "CurveP384" => Ok(kx_group::SECP384R1),
        "X25519MLKEM768" => Ok(kx_group::X25519MLKEM768),
        "CurveP521" => Err(invalid.tls(
            "curve_preferences",
            "CurveP521 is not supported by rustls; use X25519, CurveP256 or CurveP384",
        )),
        other => Err(invalid.tls(
            "curve_preferences",
            format!(
                "unknown curve {other:?}; expected X25519, CurveP256, CurveP384 or X25519MLKEM768"
            ),
        )),
    }
}
