//! The keys of the web config file (the serde structs) and their checks:
//! [`WebConfig::from_yaml`], one function per top-level section. The
//! `tls_server_config` section, its keys and what it builds live in `tls`.

use std::collections::HashMap;
use std::path::Path;

use axum::http::{HeaderName, HeaderValue, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::tls::RawTls;
use super::{Invalid, MAX_BCRYPT_COST, MIN_BCRYPT_COST, UserHash, WebConfig, WebConfigError};

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
        let (users, stand_in) =
            basic_auth_users(raw.basic_auth_users.unwrap_or_default(), invalid)?;
        let mut files = vec![path.to_owned()];
        let tls = match raw.tls_server_config {
            Some(tls) => super::tls::section(tls, path, &mut files, invalid, http2)?,
            None => None,
        };
        Ok(WebConfig {
            tls,
            users,
            stand_in,
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

/// `basic_auth_users`: checks every user and hash (in name order, so that a
/// file with several mistakes gets the same message every time), and picks
/// the stand-in (see `WebConfig::stand_in`). No bcrypt work happens here: a
/// load, and so a reload on the request path, costs the same whatever the
/// users' costs.
fn basic_auth_users(
    raw: HashMap<String, SecretString>,
    invalid: Invalid<'_>,
) -> Result<(HashMap<String, UserHash>, Option<String>), WebConfigError> {
    let mut raw: Vec<(String, SecretString)> = raw.into_iter().collect();
    raw.sort_by(|(a, _), (b, _)| a.cmp(b));
    let mut users = HashMap::with_capacity(raw.len());
    let mut stand_in: Option<(u32, String)> = None;
    for (user, hash) in raw {
        let cost = user_hash_cost(&user, &hash, invalid)?;
        // Strictly higher: among equal costs the first name wins.
        if stand_in.as_ref().is_none_or(|(highest, _)| cost > *highest) {
            stand_in = Some((cost, user.clone()));
        }
        users.insert(user, UserHash { hash, cost });
    }
    Ok((users, stand_in.map(|(_, user)| user)))
}

/// The checks of one entry of `basic_auth_users`; the cost of its hash.
fn user_hash_cost(
    user: &str,
    hash: &SecretString,
    invalid: Invalid<'_>,
) -> Result<u32, WebConfigError> {
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
    let cost = parts.get_cost();
    if cost > MAX_BCRYPT_COST {
        return Err(invalid.at(
            &key,
            format!(
                "bcrypt cost {cost} is above the maximum of {MAX_BCRYPT_COST} (every login and \
                 every wrong password would take seconds of CPU); make the hash again with \
                 cost 10 to 12, see docs/web-config.md"
            ),
        ));
    }
    if cost < MIN_BCRYPT_COST {
        return Err(invalid.at(
            &key,
            format!(
                "bcrypt cost {cost} is below the minimum of {MIN_BCRYPT_COST} (no password can \
                 match it); make the hash again with cost 10 to 12, see docs/web-config.md"
            ),
        ));
    }
    Ok(cost)
}
