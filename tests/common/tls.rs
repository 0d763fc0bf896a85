//! A throwaway CA and a server certificate for 127.0.0.1, written to a
//! directory with an exporter-toolkit web config that serves them: how the
//! tests and the benches put the simulator behind HTTPS.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// Files written by [`write_tls_files`].
pub struct TlsFiles {
    /// The CA certificate (PEM), for `avepoint.ca_file`.
    pub ca_file: PathBuf,
    /// A web config serving the server certificate, for
    /// `WebConfigHandle::load`.
    pub web_config: PathBuf,
}

/// Make a CA and a server certificate for 127.0.0.1 and localhost in `dir`.
pub fn write_tls_files(dir: &Path) -> TlsFiles {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "avepoint-exporter test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");

    let key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    server
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    server
        .distinguished_name
        .push(DnType::CommonName, "simulated AvePoint");
    let cert = server.signed_by(&key, &issuer).expect("server certificate");

    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write TLS file");
        path
    };
    let ca_file = write("ca.pem", &issuer.pem());
    write("server.pem", &cert.pem());
    write("server-key.pem", &key.serialize_pem());
    let web_config = write(
        "simulator-web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n",
    );
    TlsFiles {
        ca_file,
        web_config,
    }
}
