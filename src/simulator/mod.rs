//! An AvePoint Elements API on loopback: the token endpoint, both profile
//! endpoints and both discovery endpoints, with deterministic data, latency,
//! random errors and throttling, and per-profile faults for tests.
//!
//! `demo`, `simulate`, the integration tests and the benchmarks all use it;
//! nothing here reaches beyond the address it is bound to.

pub mod data;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::avepoint::certificate::CLIENT_ASSERTION_TYPE;
use crate::avepoint::model::{Page, PageMetadata, ScanProfileReport};
use data::{SimCustomer, mix};

/// Client id the simulator accepts unless told otherwise.
pub const DEMO_CLIENT_ID: &str = "5e1fc11e-0000-4000-8000-00000000de30";
/// Client secret the simulator accepts unless told otherwise.
pub const DEMO_CLIENT_SECRET: &str = "demo-secret-not-for-production";
/// Every permission the simulated app registration holds by default.
pub const ALL_PERMISSIONS: &str = "elements.scanprofiles.read.all elements.customers.read.all";

/// Knobs of a simulated AvePoint.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Number of customers.
    pub customers: usize,
    /// Scan profiles per customer.
    pub profiles_per_customer: usize,
    /// Added to every API (not token) response.
    pub latency: Duration,
    /// Share of API requests answered 500.
    pub error_rate: f64,
    /// Share of API requests answered 429 (with `Retry-After: 1`).
    pub throttle_rate: f64,
    /// Length of a simulated day: reports roll over this often.
    pub day_length: Duration,
    /// Seed of all generated data and of the random faults.
    pub seed: u64,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// Added to every token response.
    pub token_latency: Duration,
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret.
    pub client_secret: String,
    /// Permissions the app registration holds (space separated).
    pub permissions: String,
    /// A certificate uploaded to the app registration (PEM or DER): the
    /// token endpoint then also accepts `client_assertion` JWTs signed RS256
    /// with its private key. `None`: client secret only.
    pub trusted_certificate: Option<Vec<u8>>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            customers: 3,
            profiles_per_customer: 3,
            latency: Duration::ZERO,
            error_rate: 0.0,
            throttle_rate: 0.0,
            day_length: Duration::from_secs(86_400),
            seed: 1,
            token_lifetime: Duration::from_secs(3600),
            token_latency: Duration::ZERO,
            client_id: DEMO_CLIENT_ID.to_owned(),
            client_secret: DEMO_CLIENT_SECRET.to_owned(),
            permissions: ALL_PERMISSIONS.to_owned(),
            trusted_certificate: None,
        }
    }
}

/// A fault injected for one scan profile (tests pick one instead of
/// hand-building responses).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status with a JSON `message` body.
    Status(u16),
    /// Answer 429 with this `Retry-After` value.
    Throttle(Option<String>),
    /// Never answer (until the client gives up).
    Hang,
    /// Valid JSON cut in the middle.
    Truncated,
    /// An HTML error page with status 200.
    NotJson,
    /// A required field missing (`lastScanStatus`).
    MissingField,
    /// A count sent as a string.
    WrongTypes,
    /// Answer with this exact report (e.g. unknown enum codes, odd names).
    Report(ScanProfileReport),
    /// A valid report padded to this many bytes (a description field).
    Huge(usize),
    /// Break the connection instead of answering (hyper aborts it when the
    /// body stream fails), as a reset.
    Reset,
}

/// Request counters, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Token requests (all outcomes).
    pub token_requests: AtomicU64,
    /// Token requests whose client assertion was accepted.
    pub client_assertions: AtomicU64,
    /// Profile requests (all outcomes, both paths).
    pub profile_requests: AtomicU64,
    /// Discovery requests (both endpoints).
    pub discovery_requests: AtomicU64,
}

struct IssuedToken {
    expires_at: Instant,
    scopes: Vec<String>,
}

