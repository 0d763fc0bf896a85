//! What an answer of the API means when it is not the data asked for: the
//! [`ApiError`] of a failure status (with a hint for the user, the body's
//! `message`, and the `request-id` header or, without it, the body's
//! `requestId` and `traceId`), and of a body that could not be read.
//!
//! Imports `avepoint::{auth, error, http, instrumentation, model, pacing,
//! permissions}` and `config`.

use reqwest::header::HeaderName;
use reqwest::{Response, StatusCode};

use super::details::PROFILE_DETAILS;
use super::endpoint::ApiEndpoint;
use super::error::ApiError;
use super::http::{BodyError, read_body_limited, redirect_target, sanitize};
use super::model::ApiErrorBody;
use super::pacing::parse_retry_after;
use super::scrub::scrub;
use super::token::AccessToken;
use crate::config::ProfileEndpoint;

/// The error of a non-success answer. `configured` is the
/// `avepoint.endpoint` setting, for the hint of a 404.
pub(super) async fn status_error(
    endpoint: ApiEndpoint,
    configured: ProfileEndpoint,
    response: Response,
    request_id: Option<String>,
    token: &AccessToken,
) -> ApiError {
    let status = response.status();
    let location = status.is_redirection().then(|| redirect_target(&response));
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let bytes = read_body_limited(response, 64 * 1024)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice::<ApiErrorBody>(&bytes).unwrap_or_default();
    // A proxy may echo the request back: never let our token out.
    let clean = |text: String| scrub(&text, token.expose());
    let message = with_causes(body.message.map(clean), &bytes, token.expose());
    // The header is what AvePoint documents; the body's id stands in
    // for it when a gateway on the way dropped it.
    let request_id = request_id.or_else(|| body.request_id.map(clean));
    let trace_id = body.trace_id.map(clean);
    let hint = match status {
        StatusCode::UNAUTHORIZED => {
            "the API rejected a freshly issued token; check the app registration".to_owned()
        }
        // The token endpoint granted the permission (a refused one is
        // never asked for), so the app may be limited to some customers.
        StatusCode::FORBIDDEN => format!(
            "the app registration lacks the permission {}, or may not access this customer (an app registration can be limited to some customers or customer groups); check both in Elements > API app registration",
            endpoint
                .permission()
                .unwrap_or(crate::config::SCAN_PROFILES_SCOPE)
        ),
        StatusCode::NOT_FOUND if endpoint == PROFILE_DETAILS.endpoint => {
            "customer or scan profile not found; check the ids".to_owned()
        }
        StatusCode::NOT_FOUND if endpoint != ApiEndpoint::SCAN_PROFILE => {
            "customer not found".to_owned()
        }
        StatusCode::NOT_FOUND => format!(
            "customer or scan profile not found on the {} endpoint; check the ids, or try `avepoint.endpoint: {}`",
            configured.name(),
            configured.other().name()
        ),
        _ if status.is_redirection() => format!(
            "a redirect to {}, not followed: AvePoint's API does not redirect; check avepoint.base_url and any proxy in between",
            location.as_deref().unwrap_or("no Location")
        ),
        StatusCode::TOO_MANY_REQUESTS => match retry_after {
            Some(wait) => format!("rate limited by AvePoint, retry after {}s", wait.as_secs()),
            None => "rate limited by AvePoint".to_owned(),
        },
        StatusCode::BAD_REQUEST => "AvePoint refused the request as invalid".to_owned(),
        status if status.is_server_error() => "AvePoint server error".to_owned(),
        _ => "unexpected status".to_owned(),
    };
    ApiError::Status {
        status,
        hint,
        message,
        request_id,
        trace_id,
        retry_after,
    }
}

/// The most `errors[]` entries an error message quotes.
const MAX_CAUSES: usize = 3;

