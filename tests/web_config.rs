//! `--web.config.file`: HTTPS, mutual TLS, basic authentication, extra
//! headers, certificate rotation and strict validation, driven with a real
//! TLS client (reqwest + rustls) against certificates made at test time.

use crate::common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use avepoint_exporter::config::{CLIENT_SECRET_ENV, Settings};
use avepoint_exporter::simulator::{DEMO_CLIENT_SECRET, RunningSimulator, SimulatorConfig};
use avepoint_exporter::state::{AppState, StateOptions};
use avepoint_exporter::web;
use avepoint_exporter::web_config::{WebConfig, WebConfigHandle};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use tokio::sync::oneshot;

// --- certificates -----------------------------------------------------------

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self, common_name: &str, serial: u64) -> Leaf {
        self.leaf(common_name, serial, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    fn client(&self, common_name: &str) -> Leaf {
        self.leaf(common_name, 1000, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, common_name: &str, serial: u64, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Leaf {
    /// Write `server.crt` and `server.key` (or another base name) into `dir`.
    fn write(&self, dir: &Path, name: &str) {
        write_atomically(&dir.join(format!("{name}.crt")), &self.cert_pem);
        write_atomically(&dir.join(format!("{name}.key")), &self.key_pem);
    }

    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert_pem, self.key_pem).as_bytes())
            .unwrap()
    }
}

/// Replace a file the way Kubernetes and most tools do: write aside, rename.
fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// bcrypt at the lowest cost keeps the tests fast; real configs use 10+.
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

// --- an exporter under a web config ----------------------------------------

struct Server {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _sim: RunningSimulator,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The simulator, and the exporter on 127.0.0.1:0 with `web_yaml` as
    /// `dir/web.yml` (certificate files already in `dir`).
    async fn start(dir: tempfile::TempDir, web_yaml: &str) -> Server {
        std::fs::write(dir.path().join("web.yml"), web_yaml).unwrap();
        let web_config = WebConfigHandle::load(&dir.path().join("web.yml")).expect("valid");
        let sim = RunningSimulator::start(SimulatorConfig::default(), ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let settings =
            Settings::from_yaml(&sim.exporter_config(None), Path::new("test.yml"), |name| {
                (name == CLIENT_SECRET_ENV).then(|| DEMO_CLIENT_SECRET.to_owned())
            })
            .unwrap();
        let state = AppState::build(&settings, StateOptions::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, task) =
            common::serve_in_background(listener, web::router(Arc::clone(&state)), web_config);
        Server {
            addr,
            dir,
            _sim: sim,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// `GET /-/healthy` over TLS by a client trusting `ca`, without a
    /// client certificate.
    async fn healthy(&self, ca: &Ca) -> reqwest::Result<reqwest::Response> {
        client(ca, None).get(self.https("/-/healthy")).send().await
    }

    fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stop and wait for the server to finish (graceful shutdown).
    async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A fresh client (no pooled connection) trusting only `ca`.
fn client(ca: &Ca, identity: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .tls_info(true)
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()]);
    if let Some(leaf) = identity {
        builder = builder.identity(leaf.identity());
    }
    builder.build().unwrap()
}

/// The DER of the certificate the server presented.
fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

fn tls_yaml(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

async fn tls_server(extra_tls: &str, rest: &str) -> (Ca, Leaf, Server) {
    let ca = Ca::new("test CA");
    let leaf = ca.server("exporter one", 1);
    let dir = tempfile::tempdir().unwrap();
    leaf.write(dir.path(), "server");
    let server = Server::start(dir, &(tls_yaml(extra_tls) + rest)).await;
    (ca, leaf, server)
}

// --- TLS ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_ca_works_and_plain_http_is_refused() {
    let (ca, leaf, server) = tls_server("", "").await;

    let response = client(&ca, None)
        .get(server.https("/metrics"))
        .send()
        .await
        .expect("HTTPS with the test CA works");
    assert_eq!(response.status(), 200);
    assert_eq!(peer_certificate(&response), leaf.der);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "h2 by default"
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("avepoint_scan_profile_up"), "{body}");

    // Plain HTTP to the TLS port: a 400 saying so, never the metrics.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await;
    let plain = plain.expect("the TLS port answers plain HTTP with a 400");
    assert_eq!(plain.status(), 400);
    assert_eq!(
        plain.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );

    // A client that does not trust the server's CA fails the handshake.
    let stranger = Ca::new("another CA");
    let error = client(&stranger, None)
        .get(server.https("/metrics"))
        .send()
        .await
        .expect_err("untrusted certificate");
    assert!(error.is_connect(), "{error:?}");

    // Graceful shutdown still works over TLS.
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_can_be_turned_off() {
    let (ca, _, server) = tls_server("", "http_server_config:\n  http2: false\n").await;
    let response = server.healthy(&ca).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_only_is_honoured() {
    let (ca, _, server) = tls_server("  min_version: TLS13\n", "").await;
    let response = server.healthy(&ca).await.unwrap();
    assert_eq!(response.status(), 200);
    // A TLS 1.2-only client cannot connect.
    let tls12_only = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(
        tls12_only
            .get(server.https("/-/healthy"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let dir = tempfile::tempdir().unwrap();
    ca.server("exporter one", 1).write(dir.path(), "server");
    std::fs::write(dir.path().join("client-ca.crt"), client_ca.pem()).unwrap();
    let server = Server::start(
        dir,
        &tls_yaml(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n",
        ),
    )
    .await;

    let without = client(&ca, None).get(server.https("/metrics")).send().await;
    assert!(without.is_err(), "no client certificate must be refused");

    let prometheus = client_ca.client("prometheus");
    let response = client(&ca, Some(&prometheus))
        .get(server.https("/metrics"))
        .send()
        .await
        .expect("a client certificate from the client CA is accepted");
    assert_eq!(response.status(), 200);

    // A certificate from any other CA is refused, even for the open paths.
    let intruder = Ca::new("intruder CA").client("prometheus");
    let refused = client(&ca, Some(&intruder))
        .get(server.https("/-/healthy"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a foreign client certificate must be refused"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_any_client_cert_accepts_any_certificate_but_not_none() {
    let (ca, _, server) = tls_server("  client_auth_type: RequireAnyClientCert\n", "").await;
    assert!(server.healthy(&ca).await.is_err());
    let anyone = Ca::new("self-made CA").client("anyone");
    let response = client(&ca, Some(&anyone))
        .get(server.https("/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_a_restart() {
    let (ca, first, server) = tls_server("", "").await;
    let seen = |response: &reqwest::Response| peer_certificate(response);

    let response = server.healthy(&ca).await.unwrap();
    assert_eq!(seen(&response), first.der);

    // New certificate and key on disk (different serial and CN): the next
    // connection sees it.
    let second = ca.server("exporter two", 2);
    second.write(server.dir.path(), "server");
    let response = server.healthy(&ca).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        seen(&response),
        second.der,
        "the rotated certificate is served"
    );

    // A broken rotation (a key that does not match) keeps the last good pair.
    let third = ca.server("exporter three", 3);
    write_atomically(&server.path("server.crt"), &third.cert_pem);
    let response = server
        .healthy(&ca)
        .await
        .expect("still served with the last good certificate");
    assert_eq!(seen(&response), second.der);

    // Completing the rotation (the key arrives) switches over.
    write_atomically(&server.path("server.key"), &third.key_pem);
    let response = server.healthy(&ca).await.unwrap();
    assert_eq!(seen(&response), third.der);

    // An in-place overwrite (same inode) is noticed too.
    let fourth = ca.server("exporter four, a longer name", 4);
    std::fs::write(server.path("server.key"), &fourth.key_pem).unwrap();
    std::fs::write(server.path("server.crt"), &fourth.cert_pem).unwrap();
    let response = server.healthy(&ca).await.unwrap();
    assert_eq!(seen(&response), fourth.der);
    server.stop().await;
}

// --- basic authentication and headers ---------------------------------------

fn auth_yaml(users: &[(&str, &str)]) -> String {
    let mut yaml = String::from(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n",
    );
    for (user, password) in users {
        yaml.push_str(&format!("  {user}: '{}'\n", bcrypt_hash(password)));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_everything_but_health() {
    let (ca, _, server) = tls_server("", &auth_yaml(&[("prometheus", "s3cret pass")])).await;
    let http = client(&ca, None);
    let get = |path: &str, credentials: Option<(&str, &str)>| {
        let mut request = http.get(server.https(path));
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        request.send()
    };

    // No credentials, a wrong password, an unknown user: 401 with the realm,
    // and the configured headers on the 401 too.
    for credentials in [
        None,
        Some(("prometheus", "wrong")),
        Some(("prometheus", "")),
        Some(("nobody", "s3cret pass")),
    ] {
        for path in [
            "/",
            "/metrics",
            "/sd",
            "/-/ready",
            "/probe?customer_id=x",
            "/nope",
        ] {
            let response = get(path, credentials).await.unwrap();
            assert_eq!(response.status(), 401, "{path} {credentials:?}");
            assert_eq!(
                response.headers()["www-authenticate"],
                "Basic realm=\"avepoint-exporter\""
            );
            assert_eq!(response.headers()["x-frame-options"], "deny");
            assert!(!response.text().await.unwrap().contains("avepoint_"));
        }
    }

    // The right password opens every path (twice: the second is cached).
    for _ in 0..2 {
        for path in ["/", "/metrics", "/sd", "/-/ready"] {
            let response = get(path, Some(("prometheus", "s3cret pass")))
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["x-frame-options"], "deny");
            assert_eq!(
                response.headers()["strict-transport-security"],
                "max-age=31536000"
            );
        }
    }
    let probe = get("/probe?customer_id=x", Some(("prometheus", "s3cret pass")))
        .await
        .unwrap();
    assert_eq!(
        probe.status(),
        400,
        "past auth, /probe checks its parameters"
    );

    // Health stays open, with the headers.
    let health = get("/-/healthy", None).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-frame-options"], "deny");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_without_tls_and_users_reload() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir, &auth_yaml(&[("alice", "first")])).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/metrics", server.addr);
    let status = |user: &'static str, password: &'static str| {
        let request = http.get(&url).basic_auth(user, Some(password));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("alice", "first").await, 200);
    assert_eq!(status("alice", "second").await, 401);

    // A new password hash on disk applies to the next request; the cached
    // success for the old password no longer counts.
    std::thread::sleep(Duration::from_millis(20));
    write_atomically(&server.path("web.yml"), &auth_yaml(&[("alice", "second")]));
    assert_eq!(status("alice", "second").await, 200);
    assert_eq!(status("alice", "first").await, 401);

    // A broken edit keeps the last good config.
    write_atomically(
        &server.path("web.yml"),
        "basic_auth_users:\n  alice: not-a-hash\n",
    );
    assert_eq!(status("alice", "second").await, 200);
    server.stop().await;
}

#[tokio::test]
async fn debug_output_hides_hashes_and_keys() {
    let ca = Ca::new("test CA");
    let leaf = ca.server("exporter", 1);
    let dir = tempfile::tempdir().unwrap();
    leaf.write(dir.path(), "server");
    let hash = bcrypt_hash("pw");
    let yaml = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key: |\n{}basic_auth_users:\n  alice: '{hash}'\n",
        leaf.key_pem
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    std::fs::write(dir.path().join("web.yml"), yaml).unwrap();
    let config = WebConfig::load(&dir.path().join("web.yml")).unwrap();
    assert!(config.tls_enabled() && config.auth_enabled());
    let handle = WebConfigHandle::load(&dir.path().join("web.yml")).unwrap();
    for debug in [format!("{config:?}"), format!("{:?}", handle)] {
        assert!(!debug.contains(&hash), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        let key_body = leaf.key_pem.lines().nth(1).unwrap();
        assert!(!debug.contains(key_body), "{debug}");
    }
}

// --- validation ---------------------------------------------------------------

/// Every rule, with the exact message: the file, the key, what to do.
#[test]
fn invalid_web_configs_name_the_file_and_the_key() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.server("exporter", 1);
    leaf.write(dir.path(), "server");
    ca.server("other", 2).write(dir.path(), "other");
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.path().join("empty.pem"), "no PEM here\n").unwrap();
    let file = dir.path().join("web.yml");
    let shown = file.display().to_string();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases: Vec<(String, String)> = vec![
        (
            "tls_server_config:\n  cert_fil: server.crt\n".into(),
            "tls_server_config.cert_fil: unknown field `cert_fil`, expected one of `cert`, `key`, `client_ca`, `cert_file`, `key_file`, `client_auth_type`, `client_ca_file`, `cipher_suites`, `curve_preferences`, `min_version`, `max_version`, `prefer_server_cipher_suites`, `client_allowed_sans` at line 2 column 3".into(),
        ),
        (
            "tls_config: {}\n".into(),
            "tls_config: unknown field `tls_config`, expected one of `tls_server_config`, `http_server_config`, `basic_auth_users`, `rate_limit`".into(),
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n".into(),
            "tls_server_config.key_file: missing: set one of key_file or key".into(),
        ),
        (
            "tls_server_config:\n  key_file: server.key\n".into(),
            "tls_server_config.cert_file: missing: set one of cert_file or cert".into(),
        ),
        (
            "tls_server_config:\n  min_version: TLS12\n".into(),
            "tls_server_config.cert_file: missing: set one of cert_file or cert".into(),
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".into(),
            format!(
                "tls_server_config.cert_file: cannot read {}: No such file or directory (os error 2)",
                dir.path().join("missing.crt").display()
            ),
        ),
        (
            "tls_server_config:\n  cert_file: empty.pem\n  key_file: server.key\n".into(),
            "tls_server_config.cert_file: no CERTIFICATE block found (expected PEM)".into(),
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n".into(),
            "tls_server_config.key_file: no private key found (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)".into(),
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n".into(),
            "tls_server_config.key_file: the private key does not match the certificate in cert_file".into(),
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  cert: x\n  key_file: server.key\n".into(),
            "tls_server_config.cert_file: cert_file and cert are mutually exclusive: set one".into(),
        ),
        (
            format!("{tls}  min_version: TLS10\n"),
            "tls_server_config.min_version: TLS10 is not supported: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13".into(),
        ),
        (
            format!("{tls}  min_version: TLS11\n"),
            "tls_server_config.min_version: TLS11 is not supported: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13".into(),
        ),
        (
            format!("{tls}  min_version: TLS14\n"),
            "tls_server_config.min_version: unknown variant `TLS14`, expected one of `TLS10`, `TLS11`, `TLS12`, `TLS13` at line 4 column 16".into(),
        ),
        (
            format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"),
            "tls_server_config.max_version: TLS12 is below min_version TLS13".into(),
        ),
        (
            format!("{tls}  client_auth_type: RequireSomething\n"),
            "tls_server_config.client_auth_type: unknown variant `RequireSomething`, expected one of `NoClientCert`, `RequestClientCert`, `RequireAnyClientCert`, `RequireClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert` at line 4 column 21".into(),
        ),
        (
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file: missing: client_auth_type RequireAndVerifyClientCert verifies client certificates against client_ca_file (or client_ca)".into(),
        ),
        (
            format!("{tls}  client_ca_file: ca.crt\n"),
            "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert: set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove it".into(),
        ),
        (
            format!("{tls}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: empty.pem\n"),
            "tls_server_config.client_ca_file: no CERTIFICATE block found (expected PEM)".into(),
        ),
        (
            format!("{tls}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
            "tls_server_config.cipher_suites: \"TLS_RSA_WITH_AES_128_CBC_SHA\" is unknown or not supported by rustls; supported: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
        ),
        (
            format!("{tls}  curve_preferences: [CurveP521]\n"),
            "tls_server_config.curve_preferences: CurveP521 is not supported by rustls; use X25519, CurveP256 or CurveP384".into(),
        ),
        (
            format!("{tls}  curve_preferences: [Curve25519]\n"),
            "tls_server_config.curve_preferences: unknown curve \"Curve25519\"; expected X25519, CurveP256, CurveP384 or X25519MLKEM768".into(),
        ),
        (
            format!("{tls}  client_allowed_sans: [prometheus]\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"),
            "tls_server_config.client_allowed_sans: not supported by avepoint-exporter; issue client certificates from a dedicated client_ca_file instead".into(),
        ),
        (
            "http_server_config:\n  headers:\n    Content-Type: text/html\n".into(),
            "http_server_config.headers.Content-Type: HTTP header \"Content-Type\" can not be configured; allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy".into(),
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow-from\n".into(),
            "http_server_config.headers.X-Frame-Options: invalid value \"allow-from\"; expected one of: deny, sameorigin".into(),
        ),
        (
            "http_server_config:\n  http3: true\n".into(),
            "http_server_config.http3: unknown field `http3`, expected `http2` or `headers` at line 2 column 3".into(),
        ),
        (
            "basic_auth_users:\n  alice: password\n".into(),
            "basic_auth_users.alice: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost and 53 characters; see docs/web-config.md for how to make one)".into(),
        ),
        (
            format!("basic_auth_users:\n  'a:b': '{}'\n", bcrypt_hash("x")),
            "basic_auth_users.a:b: a user name must not contain ':' (HTTP basic authentication cannot send it)".into(),
        ),
        (
            "basic_auth_users: [alice]\n".into(),
            "basic_auth_users: invalid type: sequence, expected a map at line 1 column 19".into(),
        ),
        (
            "rate_limit:\n  burst: 10\n  interval: 1s\n".into(),
            "rate_limit: not supported by avepoint-exporter; limit request rates in a reverse proxy".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (yaml, expected) in cases {
        std::fs::write(&file, &yaml).unwrap();
        let expected = format!("web config file {shown}: {expected}");
        match WebConfig::load(&file) {
            Ok(_) => failures.push(format!("accepted:\n{yaml}")),
            Err(error) if error.to_string() == expected => {}
            Err(error) => failures.push(format!(
                "for:\n{yaml}\nexpected: {expected}\n     got: {error}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    let missing = dir.path().join("nope.yml");
    assert_eq!(
        WebConfig::load(&missing).unwrap_err().to_string(),
        format!(
            "web config file {}: cannot read it: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

/// The documented examples in tests/testdata/web-config parse (with the
/// certificates they name made here).
#[test]
fn example_files_are_valid() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/web-config");
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.server("exporter", 1).write(dir.path(), "server");
    std::fs::write(dir.path().join("client-ca.crt"), Ca::new("client CA").pem()).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::copy(&path, &copy).unwrap();
        let result = WebConfig::load(&copy);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".bad.yml") {
            assert!(result.is_err(), "{name} should be rejected");
        } else {
            result.unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        seen += 1;
    }
    assert!(seen >= 4, "only {seen} example files");
}

// --- the binary -----------------------------------------------------------------

#[test]
fn binary_refuses_to_start_with_a_bad_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_offline_config(dir.path());
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"))
        .args(["--config.file", config.to_str().unwrap()])
        .args(["--web.config.file", web.to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("AVEPOINT_CLIENT_SECRET", "x")
        .env_remove("AVEPOINT_CLIENT_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "web config file {}: tls_server_config.cert_file: cannot read {}",
        web.display(),
        dir.path().join("nowhere.crt").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_https_and_shuts_down_gracefully() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.server("exporter", 1).write(dir.path(), "server");
    let config = common::write_offline_config(dir.path());
    let web = dir.path().join("web.yml");
    let hash = bcrypt_hash("pw");
    std::fs::write(
        &web,
        tls_yaml("") + &format!("basic_auth_users:\n  prom: '{hash}'\n"),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_avepoint-exporter"));
    command
        .args(["--config.file", config.to_str().unwrap()])
        .args(["--web.config.file", web.to_str().unwrap()])
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "debug",
        ])
        .env("AVEPOINT_CLIENT_SECRET", "x")
        .env_remove("AVEPOINT_CLIENT_ID");
    let binary = common::RunningBinary::spawn(command);
    let address = binary.address.clone();
    let response = client(&ca, None)
        .get(format!("https://{address}/-/ready"))
        .basic_auth("prom", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let log = binary.terminate();
    assert!(log.contains("tls=true"), "{log}");
    assert!(log.contains("message=\"shutting down\""), "{log}");
    assert!(!log.contains(&hash), "a password hash in the log:\n{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}