/// The certificate of [`SimulatorConfig::trusted_certificate`], parsed.
struct TrustedCertificate {
    der: CertificateDer<'static>,
    /// Upper-case hex SHA-1 of the DER (compared case-insensitively).
    kid: String,
    /// base64url SHA-1 of the DER.
    x5t: String,
}

impl TrustedCertificate {
    fn parse(bytes: &[u8]) -> std::io::Result<Self> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            CertificateDer::from_pem_slice(bytes)
                .map_err(|error| invalid(format!("trusted certificate: {error}")))?
        } else {
            CertificateDer::from(bytes.to_vec())
        };
        webpki::EndEntityCert::try_from(&der)
            .map_err(|error| invalid(format!("trusted certificate: {error}")))?;
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        Ok(Self {
            kid: sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect(),
            x5t: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            der,
        })
    }
}

struct SimState {
    config: SimulatorConfig,
    /// The bound address: a client assertion's `aud` must be this token URL.
    addr: SocketAddr,
    trusted_certificate: Option<TrustedCertificate>,
    /// `jti` of every accepted client assertion, with its `exp`, until then.
    used_jtis: Mutex<HashMap<String, f64>>,
    customers: Vec<SimCustomer>,
    started_wall: OffsetDateTime,
    started: Instant,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    faults: Mutex<HashMap<String, Fault>>,
    hidden_customers: Mutex<std::collections::HashSet<String>>,
    discovery_failing: std::sync::atomic::AtomicBool,
    paging_lies: std::sync::atomic::AtomicBool,
    bogus_customer: std::sync::atomic::AtomicBool,
    request_counter: AtomicU64,
    stats: SimStats,
    /// `http` or `https`: the scheme clients use (token URL checks).
    scheme: &'static str,
    protocols: ProtocolStats,
}

impl SimState {
    fn next_request_id(&self) -> u64 {
        self.request_counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A deterministic coin with probability `rate` for request `id`.
    fn coin(&self, id: u64, salt: u64, rate: f64) -> bool {
        rate > 0.0 && (mix(self.config.seed ^ mix(id ^ salt)) as f64 / u64::MAX as f64) < rate
    }

    fn day(&self) -> (u64, OffsetDateTime) {
        let day_length = self.config.day_length.max(Duration::from_millis(1));
        let elapsed = self.started.elapsed();
        let day = (elapsed.as_nanos() / day_length.as_nanos()) as u64;
        // Day 0 started one day length before the simulator, so the first
        // report already exists when a scrape comes.
        let started = self.started_wall + day_length * day as u32;
        (day + 1, started)
    }
}

/// A simulator serving on a loopback port; stops when dropped.
pub struct RunningSimulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// HTTP version counters, to show what clients negotiated (TLS + ALPN).
#[derive(Debug, Default)]
pub struct ProtocolStats {
    /// Requests over HTTP/2.
    pub http2_requests: AtomicU64,
    /// Requests over HTTP/1.x.
    pub http1_requests: AtomicU64,
}

impl RunningSimulator {
    /// Bind `addr` (use port 0 for a free port) and serve in the background.
    pub async fn start(config: SimulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with_web_config(config, addr, None).await
    }

