//! The simulated token endpoint (`POST /connect/token`): client credentials
//! with a secret or with a client assertion JWT signed by the registered
//! certificate, checked as strictly as an identity server would so the
//! exporter's certificate auth is tested against something that says no.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::data::mix;
use super::state::{IssuedToken, SimState, TrustedCertificate};
use crate::avepoint::certificate::CLIENT_ASSERTION_TYPE;
use crate::sync::lock;

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

impl TokenForm {
    /// The form as it was sent (`application/x-www-form-urlencoded`), the
    /// credentials first: an error keeps only its first 200 characters,
    /// and the test must see what became of them.
    fn encoded(&self) -> String {
        let mut encoded = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("client_secret", &self.client_secret),
            ("client_assertion", &self.client_assertion),
            ("grant_type", &self.grant_type),
            ("client_id", &self.client_id),
            ("client_assertion_type", &self.client_assertion_type),
            ("scope", &self.scope),
        ] {
            if let Some(value) = value {
                encoded.append_pair(name, value);
            }
        }
        encoded.finish()
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /connect/token`.
pub(super) async fn token(
    State(state): State<Arc<SimState>>,
    Form(form): Form<TokenForm>,
) -> Response {
    state.stats.token_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(location) = lock(&state.token_redirect).clone() {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response();
    }
    if !state.config.token_latency.is_zero() {
        tokio::time::sleep(state.config.token_latency).await;
    }
    if state.token_echo.load(Ordering::Relaxed) {
        // As a misbehaving proxy or identity server might: the refusal
        // quotes the request, form-encoded, credentials and all.
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("rejected request: {}", form.encoded()),
        );
    }
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    if let Err((status, error, description)) = authenticate(&state, &form) {
        return oauth_error(status, error, description);
    }
    issue(&state, form.scope.as_deref().unwrap_or_default())
}

/// A refusal: status, OAuth `error` and `error_description`.
type Refusal = (StatusCode, &'static str, &'static str);

/// The credentials the form carries decide the check; both kinds at once,
/// or half an assertion, is a client bug that gets its own message.
fn authenticate(state: &SimState, form: &TokenForm) -> Result<(), Refusal> {
    match (
        form.client_assertion_type.as_deref(),
        form.client_assertion.as_deref(),
    ) {
        (None, None) => check_secret(state, form),
        _ if form.client_secret.is_some() => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send client_secret or client_assertion, not both",
        )),
        (Some(CLIENT_ASSERTION_TYPE), Some(assertion)) => {
            verify_client_assertion(state, form.client_id.as_deref(), assertion)
                .map_err(|description| (StatusCode::UNAUTHORIZED, "invalid_client", description))?;
            state
                .stats
                .client_assertions
                .fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        (Some(_), Some(_)) => Err((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unsupported client_assertion_type",
        )),
        _ => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion and client_assertion_type go together",
        )),
    }
}

fn check_secret(state: &SimState, form: &TokenForm) -> Result<(), Refusal> {
    if form.client_id.as_deref() != Some(state.config.client_id.as_str())
        || form.client_secret.as_deref() != Some(state.config.client_secret.as_str())
    {
        return Err((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        ));
    }
    Ok(())
}

/// Grant exactly the requested scopes, as IdentityServer does: one scope
/// the app does not hold refuses the whole request with `400
/// invalid_scope` (no description, as IdentityServer sends it). No scope
/// asked for grants every one the app holds.
fn issue(state: &SimState, requested: &str) -> Response {
    let permissions = lock(&state.permissions).clone();
    let held = || permissions.split_whitespace();
    let mut scopes: Vec<String> = Vec::new();
    for scope in requested.split_whitespace() {
        if !held().any(|held| held == scope) {
            state.stats.invalid_scopes.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_scope"})),
            )
                .into_response();
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        scopes = held().map(str::to_owned).collect();
    }
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
/// never quotes the assertion. The checks run in that order, so each test
/// sees the one message it provokes.
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
    verify_header(trusted, header)?;
    verify_signature(trusted, header, claims, signature)?;
    let claims = decode_json(claims).ok_or("client assertion claims are not base64url JSON")?;
    verify_claims(state, client_id, &claims)
}

/// A JWT part: base64url of a JSON object.
fn decode_json(part: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn verify_header(trusted: &TrustedCertificate, header: &str) -> Result<(), &'static str> {
    let header = decode_json(header).ok_or("client assertion header is not base64url JSON")?;
    let text = |name: &str| header.get(name).and_then(Value::as_str);
    if text("alg") != Some("RS256") {
        return Err("client assertion must be signed with alg RS256");
    }
    if !text("kid").is_some_and(|kid| kid.eq_ignore_ascii_case(&trusted.kid)) {
        return Err("client assertion kid is not the registered certificate's SHA-1 thumbprint");
    }
    if text("x5t") != Some(trusted.x5t.as_str()) {
        return Err("client assertion x5t is not the registered certificate's SHA-1 thumbprint");
    }
    Ok(())
}

fn verify_signature(
    trusted: &TrustedCertificate,
    header: &str,
    claims: &str,
    signature: &str,
) -> Result<(), &'static str> {
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
        .map_err(|_| "client assertion signature does not verify with the registered certificate")
}

fn verify_claims(
    state: &SimState,
    client_id: &str,
    claims: &Map<String, Value>,
) -> Result<(), &'static str> {
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if claim("iss") != Some(client_id) || claim("sub") != Some(client_id) {
        return Err("client assertion iss and sub must both be the client id");
    }
    let audience_matches = match claims.get("aud") {
        Some(Value::String(aud)) => is_token_url(state, aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|aud| aud.as_str().is_some_and(|aud| is_token_url(state, aud))),
        _ => false,
    };
    if !audience_matches {
        return Err("client assertion aud is not this token endpoint's URL");
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
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
    remember_jti(state, jti, exp, now)
}

/// Whether `aud` names this endpoint: scheme, host, port and path, and
/// `localhost` for a loopback bind (a wildcard bind accepts any host).
fn is_token_url(state: &SimState, aud: &str) -> bool {
    url::Url::parse(aud).is_ok_and(|url| {
        url.scheme() == state.scheme
            && is_bound_host(state.addr, url.host())
            && url.port_or_known_default() == Some(state.addr.port())
            && url.path() == "/connect/token"
            && url.query().is_none()
    })
}

fn is_bound_host(addr: SocketAddr, host: Option<url::Host<&str>>) -> bool {
    match host {
        _ if addr.ip().is_unspecified() => true,
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip) == addr.ip(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip) == addr.ip(),
        Some(url::Host::Domain(domain)) => {
            domain.eq_ignore_ascii_case("localhost") && addr.ip().is_loopback()
        }
        None => false,
    }
}

/// Refuse a replayed `jti`; ids are forgotten once their assertion expires,
/// since an expired assertion is refused anyway.
fn remember_jti(state: &SimState, jti: &str, exp: f64, now: f64) -> Result<(), &'static str> {
    let mut used = lock(&state.used_jtis);
    used.retain(|_, expires| *expires > now);
    if used.insert(jti.to_owned(), exp).is_some() {
        return Err("client assertion jti was already used");
    }
    Ok(())
}
