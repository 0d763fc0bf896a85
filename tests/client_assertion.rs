//! Certificate authentication (issue #4): the exporter signs a JWT
//! `client_assertion` with the certificate's RSA key instead of sending a
//! client secret. Keys and certificates are generated here with rcgen; an
//! independent JWT library (jsonwebtoken) checks what the exporter sends,
//! and the simulator checks it as an identity server would.

use crate::common;

use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime};

use avepoint_exporter::avepoint::certificate::{
    ASSERTION_CLOCK_SKEW, ASSERTION_LIFETIME, CLIENT_ASSERTION_TYPE, ClientCertificate,
};
use avepoint_exporter::config::Settings;
use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, RunningSimulator, SimulatorConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Harness, Setup};
use rcgen::{CertificateParams, KeyPair};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// An RSA key and a self-signed certificate for it, as PEM files.
struct Credential {
    key: KeyPair,
    certificate: rcgen::Certificate,
    dir: tempfile::TempDir,
}

impl Credential {
    fn rsa() -> Credential {
        Self::with_key(KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key generation"))
    }

    fn with_key(key: KeyPair) -> Credential {
        let certificate = CertificateParams::new(vec!["avepoint-exporter".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("certificate.pem"), certificate.pem()).unwrap();
        std::fs::write(dir.path().join("private-key.pem"), key.serialize_pem()).unwrap();
        Credential {
            key,
            certificate,
            dir,
        }
    }

    fn certificate_file(&self) -> PathBuf {
        self.dir.path().join("certificate.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("private-key.pem")
    }

    fn load(&self) -> ClientCertificate {
        ClientCertificate::load(&self.certificate_file(), &self.key_file())
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// The config lines under `avepoint:`.
    fn config_lines(&self) -> String {
        format!(
            "  client_certificate_file: {}\n  client_private_key_file: {}\n",
            self.certificate_file().display(),
            self.key_file().display()
        )
    }

    /// Every line of the private key's PEM body: none may ever be shown.
    fn secret_lines(&self) -> Vec<String> {
        self.key
            .serialize_pem()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .map(str::to_owned)
            .collect()
    }

    /// SHA-1 of the certificate's DER, computed here from rcgen's DER.
    fn sha1(&self) -> Vec<u8> {
        aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            self.certificate.der(),
        )
        .as_ref()
        .to_vec()
    }
}

/// The simulator's harness with certificate authentication and no secret.
async fn harness_with(trusted: Option<&Credential>, used: &Credential) -> Harness {
    Harness::start(Setup {
        sim: SimulatorConfig {
            trusted_certificate: trusted.map(|c| c.certificate.pem().into_bytes()),
            ..SimulatorConfig::default()
        },
        avepoint_extra: used.config_lines(),
        secret: String::new(),
        ..Setup::default()
    })
    .await
}

/// No line of the key's PEM body (so no base64 of its DER either, wrapped
/// or not: base64 lines start at the same offsets).
fn assert_no_key_material(credential: &Credential, text: &str, what: &str) {
    for line in credential.secret_lines() {
        assert!(!text.contains(&line), "private key line in {what}:\n{text}");
    }
}

#[tokio::test]
async fn certificate_auth_scrapes_every_profile_with_exact_values() {
    let credential = Credential::rsa();
    let harness = harness_with(Some(&credential), &credential).await;
    let metrics = harness.scrape().await;
    let targets = harness.sim.profile_ids();
    assert_eq!(targets.len(), 9);
    for (customer, profile) in &targets {
        assert_eq!(
            metrics.profile_value("avepoint_scan_profile_up", customer, profile),
            1.0,
            "{customer} {profile}"
        );
    }
    let (customer, profile) = &targets[4];
    let report = harness.sim.current_report(customer, profile).unwrap();
    let ids = [
        ("customer_id", customer.as_str()),
        ("profile_id", profile.as_str()),
    ];
    for (name, expected) in common::report_values(&report) {
        assert_eq!(metrics.value(name, &ids), expected, "{name}");
    }
    let info = metrics.find("avepoint_scan_profile_info", &ids);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["profile_name"], report.profile_name);
    assert_eq!(info[0].labels["tenant_id"], report.tenant_id);

    // One token, got with a client assertion, for every profile.
    let stats = harness.sim.stats();
    assert_eq!(
        stats
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats
            .client_assertions
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // A token refresh signs a new assertion (a new jti): revoked tokens
    // are replaced without the simulator seeing a replay.
    harness.sim.revoke_tokens();
    let again = harness.scrape().await;
    for (customer, profile) in &targets {
        assert_eq!(
            again.profile_value("avepoint_scan_profile_up", customer, profile),
            1.0
        );
    }
    assert_eq!(
        stats
            .client_assertions
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_no_key_material(&credential, &metrics.text, "metrics");
}

#[tokio::test]
async fn a_certificate_that_is_not_registered_sets_every_profile_down_and_says_why() {
    let registered = Credential::rsa();
    let other = Credential::rsa();
    for (trusted, description) in [
        (
            Some(&registered),
            "client assertion kid is not the registered certificate's SHA-1 thumbprint",
        ),
        (None, "no certificate is registered for this client"),
    ] {
        let harness = harness_with(trusted, &other).await;
        let message = common::auth_error_of_every_profile(&harness).await;
        assert_eq!(
            message,
            format!(
                "token endpoint rejected the client credentials (HTTP 401 Unauthorized, \
                 invalid_client: {description}): check avepoint.client_id and that the \
                 certificate in avepoint.client_certificate_file is uploaded to the app registration"
            )
        );
        assert_no_key_material(&other, &message, "error");

        let metrics = harness.scrape().await;
        common::assert_token_refused(&harness, &metrics);
        assert_no_key_material(&other, &metrics.text, "metrics");
    }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The public key as PKCS#1 `RSAPublicKey` DER (what jsonwebtoken takes).
fn public_key(credential: &Credential) -> jsonwebtoken::DecodingKey {
    jsonwebtoken::DecodingKey::from_rsa_der(credential.key.public_key_raw())
}

#[test]
fn the_assertion_has_the_documented_header_and_claims_and_verifies() {
    let credential = Credential::rsa();
    let certificate = credential.load();
    let audience = "https://identity.avepointonlineservices.com/connect/token";
    let now = SystemTime::now();
    let assertion = certificate
        .client_assertion("the-client", audience, now)
        .unwrap();
    let assertion = assertion.expose_secret();
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3);

    let sha1 = credential.sha1();
    let hex: String = sha1.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(certificate.thumbprint(), hex);
    assert_eq!(
        decode_part(parts[0]),
        json!({
            "alg": "RS256",
            "typ": "JWT",
            "kid": hex,
            "x5t": URL_SAFE_NO_PAD.encode(&sha1),
        })
    );
    let claims = decode_part(parts[1]);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&jti).is_ok(), "{jti}");
    assert_eq!(
        claims,
        json!({
            "iss": "the-client",
            "sub": "the-client",
            "aud": audience,
            "jti": jti,
            "iat": unix(now),
            "nbf": unix(now - ASSERTION_CLOCK_SKEW),
            "exp": unix(now + ASSERTION_LIFETIME),
        })
    );
    assert_eq!(ASSERTION_LIFETIME, Duration::from_secs(300));

    // An independent JWT implementation accepts it with the public key.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["the-client"]);
    validation.sub = Some("the-client".into());
    validation.validate_nbf = true;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub", "jti"]);
    let decoded = jsonwebtoken::decode::<Value>(assertion, &public_key(&credential), &validation)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(decoded.claims["jti"], jti.as_str());
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.kid.as_deref(), Some(hex.as_str()));
    assert_eq!(
        header.x5t.as_deref(),
        Some(URL_SAFE_NO_PAD.encode(&sha1).as_str())
    );

    // Tampered claims or signature, or another key: rejected.
    let mut other_claims = claims.clone();
    other_claims["sub"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(other_claims.to_string()),
        parts[2]
    );
    assert!(
        jsonwebtoken::decode::<Value>(&tampered, &public_key(&credential), &validation).is_err()
    );
    let other = Credential::rsa();
    assert!(jsonwebtoken::decode::<Value>(assertion, &public_key(&other), &validation).is_err());

    // Every assertion has its own jti.
    let second = certificate
        .client_assertion("the-client", audience, now)
        .unwrap();
    assert_ne!(
        decode_part(second.expose_secret().split('.').nth(1).unwrap())["jti"],
        jti.as_str()
    );
}

/// PKCS#1 `RSAPrivateKey` DER out of a PKCS#8 `PrivateKeyInfo`: the
/// content of its OCTET STRING (version, algorithm and key follow each
/// other in one SEQUENCE).
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    /// (tag, content, rest) of the DER element at the start of `input`.
    fn element(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (input[0], input[1] as usize);
        let (length, header) = if first < 0x80 {
            (first, 2)
        } else {
            let bytes = first & 0x7f;
            let length = input[2..2 + bytes]
                .iter()
                .fold(0, |length, byte| (length << 8) | *byte as usize);
            (length, 2 + bytes)
        };
        (
            tag,
            &input[header..header + length],
            &input[header + length..],
        )
    }
    let (tag, info, _) = element(pkcs8);
    assert_eq!(tag, 0x30);
    let (tag, _version, rest) = element(info);
    assert_eq!(tag, 0x02);
    let (tag, _algorithm, rest) = element(rest);
    assert_eq!(tag, 0x30);
    let (tag, key, _) = element(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

/// POST a token request to the simulator: (status, JSON body, raw body).
async fn token_request(sim: &RunningSimulator, fields: &[(&str, &str)]) -> (u16, Value, String) {
    let response = reqwest::Client::new()
        .post(sim.token_url())
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), text)
}