    /// Like [`RunningSimulator::start`], served over HTTPS (HTTP/2 offered
    /// through ALPN, as AvePoint's hosts do) when `web_config` has a
    /// `tls_server_config`; the exporter's own TLS serving code does it.
    pub async fn start_with_web_config(
        config: SimulatorConfig,
        addr: SocketAddr,
        web_config: Option<Arc<crate::web_config::WebConfigHandle>>,
    ) -> std::io::Result<Self> {
        let trusted_certificate = config
            .trusted_certificate
            .as_deref()
            .map(TrustedCertificate::parse)
            .transpose()?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let started_wall = OffsetDateTime::now_utc() - config.day_length;
        let customers = data::generate(
            config.seed,
            config.customers,
            config.profiles_per_customer,
            started_wall,
        );
        let scheme = if web_config.as_ref().is_some_and(|w| w.tls_enabled()) {
            "https"
        } else {
            "http"
        };
        let state = Arc::new(SimState {
            config,
            addr,
            scheme,
            protocols: ProtocolStats::default(),
            trusted_certificate,
            used_jtis: Mutex::default(),
            customers,
            started_wall,
            started: Instant::now(),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            hidden_customers: Mutex::default(),
            discovery_failing: Default::default(),
            paging_lies: Default::default(),
            bogus_customer: Default::default(),
            request_counter: AtomicU64::new(1),
            stats: SimStats::default(),
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let app = router(Arc::clone(&state));
        tokio::spawn(async move {
            let shutdown = async {
                let _ = shutdown_rx.await;
            };
            if let Err(error) =
                crate::serve::serve_with_web_config(listener, app, shutdown, web_config).await
            {
                tracing::error!(%error, "simulator stopped");
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(shutdown),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// API base URL, for `avepoint.base_url`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.state.scheme, self.addr)
    }

    /// Token URL, for `avepoint.token_url`.
    pub fn token_url(&self) -> String {
        format!("{}://{}/connect/token", self.state.scheme, self.addr)
    }

    /// Requests by HTTP version.
    pub fn protocols(&self) -> &ProtocolStats {
        &self.state.protocols
    }

    /// Every (customer id, profile id) the simulator knows, in order.
    pub fn profile_ids(&self) -> Vec<(String, String)> {
        self.state
            .customers
            .iter()
            .flat_map(|c| c.profiles.iter().map(move |p| (c.id.clone(), p.id.clone())))
            .collect()
    }

    /// The simulated customers.
    pub fn customers(&self) -> &[SimCustomer] {
        &self.state.customers
    }

    /// The report the simulator would serve now for a profile (no faults).
    pub fn current_report(&self, customer_id: &str, profile_id: &str) -> Option<ScanProfileReport> {
        generated_report(&self.state, customer_id, profile_id)
    }

    /// Inject a fault for one profile (replacing any earlier one).
    pub fn set_fault(&self, profile_id: &str, fault: Fault) {
        lock(&self.state.faults).insert(profile_id.to_owned(), fault);
    }

    /// Hide customers from discovery (and answer 404 for their profile
    /// lists), as when a customer leaves; `&[]` shows every customer again.
    pub fn hide_customers(&self, customer_ids: &[&str]) {
        let mut hidden = lock(&self.state.hidden_customers);
        hidden.clear();
        hidden.extend(customer_ids.iter().map(|id| (*id).to_owned()));
    }

    /// Make both discovery endpoints answer 500 (or recover).
    pub fn set_discovery_failing(&self, failing: bool) {
        self.state
            .discovery_failing
            .store(failing, Ordering::Relaxed);
    }

    /// Make the discovery endpoints claim 1000 more items than they have and
    /// repeat their last page forever, like a buggy server.
    pub fn set_paging_lies(&self, lying: bool) {
        self.state.paging_lies.store(lying, Ordering::Relaxed);
    }

    /// Add a customer whose id is not a UUID (`../../etc`) to the customer
    /// list, as a buggy or hostile server might.
    pub fn set_bogus_customer(&self, on: bool) {
        self.state.bogus_customer.store(on, Ordering::Relaxed);
    }

    /// Remove all injected faults.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Forget every issued token: the next API call with one answers 401,
    /// as when a token expires or is revoked mid-run.
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// Request counters.
    pub fn stats(&self) -> &SimStats {
        &self.state.stats
    }

    /// A YAML config for the exporter pointing at this simulator with the
    /// given targets (all profiles when `targets` is `None`). The secret is
    /// not in it: pass it via `AVEPOINT_CLIENT_SECRET`.
    pub fn exporter_config(&self, targets: Option<&[(String, String)]>) -> String {
        let all = self.profile_ids();
        let targets = targets.unwrap_or(&all);
        let mut by_customer: Vec<(String, Vec<String>)> = Vec::new();
        for (customer, profile) in targets {
            match by_customer.iter_mut().find(|(c, _)| c == customer) {
                Some((_, profiles)) => profiles.push(profile.clone()),
                None => by_customer.push((customer.clone(), vec![profile.clone()])),
            }
        }
        let mut yaml = format!(
            "avepoint:\n  base_url: {}\n  token_url: {}\n  client_id: {}\n  # client secret: from AVEPOINT_CLIENT_SECRET\ntargets:{}\n",
            self.base_url(),
            self.token_url(),
            self.state.config.client_id,
            if by_customer.is_empty() { " []" } else { "" }
        );
        for (customer, profiles) in by_customer {
            yaml.push_str(&format!("  - customer_id: {customer}\n    profile_ids:\n"));
            for profile in profiles {
                yaml.push_str(&format!("      - {profile}\n"));
            }
        }
        yaml
    }

    /// Stop serving.
    pub fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/connect/token", post(token))
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles-v2/{profile_id}",
            get(profile),
        )
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles/{profile_id}/changes",
            get(profile_changes),
        )
        .route("/partner/external/v3/general/customers/batch", post(customers_batch))
        .route(
            "/partner/external/v3/general/customers/{customer_id}/scan-profiles/batch",
            post(profiles_batch),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            count_http_version,
        ))
        .with_state(state)
}

async fn count_http_version(
    State(state): State<Arc<SimState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let counter = if request.version() == axum::http::Version::HTTP_2 {
        &state.protocols.http2_requests
    } else {
        &state.protocols.http1_requests
    };
    counter.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(state): State<Arc<SimState>>, Form(form): Form<TokenForm>) -> Response {
    state.stats.token_requests.fetch_add(1, Ordering::Relaxed);
    if !state.config.token_latency.is_zero() {
        tokio::time::sleep(state.config.token_latency).await;
    }
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    match (
        form.client_assertion_type.as_deref(),
        form.client_assertion.as_deref(),
    ) {
        (None, None) => {
            if form.client_id.as_deref() != Some(state.config.client_id.as_str())
                || form.client_secret.as_deref() != Some(state.config.client_secret.as_str())
            {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "unknown client or wrong secret",
                );
            }
        }
        _ if form.client_secret.is_some() => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send client_secret or client_assertion, not both",
            );
        }
        (Some(CLIENT_ASSERTION_TYPE), Some(assertion)) => {
            if let Err(description) =
                verify_client_assertion(&state, form.client_id.as_deref(), assertion)
            {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
            }
            state
                .stats
                .client_assertions
                .fetch_add(1, Ordering::Relaxed);
        }
        (Some(_), Some(_)) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unsupported client_assertion_type",
            );
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_assertion and client_assertion_type go together",
            );
        }
    }
    let requested = form.scope.unwrap_or_default();
    let scopes: Vec<String> = requested
        .split_whitespace()
        .filter(|scope| {
            state
                .config
                .permissions
                .split_whitespace()
                .any(|held| held == *scope)
        })
        .map(str::to_owned)
        .collect();
    let id = state.next_request_id();
    let access_token = format!("sim-token-{:016x}", mix(state.config.seed ^ mix(id)));
    lock(&state.tokens).insert(
        access_token.clone(),
        IssuedToken {
            expires_at: Instant::now() + state.config.token_lifetime,
            scopes: scopes.clone(),
        },
    );
    Json(json!({
        "access_token": access_token,
        "expires_in": state.config.token_lifetime.as_secs(),
        "token_type": "Bearer",
        "scope": scopes.join(" "),
    }))
    .into_response()
}