/// The error body's field-level causes (`errors[]`, where a 400's reason
/// is, `message` being just "Bad Request"), appended to `message`: at most
/// [`MAX_CAUSES`], each `field: message (code)` cleaned and cut to 200
/// characters by [`sanitize`], the token scrubbed.
fn with_causes(message: Option<String>, body: &[u8], token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Causes {
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    let errors = serde_json::from_slice::<Causes>(body)
        .map(|causes| causes.errors)
        .unwrap_or_default();
    let readable: Vec<String> = errors.iter().filter_map(cause_text).collect();
    let mut causes: Vec<String> = readable
        .iter()
        .take(MAX_CAUSES)
        .map(|text| scrub(text, token))
        .collect();
    if causes.is_empty() {
        return message;
    }
    let more = readable.len().saturating_sub(MAX_CAUSES);
    if more > 0 {
        causes.push(format!("and {more} more"));
    }
    let causes = causes.join("; ");
    Some(match message {
        Some(message) => format!("{message}: {causes}"),
        None => causes,
    })
}

/// One `errors[]` entry as text: `{code, field, message}` as
/// `field: message (code)`, with what is there; a plain string as is.
fn cause_text(entry: &serde_json::Value) -> Option<String> {
    let text = |name: &str| match entry.get(name) {
        Some(serde_json::Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        Some(serde_json::Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    if let serde_json::Value::String(text) = entry {
        return Some(text.clone()).filter(|t| !t.trim().is_empty());
    }
    let (field, message, code) = (text("field"), text("message"), text("code"));
    let mut out = match (field, message) {
        (Some(field), Some(message)) => format!("{field}: {message}"),
        (Some(only), None) | (None, Some(only)) => only,
        (None, None) => code.clone()?,
    };
    if let Some(code) = code.filter(|code| !out.contains(code.as_str())) {
        out.push_str(&format!(" ({code})"));
    }
    Some(out)
}

/// A body that could not be read: one that broke off mid-way is a transport
/// failure, retried like one; one too slow a timeout, like a request never
/// answered; one left unread for want of a decode slot an error, not a
/// timeout (AvePoint was not slow); one too large names the setting that
/// caps it.
pub(super) fn body_error(error: BodyError, request_id: &Option<String>, setting: &str) -> ApiError {
    match error {
        BodyError::Read(message) => ApiError::Transport {
            message,
            timeout: false,
        },
        BodyError::TimedOut | BodyError::TooSlow { .. } => ApiError::Transport {
            message: error.to_string(),
            timeout: true,
        },
        BodyError::NoSlot { waited } => ApiError::DecodeQueue {
            waited,
            slots: super::http::DECODE_SLOTS,
        },
        BodyError::TooLarge { limit } => ApiError::Decode {
            message: format!("response body larger than {setting} ({limit} bytes), refused"),
            request_id: request_id.clone(),
        },
    }
}

/// AvePoint's request id header; a constant, as a `&str` key is parsed
/// into a header name on every lookup.
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

pub(super) fn request_id(response: &Response) -> Option<String> {
    response
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(|value| sanitize(value, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_causes_of_a_400_are_quoted_bounded_and_scrubbed() {
        let token = "sim-token-0123456789abcdef";
        let body = serde_json::json!({
            "statusCode": 400,
            "message": "Bad Request",
            "errors": [
                {"code": "OutOfRange", "field": "pageSize", "message": "must be between 1 and 100"},
                {"field": "scanProfileIds", "message": format!("bad id {token}\nnext line")},
                {"code": "Invalid", "field": "body", "message": "y".repeat(300)},
                {"code": "Dropped", "field": "x", "message": "the fourth"},
                "a fifth, as a plain string",
                42
            ],
            "requestId": "r", "traceId": "t"
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let message = with_causes(Some("Bad Request".into()), &bytes, token).unwrap();
        assert_eq!(
            message,
            format!(
                "Bad Request: pageSize: must be between 1 and 100 (OutOfRange); \
                 scanProfileIds: bad id <secret> next line; body: {}…; and 2 more",
                "y".repeat(194)
            )
        );
        assert!(!message.contains(token));
    }

    #[test]
    fn a_body_without_causes_keeps_its_message() {
        let body = br#"{"message": "Bad Request", "errors": []}"#;
        assert_eq!(
            with_causes(Some("Bad Request".into()), body, "t").as_deref(),
            Some("Bad Request")
        );
        assert_eq!(with_causes(None, b"<html>", "t"), None);
        let only = br#"{"errors": [{"code": "Required"}]}"#;
        assert_eq!(with_causes(None, only, "t").as_deref(), Some("Required"));
    }
}
