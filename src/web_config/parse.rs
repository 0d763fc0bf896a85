//! The keys of the web config file (the serde structs) and their checks:
//! [`WebConfig::from_yaml`], one function per top-level section. The
//! `tls_server_config` section, its keys and what it builds live in `tls`.

use std::collections::HashMap;
use std::path::Path;

use axum::http::{HeaderName, HeaderValue, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::tls::RawTls;
use super::{Invalid, WebConfig, WebConfigError};

/// Response headers that may be configured: the name as written in the file
/// (matched ignoring case, and listed in messages), the header, and its
/// allowed values (none: any value). The same list as exporter-toolkit's, for
/// consistency across the Prometheus ecosystem.
const ALLOWED_HEADERS: &[(&str, HeaderName, &[&str])] = &[
    (
        "Strict-Transport-Security",
        header::STRICT_TRANSPORT_SECURITY,
        &[],
    ),
    (
        "X-Content-Type-Options",
        header::X_CONTENT_TYPE_OPTIONS,
        &["nosniff"],
    ),
    (
        "X-Frame-Options",
        header::X_FRAME_OPTIONS,
        &["deny", "sameorigin"],
    ),
    ("X-XSS-Protection", header::X_XSS_PROTECTION, &[]),
    (
        "Content-Security-Policy",
        header::CONTENT_SECURITY_POLICY,
        &[],
    ),
];

/// The whole file. The two keys we refuse are still fields, so that the
/// message says they are not supported rather than unknown.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<HashMap<String, SecretString>>,
    rate_limit: Option<serde::de::IgnoredAny>,
}

/// `http_server_config`, as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<HashMap<String, String>>,
}

impl WebConfig {
    /// Parse and check web config text; `path` names the file in messages
    /// and anchors relative paths.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, WebConfigError> {
        let invalid = Invalid { path };
        let raw: RawWebConfig = if text.trim().is_empty() {
            // An empty file is an empty mapping, as in Go.
            RawWebConfig::default()
        } else {
            crate::config::parse_yaml(text).map_err(|(key, message)| invalid.at(&key, message))?
        };
        if raw.rate_limit.is_some() {
            return Err(invalid.at(
                "rate_limit",
                "not supported by avepoint-exporter; limit request rates in a reverse proxy",
            ));
        }
        let (http2, headers) =
            http_server_config(raw.http_server_config.unwrap_or_default(), invalid)?;
        let users = raw.basic_auth_users.unwrap_or_default();
        let dummy_hash = basic_auth_users(&users, invalid)?;
        let mut files = vec![path.to_owned()];
        let tls = match raw.tls_server_config {
            Some(tls) => super::tls::section(tls, path, &mut files, invalid, http2)?,
            None => None,
        };
        Ok(WebConfig {
            tls,
            users,
            dummy_hash,
            headers,
            http2,
            files,
        })
    }
}

/// `http_server_config`: whether HTTP/2 is offered, and the response headers.
/// Headers are checked in name order, so that a file with several bad ones
/// gets the same message every time.
fn http_server_config(
    raw: RawHttp,
    invalid: Invalid<'_>,
) -> Result<(bool, Vec<(HeaderName, HeaderValue)>), WebConfigError> {
    let mut configured: Vec<(String, String)> =
        raw.headers.unwrap_or_default().into_iter().collect();
    configured.sort();
    let headers = configured
        .iter()
        .map(|(name, value)| response_header(name, value, invalid))
        .collect::<Result<_, _>>()?;
    Ok((raw.http2.unwrap_or(true), headers))
}

/// One entry of `http_server_config.headers`.
fn response_header(
    name: &str,
    value: &str,
    invalid: Invalid<'_>,
) -> Result<(HeaderName, HeaderValue), WebConfigError> {
    let key = format!("http_server_config.headers.{name}");
    let Some((_, header, allowed)) = ALLOWED_HEADERS
        .iter()
        .find(|(allowed, _, _)| allowed.eq_ignore_ascii_case(name))
    else {
        let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _, _)| *n).collect();
        return Err(invalid.at(
            &key,
            format!(
                "HTTP header {name:?} can not be configured; allowed: {}",
                names.join(", ")
            ),
        ));
    };
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(invalid.at(
            &key,
            format!(
                "invalid value {value:?}; expected one of: {}",
                allowed.join(", ")
            ),
        ));
    }
    let value = HeaderValue::from_str(value)
        .map_err(|_| invalid.at(&key, format!("{value:?} is not a valid header value")))?;
    Ok((header.clone(), value))
}

/// `basic_auth_users`: checks every user and hash, and returns the hash to
/// check unknown users against (see `WebConfig::dummy_hash`), if any users.
fn basic_auth_users(
    users: &HashMap<String, SecretString>,
    invalid: Invalid<'_>,
) -> Result<Option<String>, WebConfigError> {
    let mut max_cost = None;
    for (user, hash) in users {
        let key = format!("basic_auth_users.{user}");
        if user.contains(':') {
            return Err(invalid.at(
                &key,
                "a user name must not contain ':' (HTTP basic authentication cannot send it)",
            ));
        }
        let parts: bcrypt::HashParts = hash.expose_secret().parse().map_err(|_| {
            invalid.at(
                &key,
                "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost and 53 characters; \
                 see docs/web-config.md for how to make one)",
            )
        })?;
        max_cost = max_cost.max(Some(parts.get_cost()));
    }
    max_cost
        .map(|cost| {
            bcrypt::hash("avepoint-exporter: not a password", cost)
                .map_err(|error| invalid.at("basic_auth_users", error.to_string()))
        })
        .transpose()
}