/// Check a client assertion as an identity server would: RS256 signature by
/// the registered certificate, its thumbprint in `kid` and `x5t`, `iss` =
/// `sub` = the client id, `aud` = this token URL, `exp` in the future, `nbf`
/// not, and a `jti` never seen before. The error (an `error_description`)
/// never quotes the assertion.
fn verify_client_assertion(
    state: &SimState,
    form_client_id: Option<&str>,
    assertion: &str,
) -> Result<(), &'static str> {
    let trusted = state
        .trusted_certificate
        .as_ref()
        .ok_or("no certificate is registered for this client")?;
    let client_id = state.config.client_id.as_str();
    if form_client_id.is_some_and(|id| id != client_id) {
        return Err("unknown client");
    }
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("client assertion is not a signed JWT");
    };
    let json = |part: &str| -> Option<serde_json::Map<String, serde_json::Value>> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let header_json = json(header).ok_or("client assertion header is not base64url JSON")?;
    let text = |name: &str| header_json.get(name).and_then(serde_json::Value::as_str);
    if text("alg") != Some("RS256") {
        return Err("client assertion must be signed with alg RS256");
    }
    if !text("kid").is_some_and(|kid| kid.eq_ignore_ascii_case(&trusted.kid)) {
        return Err("client assertion kid is not the registered certificate's SHA-1 thumbprint");
    }
    if text("x5t") != Some(trusted.x5t.as_str()) {
        return Err("client assertion x5t is not the registered certificate's SHA-1 thumbprint");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "client assertion signature is not base64url")?;
    let certificate = webpki::EndEntityCert::try_from(&trusted.der)
        .map_err(|_| "the registered certificate cannot be parsed")?;
    certificate
        .verify_signature(
            webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
            format!("{header}.{claims}").as_bytes(),
            &signature,
        )
        .map_err(
            |_| "client assertion signature does not verify with the registered certificate",
        )?;

    let claims = json(claims).ok_or("client assertion claims are not base64url JSON")?;
    let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    if claim("iss") != Some(client_id) || claim("sub") != Some(client_id) {
        return Err("client assertion iss and sub must both be the client id");
    }
    let audience_ok = |aud: &str| {
        url::Url::parse(aud).is_ok_and(|url| {
            let host_ok = match url.host() {
                _ if state.addr.ip().is_unspecified() => true,
                Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip) == state.addr.ip(),
                Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip) == state.addr.ip(),
                Some(url::Host::Domain(domain)) => {
                    domain.eq_ignore_ascii_case("localhost") && state.addr.ip().is_loopback()
                }
                None => false,
            };
            url.scheme() == state.scheme
                && host_ok
                && url.port_or_known_default() == Some(state.addr.port())
                && url.path() == "/connect/token"
                && url.query().is_none()
        })
    };
    let audience_matches = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => audience_ok(aud),
        Some(serde_json::Value::Array(auds)) => {
            auds.iter().any(|aud| aud.as_str().is_some_and(audience_ok))
        }
        _ => false,
    };
    if !audience_matches {
        return Err("client assertion aud is not this token endpoint's URL");
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64);
    let exp = number("exp").ok_or("client assertion has no exp")?;
    if exp <= now {
        return Err("client assertion has expired");
    }
    let nbf = number("nbf").ok_or("client assertion has no nbf")?;
    if nbf > now {
        return Err("client assertion is not valid yet (nbf is in the future)");
    }
    let jti = claim("jti")
        .filter(|jti| !jti.is_empty())
        .ok_or("client assertion has no jti")?;
    let mut used = lock(&state.used_jtis);
    used.retain(|_, expires| *expires > now);
    if used.insert(jti.to_owned(), exp).is_some() {
        return Err("client assertion jti was already used");
    }
    Ok(())
}