async fn assertion_request(sim: &RunningSimulator, assertion: &str) -> (u16, Value, String) {
    token_request(
        sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("scope", "elements.scanprofiles.read.all"),
        ],
    )
    .await
}

#[tokio::test]
async fn the_simulator_accepts_only_valid_unused_assertions_of_the_registered_certificate() {
    let registered = Credential::rsa();
    let other = Credential::rsa();
    let sim = RunningSimulator::start(
        SimulatorConfig {
            trusted_certificate: Some(registered.certificate.pem().into_bytes()),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let certificate = registered.load();
    let token_url = sim.token_url();
    let now = SystemTime::now();
    let sign = |client_id: &str, audience: &str, at: SystemTime| {
        certificate
            .client_assertion(client_id, audience, at)
            .unwrap()
            .expose_secret()
            .to_owned()
    };

    let valid = sign(DEMO_CLIENT_ID, &token_url, now);
    let (status, body, _) = assertion_request(&sim, &valid).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    // The secret still works alongside the certificate.
    let (status, _, _) = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200);

    // An independent JWT implementation's assertion is accepted too.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(certificate.thumbprint().to_lowercase());
    header.x5t = Some(certificate.x5t());
    let claims = json!({
        "iss": DEMO_CLIENT_ID, "sub": DEMO_CLIENT_ID, "aud": [token_url.as_str()],
        "jti": "independent-1", "exp": unix(now) + 60, "nbf": unix(now),
    });
    let independent = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(
            &registered.key.serialize_der(),
        )),
    )
    .unwrap();
    let (status, body, _) = assertion_request(&sim, &independent).await;
    assert_eq!(status, 200, "{body}");
    // The same header, signed by another key.
    let forged = jsonwebtoken::encode(
        &header,
        &json!({
            "iss": DEMO_CLIENT_ID, "sub": DEMO_CLIENT_ID, "aud": token_url.as_str(),
            "jti": "forged-1", "exp": unix(now) + 60, "nbf": unix(now),
        }),
        &jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(&other.key.serialize_der())),
    )
    .unwrap();

    let parts: Vec<&str> = valid.split('.').collect();
    let mut claims = decode_part(parts[1]);
    claims["sub"] = json!("someone-else");
    let tampered_claims = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let fresh = sign(DEMO_CLIENT_ID, &token_url, now);
    let fresh_parts: Vec<&str> = fresh.split('.').collect();
    let mut signature = URL_SAFE_NO_PAD.decode(fresh_parts[2]).unwrap();
    signature[0] ^= 1;
    let tampered_signature = format!(
        "{}.{}.{}",
        fresh_parts[0],
        fresh_parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let unregistered = other
        .load()
        .client_assertion(DEMO_CLIENT_ID, &token_url, now)
        .unwrap()
        .expose_secret()
        .to_owned();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "replayed",
            valid.clone(),
            "client assertion jti was already used",
        ),
        (
            "expired",
            sign(DEMO_CLIENT_ID, &token_url, now - Duration::from_secs(600)),
            "client assertion has expired",
        ),
        (
            "not yet valid",
            sign(DEMO_CLIENT_ID, &token_url, now + Duration::from_secs(180)),
            "client assertion is not valid yet (nbf is in the future)",
        ),
        (
            "tampered claims",
            tampered_claims,
            "client assertion signature does not verify with the registered certificate",
        ),
        (
            "tampered signature",
            tampered_signature,
            "client assertion signature does not verify with the registered certificate",
        ),
        (
            "registered thumbprint, another key",
            forged,
            "client assertion signature does not verify with the registered certificate",
        ),
        (
            "another certificate",
            unregistered,
            "client assertion kid is not the registered certificate's SHA-1 thumbprint",
        ),
        (
            "alg none",
            unsigned,
            "client assertion must be signed with alg RS256",
        ),
        (
            "audience of another endpoint",
            sign(
                DEMO_CLIENT_ID,
                "https://identity.avepointonlineservices.com/connect/token",
                now,
            ),
            "client assertion aud is not this token endpoint's URL",
        ),
        (
            "audience on another port",
            sign(DEMO_CLIENT_ID, "http://127.0.0.1:1/connect/token", now),
            "client assertion aud is not this token endpoint's URL",
        ),
        (
            "audience of another path",
            sign(
                DEMO_CLIENT_ID,
                &format!("{}/connect/authorize", sim.base_url()),
                now,
            ),
            "client assertion aud is not this token endpoint's URL",
        ),
        (
            "another issuer",
            sign("someone-else", &token_url, now),
            "client assertion iss and sub must both be the client id",
        ),
        (
            "not a JWT",
            "not-a-jwt".to_owned(),
            "client assertion is not a signed JWT",
        ),
    ];
    for (case, assertion, description) in &cases {
        let (status, body, text) = assertion_request(&sim, assertion).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(
            body,
            json!({"error": "invalid_client", "error_description": description}),
            "{case}"
        );
        for part in assertion.split('.').filter(|part| part.len() > 8) {
            assert!(
                !text.contains(part),
                "{case}: the answer echoes the assertion"
            );
        }
    }

    let fresh = sign(DEMO_CLIENT_ID, &token_url, now);
    for (fields, status, expected) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_CLIENT_ID),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", fresh.as_str()),
            ],
            401,
            json!({"error": "invalid_client", "error_description": "unsupported client_assertion_type"}),
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", fresh.as_str()),
            ],
            400,
            json!({"error": "invalid_request", "error_description": "send client_secret or client_assertion, not both"}),
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_CLIENT_ID),
                ("client_assertion", fresh.as_str()),
            ],
            400,
            json!({"error": "invalid_request", "error_description": "client_assertion and client_assertion_type go together"}),
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "someone-else"),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", fresh.as_str()),
            ],
            401,
            json!({"error": "invalid_client", "error_description": "unknown client"}),
        ),
    ] {
        let (got_status, body, _) = token_request(&sim, &fields).await;
        assert_eq!((got_status, &body), (status, &expected));
    }
    // None of those used up the fresh assertion's jti.
    let (status, body, _) = assertion_request(&sim, &fresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sim.stats()
            .client_assertions
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test]
async fn the_simulator_takes_its_certificate_as_der_and_refuses_garbage() {
    let credential = Credential::rsa();
    let sim = RunningSimulator::start(
        SimulatorConfig {
            trusted_certificate: Some(credential.certificate.der().to_vec()),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let assertion = credential
        .load()
        .client_assertion(DEMO_CLIENT_ID, &sim.token_url(), SystemTime::now())
        .unwrap();
    let (status, body, _) = assertion_request(&sim, assertion.expose_secret()).await;
    assert_eq!(status, 200, "{body}");

    let error = RunningSimulator::start(
        SimulatorConfig {
            trusted_certificate: Some(b"not a certificate".to_vec()),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .err()
    .expect("garbage is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

/// Load a config `avepoint.yml` written into `dir` with `avepoint_lines`;
/// relative paths in it resolve next to it. `secret` is AVEPOINT_CLIENT_SECRET.
fn load_in(dir: &Path, avepoint_lines: &str, secret: Option<&str>) -> Result<Settings, String> {
    let path = dir.join("avepoint.yml");
    std::fs::write(
        &path,
        format!(
            "avepoint:\n  client_id: the-client\n{avepoint_lines}targets:\n  - customer_id: caf90000-2cc6-4000-b04b-794c00005ea3\n    profile_ids: [47dba9a1-1004-4c2d-b2ce-8f5e66f5842d]\n"
        ),
    )
    .unwrap();
    let secret = secret.map(str::to_owned);
    Settings::load(&path, |name| {
        (name == "AVEPOINT_CLIENT_SECRET")
            .then(|| secret.clone())
            .flatten()
    })
    .map_err(|error| error.to_string())
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let dir = "tests/testdata/config";
    for (file, secret, expected) in [
        (
            "certificate-and-secret-file.yml",
            None,
            "avepoint.client_certificate_file: a client secret is configured too \
             (avepoint.client_secret_file): use either a client secret or \
             avepoint.client_certificate_file with avepoint.client_private_key_file, not both",
        ),
        (
            "certificate-without-key.yml",
            Some("from-the-environment"),
            "avepoint.client_certificate_file: a client secret is configured too \
             (AVEPOINT_CLIENT_SECRET): use either a client secret or \
             avepoint.client_certificate_file with avepoint.client_private_key_file, not both",
        ),
        (
            // A blank variable is no secret: the certificate's own problem shows.
            "certificate-without-key.yml",
            Some(" "),
            "avepoint.client_private_key_file: missing: avepoint.client_certificate_file \
             needs the certificate's private key here",
        ),
        (
            "certificate-key-without-certificate.yml",
            None,
            "avepoint.client_certificate_file: missing: avepoint.client_private_key_file \
             needs its certificate here",
        ),
        (
            "certificate-unreadable.yml",
            None,
            "avepoint.client_certificate_file: cannot read \
             tests/testdata/config/does-not-exist.pem: No such file or directory (os error 2)",
        ),
        (
            "certificate-not-pem.yml",
            None,
            "avepoint.client_certificate_file: tests/testdata/config/client-secret.txt holds \
             no PEM certificate (-----BEGIN CERTIFICATE-----): none found",
        ),
        (
            // Neither credential (the file has no secret and none is in the env).
            "invalid-missing-secret.yml",
            None,
            "avepoint.client_secret_file: no client credential: set avepoint.client_secret_file \
             or AVEPOINT_CLIENT_SECRET, or avepoint.client_certificate_file and \
             avepoint.client_private_key_file",
        ),
    ] {
        let error = Settings::load(&Path::new(dir).join(file), |name| {
            (name == "AVEPOINT_CLIENT_SECRET")
                .then(|| secret.map(str::to_owned))
                .flatten()
        })
        .err()
        .unwrap_or_else(|| panic!("{file} loads"));
        assert_eq!(
            error.to_string(),
            format!("config file {dir}/{file}: {expected}"),
            "{file}"
        );
    }
}

#[test]
fn unusable_certificates_and_keys_are_refused_with_the_file_named() {
    let rsa = Credential::rsa();
    let ec = Credential::with_key(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
    let ed25519 = Credential::with_key(KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap());
    let other = Credential::rsa();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = format!("config file {}", d.join("avepoint.yml").display());
    let write = |name: &str, content: &[u8]| {
        std::fs::write(d.join(name), content).unwrap();
        d.join(name).display().to_string()
    };
    let rsa_cert = write("rsa.pem", rsa.certificate.pem().as_bytes());
    let rsa_key = write("rsa.key", rsa.key.serialize_pem().as_bytes());
    let ec_cert = write("ec.pem", ec.certificate.pem().as_bytes());
    let ec_key = write("ec.key", ec.key.serialize_pem().as_bytes());
    let ed_key = write("ed25519.key", ed25519.key.serialize_pem().as_bytes());
    let other_key = write("other.key", other.key.serialize_pem().as_bytes());
    let sec1 = write(
        "sec1.key",
        b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n",
    );
    let encrypted = write(
        "encrypted.key",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let not_base64 = write(
        "not-base64.key",
        b"-----BEGIN PRIVATE KEY-----\n!!!! not base64 !!!!\n-----END PRIVATE KEY-----\n",
    );
    let truncated = write(
        "truncated.key",
        b"-----BEGIN PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n",
    );
    let garbage_der = write(
        "garbage.key",
        b"-----BEGIN PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END PRIVATE KEY-----\n",
    );
    let missing = d.join("missing.key").display().to_string();
    let lines = |cert: &str, key: &str| {
        format!("  client_certificate_file: {cert}\n  client_private_key_file: {key}\n")
    };
    let key_error = "avepoint.client_private_key_file";
    let not_rsa = |file: &str, what: &str| {
        format!(
            "{config}: {key_error}: {file} holds {what}, not an RSA key: client assertions are \
             signed RS256, which needs an RSA key of 2048 bits or more"
        )
    };
    for (cert, key, expected) in [
        (
            &rsa_cert,
            &missing,
            format!(
                "{config}: {key_error}: cannot read {missing}: No such file or directory (os error 2)"
            ),
        ),
        (&rsa_cert, &ec_key, not_rsa(&ec_key, "an EC (ECDSA) key")),
        (&ec_cert, &ec_key, not_rsa(&ec_key, "an EC (ECDSA) key")),
        (&rsa_cert, &ed_key, not_rsa(&ed_key, "an Ed25519 key")),
        (
            &rsa_cert,
            &sec1,
            not_rsa(&sec1, "an EC key (-----BEGIN EC PRIVATE KEY-----)"),
        ),
        (
            &ec_cert,
            &rsa_key,
            format!(
                "{config}: avepoint.client_certificate_file: {ec_cert}: the certificate's public \
                 key is not an RSA key: client assertions are signed RS256 and need an RSA certificate"
            ),
        ),
        (
            &rsa_cert,
            &other_key,
            format!(
                "{config}: {key_error}: {other_key} is not the private key of the certificate in {rsa_cert}"
            ),
        ),
        (
            &rsa_cert,
            &encrypted,
            format!(
                "{config}: {key_error}: {encrypted} holds an encrypted private key, which the \
                 exporter cannot decrypt: store it unencrypted (openssl pkey -in encrypted.pem \
                 -out key.pem) in a file only the exporter can read"
            ),
        ),
        (
            &rsa_cert,
            &rsa_cert,
            format!(
                "{config}: {key_error}: {rsa_cert} holds no PEM private key (-----BEGIN PRIVATE \
                 KEY----- or -----BEGIN RSA PRIVATE KEY-----): none found"
            ),
        ),
        (
            &rsa_cert,
            &not_base64,
            format!(
                "{config}: {key_error}: {not_base64} holds no PEM private key (-----BEGIN PRIVATE \
                 KEY----- or -----BEGIN RSA PRIVATE KEY-----): a section is not valid base64"
            ),
        ),
        (
            &rsa_cert,
            &truncated,
            format!(
                "{config}: {key_error}: {truncated} holds no PEM private key (-----BEGIN PRIVATE \
                 KEY----- or -----BEGIN RSA PRIVATE KEY-----): a section has no -----END line"
            ),
        ),
        (
            &rsa_cert,
            &garbage_der,
            format!(
                "{config}: {key_error}: {garbage_der} cannot be used to sign client assertions: \
                 it is not a valid RSA private key (InvalidEncoding)"
            ),
        ),
    ] {
        let error = load_in(d, &lines(cert, key), None)
            .err()
            .unwrap_or_else(|| panic!("{key} loads"));
        assert_eq!(error, expected);
        for credential in [&rsa, &ec, &ed25519, &other] {
            assert_no_key_material(credential, &error, "error");
        }
    }

    // Relative paths resolve next to the config file; PKCS#8, PKCS#1 and a
    // combined certificate + key file all work.
    let pkcs1 = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD
            .encode(pkcs1_from_pkcs8(&rsa.key.serialize_der()))
    );
    write("pkcs1.key", pkcs1.as_bytes());
    write(
        "combined.pem",
        format!("{}{}", rsa.key.serialize_pem(), rsa.certificate.pem()).as_bytes(),
    );
    for (cert, key) in [
        ("rsa.pem", "rsa.key"),
        ("rsa.pem", "pkcs1.key"),
        ("combined.pem", "combined.pem"),
    ] {
        let settings =
            load_in(d, &lines(cert, key), None).unwrap_or_else(|error| panic!("{error}"));
        let certificate = settings
            .avepoint
            .credential
            .certificate()
            .expect("certificate");
        assert_eq!(certificate.certificate_file(), d.join(cert));
        assert_eq!(certificate.private_key_file(), d.join(key));
        let hex: String = rsa.sha1().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(certificate.thumbprint(), hex);
        assert_eq!(
            certificate.certificate_der().as_ref(),
            rsa.certificate.der().as_ref()
        );
        assert!(settings.avepoint.credential.secret().is_none());
    }
}

#[test]
fn debug_never_shows_the_private_key() {
    let credential = Credential::rsa();
    let dir = tempfile::tempdir().unwrap();
    let settings = load_in(dir.path(), &credential.config_lines(), None).unwrap();
    let certificate = settings.avepoint.credential.certificate().cloned().unwrap();
    for debug in [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{:?}", settings.avepoint),
        format!("{certificate:?}"),
    ] {
        assert_no_key_material(&credential, &debug, "Debug");
        assert!(debug.contains("private_key: \"[REDACTED]\""), "{debug}");
        assert!(debug.contains(&certificate.thumbprint()), "{debug}");
    }
    // Nor does the assertion's own Debug (a SecretString).
    let assertion = certificate
        .client_assertion(
            "the-client",
            "https://example.com/connect/token",
            SystemTime::now(),
        )
        .unwrap();
    let debug = format!("{assertion:?}");
    assert!(!debug.contains("eyJ"), "{debug}");
}

/// The binary at trace level with certificate authentication: the key and
/// the assertions never appear in the log or in any response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_never_show_the_key_or_the_assertion() {
    let credential = Credential::rsa();
    let sim = RunningSimulator::start(
        SimulatorConfig {
            trusted_certificate: Some(credential.certificate.pem().into_bytes()),
            ..SimulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = sim.exporter_config(None).replacen(
        "targets:",
        &format!("{}targets:", credential.config_lines()),
        1,
    );
    let path = credential.dir.path().join("avepoint.yml");
    std::fs::write(&path, config).unwrap();
    let mut command = common::trace_command(&path);
    command.env_remove("AVEPOINT_CLIENT_SECRET");
    let binary = common::RunningBinary::spawn(command);
    let address = binary.address.clone();
    let get = |path: &str| common::get_text(format!("http://{address}{path}"));
    let mut responses = String::new();
    for path in ["/metrics", "/", "/-/ready"] {
        responses.push_str(&get(path).await);
    }
    sim.revoke_tokens();
    responses.push_str(&get("/metrics").await);

    let log = binary.terminate();

    let up = responses
        .lines()
        .filter(|line| line.starts_with("avepoint_scan_profile_up{"))
        .collect::<Vec<_>>();
    assert_eq!(up.len(), 18, "{responses}");
    assert!(up.iter().all(|line| line.ends_with("} 1")), "{up:?}");
    assert_eq!(
        sim.stats()
            .client_assertions
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert!(log.contains("level=trace"), "not at trace level:\n{log}");
    for (what, text) in [("log", &log), ("responses", &responses)] {
        assert_no_key_material(&credential, text, what);
        // Every JWT starts with base64url of `{"`.
        assert!(!text.contains("eyJ"), "a JWT in {what}:\n{text}");
        assert!(!text.contains("client_assertion="), "the form in {what}");
        assert!(!text.contains("sim-token-"), "an access token in {what}");
    }
}

#[tokio::test]
async fn a_token_endpoint_echoing_the_assertion_never_gets_it_into_an_error() {
    let credential = Credential::rsa();
    let harness = harness_with(Some(&credential), &credential).await;
    harness.sim.set(Knob::TokenEcho(true));
    let snapshot = harness
        .state
        .rounds()
        .collect(std::time::Duration::from_secs(5))
        .await;
    let error = &snapshot.profiles[0].outcome.as_ref().unwrap_err().message;
    // The echo quotes the whole form; the assertion in it is gone, and so
    // is every part of it (header, claims, signature) long enough to matter.
    assert!(
        error.contains("request: client_assertion=<secret>&"),
        "{error}"
    );
    assert!(!error.contains("eyJ"), "a JWT part in {error}");
    assert_no_key_material(&credential, error, "the error");
}
