//! Whether a certificate allows Digital Signature, read from its Key Usage
//! extension with a minimal DER walk (AvePoint requires it of a certificate
//! credential; webpki does not expose extensions it does not check).

use std::path::Path;

/// What a certificate's Key Usage extension says about Digital Signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DigitalSignature {
    /// Key Usage has Digital Signature.
    Allowed,
    /// Key Usage is there, without Digital Signature.
    NotAllowed,
    /// No Key Usage extension.
    NoKeyUsage,
}

/// AvePoint requires the certificate of a certificate credential to have
/// Key Usage = Digital Signature. Whether it checks at upload or refuses
/// the assertions later is not documented: warn at load, naming the file,
/// rather than refuse a certificate that may work.
pub(super) fn warn_without_digital_signature(der: &[u8], file: &Path) {
    let problem = match digital_signature(der) {
        Some(DigitalSignature::Allowed) | None => return,
        Some(DigitalSignature::NotAllowed) => "its Key Usage extension lacks Digital Signature",
        Some(DigitalSignature::NoKeyUsage) => "it has no Key Usage extension",
    };
    tracing::warn!(
        certificate_file = %file.display(),
        "the certificate in {} may be refused by AvePoint: {problem}, and AvePoint requires Key Usage = Digital Signature; make a new one with -addext \"keyUsage=critical,digitalSignature\" (docs/certificate-auth.md)",
        file.display()
    );
}

/// Read the Key Usage extension (OID 2.5.29.15) of a DER certificate;
/// `None` when the DER cannot be walked (webpki parsed it, so it can).
fn digital_signature(der: &[u8]) -> Option<DigitalSignature> {
    const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    let (_, certificate, _) = der_element(der, 0x30)?;
    let (_, mut tbs, _) = der_element(certificate, 0x30)?;
    // tbsCertificate's fields up to the extensions, [3] EXPLICIT.
    let extensions = loop {
        let (tag, contents, rest) = der_any(tbs)?;
        if tag == 0xa3 {
            break contents;
        }
        if rest.is_empty() {
            return Some(DigitalSignature::NoKeyUsage);
        }
        tbs = rest;
    };
    let (_, mut list, _) = der_element(extensions, 0x30)?;
    while !list.is_empty() {
        let (_, extension, rest) = der_element(list, 0x30)?;
        list = rest;
        let (_, oid, mut fields) = der_element(extension, 0x06)?;
        if oid != KEY_USAGE {
            continue;
        }
        if let Some((0x01, _, rest)) = der_any(fields) {
            fields = rest; // critical
        }
        let (_, value, _) = der_element(fields, 0x04)?;
        let (_, bits, _) = der_element(value, 0x03)?;
        // bits[0] counts the unused bits; digitalSignature is bit 0, the
        // first byte's top bit.
        let allowed = bits.get(1).is_some_and(|byte| byte & 0x80 != 0);
        return Some(if allowed {
            DigitalSignature::Allowed
        } else {
            DigitalSignature::NotAllowed
        });
    }
    Some(DigitalSignature::NoKeyUsage)
}

/// The DER element at the start of `input` if its tag is `tag`.
fn der_element(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    der_any(input).filter(|(found, _, _)| *found == tag)
}

/// The DER element at the start of `input`: tag, contents, what follows.
fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (length, rest) = rest.split_at(octets);
        let length = length
            .iter()
            .fold(0usize, |sum, byte| sum << 8 | usize::from(*byte));
        (length, rest)
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose};

    #[test]
    fn key_usage_is_read_with_and_without_other_bits() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let usage = |usages: Vec<KeyUsagePurpose>| {
            let mut params = CertificateParams::new(vec!["a".to_owned()]).unwrap();
            params.key_usages = usages;
            digital_signature(params.self_signed(&key).unwrap().der())
        };
        assert_eq!(
            usage(vec![
                KeyUsagePurpose::KeyEncipherment,
                KeyUsagePurpose::DigitalSignature
            ]),
            Some(DigitalSignature::Allowed)
        );
        assert_eq!(
            usage(vec![KeyUsagePurpose::KeyCertSign]),
            Some(DigitalSignature::NotAllowed)
        );
        assert_eq!(usage(vec![]), Some(DigitalSignature::NoKeyUsage));
        assert_eq!(digital_signature(b"\x30\x05junk"), None);
    }
}