fn api_error(status: StatusCode, request_id: u64, message: &str) -> Response {
    with_request_id(
        (status, Json(json!({"message": message}))).into_response(),
        request_id,
    )
}

fn with_request_id(mut response: Response, request_id: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("sim-{request_id:08x}")) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// Bearer check, scope check, latency and random faults shared by every API route.
async fn admit(state: &SimState, headers: &HeaderMap, permission: &str) -> Result<u64, Response> {
    let request_id = state.next_request_id();
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let granted = bearer.and_then(|token| {
        lock(&state.tokens)
            .get(token)
            .filter(|issued| issued.expires_at > Instant::now())
            .map(|issued| issued.scopes.iter().any(|scope| scope == permission))
    });
    match granted {
        None => {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                request_id,
                "missing, unknown or expired token",
            ));
        }
        Some(false) => {
            return Err(api_error(
                StatusCode::FORBIDDEN,
                request_id,
                &format!("the app lacks the permission {permission}"),
            ));
        }
        Some(true) => {}
    }
    if state.coin(request_id, 0x429, state.config.throttle_rate) {
        let mut response = api_error(
            StatusCode::TOO_MANY_REQUESTS,
            request_id,
            "rate limit exceeded",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(response);
    }
    if state.coin(request_id, 0x500, state.config.error_rate) {
        return Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            request_id,
            "internal server error",
        ));
    }
    Ok(request_id)
}

fn generated_report(
    state: &SimState,
    customer_id: &str,
    profile_id: &str,
) -> Option<ScanProfileReport> {
    let customer = state.customers.iter().find(|c| c.id == customer_id)?;
    let (index, profile) = customer
        .profiles
        .iter()
        .enumerate()
        .find(|(_, p)| p.id == profile_id)?;
    let (day, day_started) = state.day();
    let stale_since = state.started_wall - Duration::from_secs(50 * 3600);
    Some(data::report(
        state.config.seed,
        customer,
        profile,
        index as u64,
        day,
        day_started,
        stale_since,
    ))
}

async fn profile(
    State(state): State<Arc<SimState>>,
    Path((customer_id, profile_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    serve_profile(&state, &customer_id, &profile_id, &headers, false).await
}

async fn profile_changes(
    State(state): State<Arc<SimState>>,
    Path((customer_id, profile_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    serve_profile(&state, &customer_id, &profile_id, &headers, true).await
}

async fn serve_profile(
    state: &SimState,
    customer_id: &str,
    profile_id: &str,
    headers: &HeaderMap,
    with_lists: bool,
) -> Response {
    state.stats.profile_requests.fetch_add(1, Ordering::Relaxed);
    let request_id = match admit(state, headers, "elements.scanprofiles.read.all").await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let fault = lock(&state.faults).get(profile_id).cloned();
    let report = match &fault {
        Some(Fault::Report(report)) => Some(report.clone()),
        _ => generated_report(state, customer_id, profile_id),
    };
    let Some(report) = report else {
        return api_error(StatusCode::NOT_FOUND, request_id, "scan profile not found");
    };
    let mut body = match serde_json::to_value(&report) {
        Ok(body) => body,
        Err(_) => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                "encoding failed",
            );
        }
    };
    if with_lists {
        body["newRegisteredContent"] = json!(
            (0..report.new_registered_content_count.clamp(0, 50))
                .map(|i| json!({"id": format!("object-{i}"), "type": "Site"}))
                .collect::<Vec<_>>()
        );
        body["movedToAnotherContainerObjects"] = json!([]);
        body["removedFromMicrosoft365OrOutOfPolicyObjects"] = json!(
            (0..report.removed_from_m365_or_out_of_policy.clamp(0, 50))
                .map(|i| format!("removed-object-{i}"))
                .collect::<Vec<_>>()
        );
    }
    let text = body.to_string();
    let response = match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return api_error(status, request_id, "injected fault");
        }
        Some(Fault::Throttle(retry_after)) => {
            let mut response = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                request_id,
                "rate limit exceeded",
            );
            if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            json_response(text)
        }
        Some(Fault::Truncated) => {
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            json_response(text[..cut].to_owned())
        }
        Some(Fault::Huge(size)) => {
            body["description"] = json!("x".repeat(size));
            json_response(body.to_string())
        }
        Some(Fault::Reset) => {
            // A body stream that fails makes hyper abort the connection
            // mid-response, which the client sees as a reset.
            let failing = futures_util::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("injected reset"))
            });
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from_stream(failing))
                .unwrap_or_default();
        }
        Some(Fault::NotJson) => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Service temporarily unavailable</body></html>",
        )
            .into_response(),
        Some(Fault::MissingField) => {
            body.as_object_mut().map(|o| o.remove("lastScanStatus"));
            json_response(body.to_string())
        }
        Some(Fault::WrongTypes) => {
            body["newRegisteredContentCount"] = json!("many");
            json_response(body.to_string())
        }
        Some(Fault::Report(_)) | None => json_response(text),
    };
    with_request_id(response, request_id)
}

fn json_response(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    page_index: Option<u32>,
    page_size: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BatchBody {
    customer_ids: Option<Vec<String>>,
    scan_profile_ids: Option<Vec<String>>,
}

fn page<T: serde::Serialize>(
    state: &SimState,
    items: Vec<T>,
    query: &PageQuery,
    request_id: u64,
) -> Response {
    let page_index = query.page_index.unwrap_or(1).max(1);
    let page_size = query.page_size.unwrap_or(50).clamp(1, 100);
    let lying = state.paging_lies.load(Ordering::Relaxed);
    let total_count = items.len() as u64 + if lying { 1000 } else { 0 };
    let mut skip = (page_index - 1).saturating_mul(page_size) as usize;
    if lying && skip >= items.len() {
        // Past the end: send the last page again instead of an empty one.
        skip = items.len().saturating_sub(page_size as usize);
    }
    let data: Vec<T> = items
        .into_iter()
        .skip(skip)
        .take(page_size as usize)
        .collect();
    let body = Page {
        data,
        metadata: PageMetadata {
            page_index,
            page_size,
            total_count,
        },
    };
    with_request_id(Json(body).into_response(), request_id)
}

/// Count a discovery request, admit it, and fail it when discovery
/// failures are injected.
async fn admit_discovery(
    state: &SimState,
    headers: &HeaderMap,
    permission: &str,
) -> Result<u64, Response> {
    state
        .stats
        .discovery_requests
        .fetch_add(1, Ordering::Relaxed);
    let request_id = admit(state, headers, permission).await?;
    if state.discovery_failing.load(Ordering::Relaxed) {
        return Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            request_id,
            "injected discovery failure",
        ));
    }
    Ok(request_id)
}

async fn customers_batch(
    State(state): State<Arc<SimState>>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    body: Option<Json<BatchBody>>,
) -> Response {
    let request_id = match admit_discovery(&state, &headers, "elements.customers.read.all").await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let wanted = body.and_then(|Json(body)| body.customer_ids);
    let hidden = lock(&state.hidden_customers).clone();
    let items = state
        .customers
        .iter()
        .filter(|c| wanted.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| !hidden.contains(&c.id))
        .map(|customer| {
            // The real API sends the owner's e-mail address: personal data
            // the exporter must ignore, so the simulator sends one too.
            let mut item = serde_json::to_value(customer.to_api()).unwrap_or_default();
            item["ownerEmail"] = json!(format!("owner@{}.example", customer.tenant_domain));
            item
        })
        .chain(
            state
                .bogus_customer
                .load(Ordering::Relaxed)
                .then(|| json!({"id": "../../etc", "organization": "Bogus", "tenants": []})),
        )
        .collect();
    page(&state, items, &query, request_id)
}

async fn profiles_batch(
    State(state): State<Arc<SimState>>,
    Path(customer_id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    body: Option<Json<BatchBody>>,
) -> Response {
    let request_id = match admit_discovery(&state, &headers, "elements.scanprofiles.read.all").await
    {
        Ok(id) => id,
        Err(response) => return response,
    };
    let hidden = lock(&state.hidden_customers).contains(&customer_id);
    let Some(customer) = state
        .customers
        .iter()
        .find(|c| c.id == customer_id && !hidden)
    else {
        return api_error(StatusCode::NOT_FOUND, request_id, "customer not found");
    };
    let wanted = body.and_then(|Json(body)| body.scan_profile_ids);
    let items = customer
        .profiles
        .iter()
        .filter(|p| wanted.as_ref().is_none_or(|ids| ids.contains(&p.id)))
        .map(data::SimProfile::to_summary)
        .collect();
    page(&state, items, &query, request_id)
}
